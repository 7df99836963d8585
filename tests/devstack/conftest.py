"""Fixtures for the launcher tests: free ports and settings isolated from the developer's env."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adx.settings import Environment, LogFormat, Settings
from tests.support.ports import distinct_free_ports, every_port


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Distinct free ports within one test."""
    return distinct_free_ports()


@pytest.fixture
def dev_settings(tmp_path: Path, free_port: Callable[[], int]) -> Settings:
    """Embedded-Temporal settings with every port of the stack free and a temp data dir;
    explicit values so an ADX_* variable, a .env or a running stack of the developer cannot
    change what the test checks."""
    return Settings(
        _env_file=None,
        environment=Environment.DEV,
        host="127.0.0.1",
        port_offset=0,
        ports=every_port(free_port),
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
