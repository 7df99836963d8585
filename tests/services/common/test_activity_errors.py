"""What an activity raises reaches Temporal as the taxonomy's kind, with its retryability:
an unreachable database or Redis is retried, a validation error is not, and the caller's own
error never leaks as an internal one."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from contracts.errors import ErrorKind
from services.common.activity import service_activity
from services.common.errors import ServiceError


@pytest.mark.parametrize(
    ("raised", "kind", "retried"),
    [
        (OperationalError("SELECT 1", {}, ConnectionRefusedError()), ErrorKind.DATABASE, True),
        (RedisConnectionError("Connection refused"), ErrorKind.NETWORK, True),
        (ServiceError(ErrorKind.VALIDATION, "bad input"), ErrorKind.VALIDATION, False),
    ],
    ids=["database", "redis", "validation"],
)
async def test_activity_errors_keep_their_kind_and_retryability(
    raised: Exception, kind: ErrorKind, retried: bool
) -> None:
    @service_activity("test.failing")
    async def failing() -> None:
        raise raised

    with pytest.raises(ApplicationError) as error:
        await ActivityEnvironment().run(failing)
    assert error.value.type == kind.value
    assert error.value.non_retryable is not retried
