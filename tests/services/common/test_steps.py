"""What a workflow raises after compensating (the step kernel's ``failure``) decides how the
operation ends."""

from __future__ import annotations

import pytest
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    is_cancelled_exception,
)

from services.common.steps import failure


def activity_error(cause: BaseException) -> ActivityError:
    error = ActivityError(
        "activity failed",
        scheduled_event_id=1,
        started_event_id=2,
        identity="w",
        activity_type="t",
        activity_id="1",
        retry_state=None,
    )
    error.__cause__ = cause
    return error


def reraise(error: BaseException, chain: str) -> BaseException:
    """What a workflow's ``except`` block raises, written each way it appears in services."""
    try:
        if chain == "from error":
            raise failure(error, []) from error
        if chain == "from None":
            raise failure(error, []) from None
        raise failure(error, [])
    except BaseException as raised:
        return raised


@pytest.mark.parametrize("chain", ["from error", "from None", "bare"])
def test_a_cancelled_activity_still_ends_the_workflow_cancelled(chain: str) -> None:
    # A cancel delivered while an activity was scheduled surfaces as an ActivityError whose
    # cause is the cancellation; however the workflow re-raises, it must stay a cancellation.
    error = activity_error(CancelledError("cancelled"))
    raised = reraise(error, chain)
    assert is_cancelled_exception(raised)
    assert is_cancelled_exception(error)  # the original is left as it was


def test_a_failure_keeps_its_kind_and_names_the_compensations() -> None:
    compensated = ["undo_b", "undo_a"]
    quota = failure(
        activity_error(ApplicationError("quota", type="QuotaExceededError")), compensated
    )
    assert isinstance(quota, ApplicationError)
    assert quota.type == "QuotaExceededError"
    assert quota.message == "quota"
    assert quota.non_retryable
    assert quota.details == ({"compensations": ["undo_b", "undo_a"]},)
    internal = failure(activity_error(RuntimeError("db password leaked")), compensated)
    assert isinstance(internal, ApplicationError)
    assert internal.message == "internal error"
