"""Running store code as one operation's activity attempts: forward or compensation, as
the step kernel would (tests of the before-log and its fence)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio.testing import ActivityEnvironment

from contracts.context import compensating

T = TypeVar("T")


def attempt_of(operation_id: str, attempt: int = 1) -> ActivityEnvironment:
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        environment.info, workflow_id=operation_id, attempt=attempt
    )
    return environment


async def forward(operation_id: str, action: Callable[[], Awaitable[T]]) -> T:
    """``action`` as an attempt of the operation's forward step."""

    async def run() -> T:
        return await action()

    return await attempt_of(operation_id).run(run)


async def compensation(operation_id: str, action: Callable[[], Awaitable[T]]) -> T:
    """``action`` as the operation's compensation (started by the kernel's ``undo``)."""

    async def run() -> T:
        with compensating():
            return await action()

    return await attempt_of(operation_id).run(run)
