"""The SDK compiled with its tests (the router suite's fixture), for the container smoke test."""

from tests.router.conftest import sdk_tests

__all__ = ["sdk_tests"]
