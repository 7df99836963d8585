"""Ports for test processes: never a default port of the stack, never what else listens here.

A test's settings name every port of the stack explicitly (``ADX_PORTS`` style), so nothing in
a test falls back to a default port (8080, 4000, ...) where a developer's ``make dev`` may be
answering. Ports a test does not serve on are *reserved*: bound by the test session but not
listening, so a connection to one is refused at once, as to a process that is not running,
and no other program can take it meanwhile.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from adx.devstack.ports import distinct_free_ports as distinct_free_ports
from adx.devstack.ports import free_port as free_port
from adx.settings import DEFAULT_PORTS


def every_port(pick: Callable[[], int]) -> dict[str, int]:
    """One port per process of the stack, each from ``pick``."""
    return {name: pick() for name in DEFAULT_PORTS}


@contextmanager
def reserved_ports() -> Iterator[dict[str, int]]:
    """Every port of the stack, each held by a bound, non-listening socket for the block."""
    with ExitStack() as sockets:

        def reserve() -> int:
            # No SO_REUSEADDR: a server that tries to bind it fails instead of sharing it.
            sock = sockets.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port

        yield every_port(reserve)
