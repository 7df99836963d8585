"""Declaring activities: the taxonomy's errors become Temporal errors with the right
retryability, and database/network failures are retried."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from temporalio import activity

from services.common.errors import UNREACHABLE_STORE_ERRORS, ServiceError, unreachable_store

P = ParamSpec("P")
R = TypeVar("R")


def service_activity(
    name: str,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """``@activity.defn(name=...)`` that maps ServiceError to ApplicationError and an
    unreachable database or Redis to the taxonomy's retryable kind."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await fn(*args, **kwargs)
            except ServiceError as error:
                raise error.to_application_error() from None
            except UNREACHABLE_STORE_ERRORS as error:
                # Connection lost, database locked or down: worth retrying with backoff.
                raise unreachable_store(error).to_application_error() from error

        return activity.defn(name=name)(wrapper)

    return decorate
