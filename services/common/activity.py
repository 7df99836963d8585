"""Declaring activities: the taxonomy's errors become Temporal errors with the right
retryability, and database/network failures are retried."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import OperationalError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.errors import ErrorKind
from services.common.errors import ServiceError

P = ParamSpec("P")
R = TypeVar("R")


def service_activity(
    name: str,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """``@activity.defn(name=...)`` that maps ServiceError to ApplicationError and database
    connectivity errors to a retryable DatabaseError."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await fn(*args, **kwargs)
            except ServiceError as error:
                raise error.to_application_error() from None
            except OperationalError as error:
                # Connection lost, database locked or down: worth retrying with backoff.
                raise ApplicationError(
                    "the database is unavailable", type=ErrorKind.DATABASE.value
                ) from error

        return activity.defn(name=name)(wrapper)

    return decorate
