"""The typed activity references in contracts/ describe the activities the workers really
register: same name, the owning service's task queue, the same input and result types."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from temporalio.activity import _Definition

from contracts import auth, file, tenant, user, workflow
from contracts.activities import ActivityRef
from services.auth.activities import AuthActivities as AuthImpl
from services.file.activities import FileActivities as FileImpl
from services.tenant.activities import TenantActivities as TenantImpl
from services.user.activities import UserActivities as UserImpl
from services.workflow.activities import WorkflowActivities as WorkflowImpl

CONTRACTS: dict[str, tuple[type, type]] = {
    "auth": (auth.AuthActivities, AuthImpl),
    "file": (file.FileActivities, FileImpl),
    "tenant": (tenant.TenantActivities, TenantImpl),
    "user": (user.UserActivities, UserImpl),
    "workflow": (workflow.WorkflowActivities, WorkflowImpl),
}


def references(namespace: type) -> dict[str, ActivityRef[Any, Any]]:
    return {ref.name: ref for ref in vars(namespace).values() if isinstance(ref, ActivityRef)}


def registered(implementation: type) -> Iterator[tuple[str, Callable[..., Any]]]:
    for _, fn in inspect.getmembers(implementation, inspect.isfunction):
        definition = _Definition.from_callable(fn)
        if definition is not None and definition.name is not None:
            yield definition.name, fn


@pytest.mark.parametrize("service", sorted(CONTRACTS))
def test_every_registered_activity_has_a_matching_reference(service: str) -> None:
    namespace, implementation = CONTRACTS[service]
    refs = references(namespace)
    found = dict(registered(implementation))
    assert set(refs) == set(found)
    for name, fn in found.items():
        ref = refs[name]
        hints = typing.get_type_hints(fn)
        (argument,) = [p for p in inspect.signature(fn).parameters if p != "self"]
        assert ref.service == service
        assert ref.task_queue.value == f"{service}-task-queue"
        assert ref.input_type is hints[argument], name
        assert ref.result_type == hints["return"], name
