from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.clamd import ClamdServer, run_clamd


@pytest.fixture(scope="session")
def clamd() -> Iterator[ClamdServer]:
    """A real clamd whose only signature matches the EICAR test file."""
    with run_clamd() as server:
        yield server
