"""Retry policies following the error taxonomy: validation, authorization and isolation errors
are final; database, network and external-service errors retry with backoff."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from contracts.errors import ErrorKind

NON_RETRYABLE = [kind.value for kind in ErrorKind if not kind.retryable]

DEFAULT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,
    non_retryable_error_types=NON_RETRYABLE,
)

# Compensations must finish: they retry longer, and only bad input stops them.
COMPENSATION_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=0,
    non_retryable_error_types=[ErrorKind.VALIDATION.value],
)

# Reads change nothing: a few quick attempts, then the caller hears about it.
READ_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=1),
    maximum_attempts=3,
    non_retryable_error_types=NON_RETRYABLE,
)
