"""Raising errors from the taxonomy in service code, activities and workflows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError
from temporalio.exceptions import ApplicationError

from contracts.context import RequestContext, current_context
from contracts.errors import ErrorKind
from workflow_client.errors import (
    InvalidOperationId,
    InvalidPageToken,
    OperationAlreadyExists,
    OperationNotFound,
    TemporalUnavailable,
    WorkflowFailed,
)

security_log = structlog.stdlib.get_logger("adx.security")


class ServiceError(Exception):
    """An expected failure with a kind from the taxonomy and a message safe for clients."""

    def __init__(
        self, kind: ErrorKind, message: str, *, fields: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.fields = fields or {}

    def to_application_error(self) -> ApplicationError:
        """Validation, authorization and isolation errors are not retried; database, network
        and external-service errors are, with backoff."""
        details: list[Any] = [{"fields": self.fields}] if self.fields else []
        return ApplicationError(
            self.message, *details, type=self.kind.value, non_retryable=not self.kind.retryable
        )


# A store that cannot be reached (down, refusing, too slow, locked): the operation may work
# when asked again, so it is the taxonomy's retryable kind, never an internal error.
UNREACHABLE_STORE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    RedisConnectionError,
    RedisTimeoutError,
)


def unreachable_store(error: Exception) -> ServiceError:
    """One of :data:`UNREACHABLE_STORE_ERRORS` as what the caller is told (HTTP 503 with a
    Retry-After, a retried activity)."""
    if isinstance(error, OperationalError):
        return ServiceError(ErrorKind.DATABASE, "the database is unavailable")
    return ServiceError(ErrorKind.NETWORK, "the session store is unavailable")


class NotFound(ServiceError):
    def __init__(self, what: str) -> None:
        super().__init__(ErrorKind.NOT_FOUND, f"{what} not found")


@contextmanager
def workflow_errors() -> Iterator[None]:
    """workflow_client errors as the taxonomy's (safe messages only)."""
    try:
        yield
    except WorkflowFailed as error:
        raise ServiceError(error.kind, error.message) from error
    except (OperationNotFound, InvalidOperationId) as error:
        raise NotFound("operation") from error
    except InvalidPageToken as error:
        raise ServiceError(
            ErrorKind.VALIDATION, "invalid page token", fields={"page_token": str(error)}
        ) from error
    except OperationAlreadyExists as error:
        raise ServiceError(ErrorKind.CONFLICT, "the operation already exists") from error
    except TemporalUnavailable as error:
        raise ServiceError(
            ErrorKind.EXTERNAL_SERVICE, "the workflow service is unavailable"
        ) from error


def require_context() -> RequestContext:
    context = current_context()
    if context is None:
        raise ServiceError(ErrorKind.AUTHENTICATION, "no caller identity")
    return context


def data_subject_scope(user_id: str) -> str | None:
    """Whose data a compliance export or erasure covers, one rule for every service: the
    user's own request covers every tenant (None); an owner's or admin's request about
    someone else only the admin's tenant (an admin of one tenant has no say over what the
    user keeps in another); anyone else is refused."""
    context = require_context()
    if context.user_id == user_id:
        return None
    if not context.is_tenant_admin():
        raise ServiceError(ErrorKind.AUTHORIZATION, "only tenant admins can do this")
    return context.tenant_id


async def data_subject_here(
    user_id: str, *, erasing: bool, outside_tenant: Callable[[], Awaitable[bool]]
) -> str | None:
    """:func:`data_subject_scope` for a service that knows users across tenants (accounts,
    profiles). ``outside_tenant``: the user is known here, but not in the caller's tenant;
    then, to an admin exporting, the user does not exist. An admin's erasure is not refused:
    someone with nothing (left) in the tenant has nothing erased, so an interrupted one made
    again completes."""
    context = require_context()
    if user_id != context.user_id and not erasing and await outside_tenant():
        ensure_tenant(None, "user")  # raises: not found, logged as a security event
    return data_subject_scope(user_id)


def ensure_tenant(owner_tenant_id: str | None, resource: str) -> RequestContext:
    """The caller's tenant must own the resource. A violation is logged as a security event
    and surfaces as a non-retryable TenantIsolationViolation (a 404 to clients)."""
    context = require_context()
    if owner_tenant_id != context.tenant_id:
        security_log.warning(
            "security.tenant_isolation_violation",
            resource=resource,
            caller_tenant_id=context.tenant_id,
            caller_user_id=context.user_id,
        )
        raise ServiceError(ErrorKind.TENANT_ISOLATION, f"{resource} not found")
    return context
