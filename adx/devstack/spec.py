"""What the launcher needs to know about one process of the development stack."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class PortBinding:
    """A port the process listens on, with the settings key that moves it
    (``ADX_PORTS='{"<setting>": N}'``), so a conflict message can say how to fix it."""

    setting: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TcpCheck:
    """Ready when the port accepts a TCP connection."""

    host: str
    port: int

    def describe(self) -> str:
        return f"tcp {self.host}:{self.port}"


@dataclass(frozen=True)
class HttpCheck:
    """Ready when a GET on the URL answers 2xx."""

    url: str

    def describe(self) -> str:
        return f"http GET {self.url}"


ReadinessCheck = TcpCheck | HttpCheck


@dataclass(frozen=True)
class TableRow:
    """One line of the start-up table, e.g. ("Temporal UI", "http://127.0.0.1:8088")."""

    label: str
    value: str


# Runs each time the process has become ready, before it counts as ready (e.g. registering
# Temporal search attributes the dev server does not add to existing namespaces).
AfterReady = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    # Added on top of the launcher's own environment.
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    ports: tuple[PortBinding, ...] = ()
    readiness: ReadinessCheck | None = None
    table_rows: tuple[TableRow, ...] = ()
    # True: later processes start only once this one is ready (Temporal: everything else
    # connects to it at start-up), and failing to get ready stops the launcher.
    ready_before_next: bool = False
    ready_timeout: float = 60.0
    # Created before each start, so a process can rely on its data directory existing.
    directories: tuple[Path, ...] = ()
    after_ready: AfterReady | None = None
