"""Fixtures for the launcher tests: free ports and settings isolated from the developer's env."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adx.settings import Environment, LogFormat, Settings


def pick_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Distinct free ports within one test (the OS could hand out a just-closed one twice)."""
    given: set[int] = set()

    def pick() -> int:
        while (port := pick_free_port()) in given:
            pass
        given.add(port)
        return port

    return pick


@pytest.fixture
def dev_settings(tmp_path: Path, free_port: Callable[[], int]) -> Settings:
    """Embedded-Temporal settings on free ports with a temp data dir; explicit values so an
    ADX_* variable or .env of the developer cannot change what the test checks."""
    return Settings(
        _env_file=None,
        environment=Environment.DEV,
        host="127.0.0.1",
        port_offset=0,
        ports={
            "temporal": free_port(),
            "temporal_ui": free_port(),
            "codec_server": free_port(),
        },
        data_dir=tmp_path / "data",
        temporal_address=None,
        temporal_cli_path=None,
        temporal_namespaces=["default", "development", "staging", "production"],
        log_format=LogFormat.CONSOLE,
    )


@pytest.fixture
def listening_socket(free_port: Callable[[], int]) -> Iterator[socket.socket]:
    """A port another program holds: bound and listening, as a running server would be."""
    with socket.create_server(("127.0.0.1", free_port())) as sock:
        yield sock
