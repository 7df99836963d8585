"""The verified identity a request carries into workflows and activities.

The workflow_client interceptor writes it into a Temporal header on every outbound call and
sets it back here on the worker side. Only claims travel, never the raw token: headers are
stored in workflow history.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from contextvars import ContextVar
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

HEADER_KEY = "adx-context"
T = TypeVar("T")


class RequestContext(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    user_id: str
    tenant_id: str
    roles: tuple[str, ...] = Field(default_factory=tuple)
    correlation_id: str | None = None

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def is_tenant_admin(self) -> bool:
        """An owner or an admin of the context's tenant."""
        return self.has_role("admin") or self.has_role("owner")


_current: ContextVar[RequestContext | None] = ContextVar("adx_request_context", default=None)


def current_context() -> RequestContext | None:
    return _current.get()


@contextmanager
def _set(variable: ContextVar[T], value: T) -> Iterator[None]:
    token = variable.set(value)
    try:
        yield
    finally:
        # A workflow coroutine evicted or garbage-collected is closed from another context,
        # where the token cannot be reset (and there is nothing left to restore).
        with suppress(ValueError):
            variable.reset(token)


def use_context(context: RequestContext | None) -> AbstractContextManager[None]:
    return _set(_current, context)


# Whether the running activity is a compensation (the step kernel's ``undo``): the stores
# then fence what it undoes against late attempts of the operation's own forward steps
# (services/common/before.py). It travels in a header of its own, beside the identity.
COMPENSATION_HEADER_KEY = "adx-compensation"
_compensating: ContextVar[bool] = ContextVar("adx_compensating", default=False)


def in_compensation() -> bool:
    return _compensating.get()


def compensating(value: bool = True) -> AbstractContextManager[None]:
    return _set(_compensating, value)
