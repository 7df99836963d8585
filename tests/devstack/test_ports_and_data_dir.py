"""Refused starts change nothing: a busy port is named with the fix and no child starts; the
data dir is used by one launcher at a time and --reset empties it, within limits."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from adx.devstack.command import add_arguments
from adx.devstack.data_dir import (
    LOCK_FILE_NAME,
    DataDirError,
    DataDirLock,
    check_reset_is_safe,
    reset_data_dir,
)
from adx.devstack.launcher import run_stack
from adx.devstack.ports import describe_conflicts, find_port_conflicts
from adx.devstack.registry import build_registry
from adx.devstack.temporal import database_file
from adx.settings import REPO_ROOT, Settings


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every child the supervisor tries to start (recorded, then started for real)."""
    calls: list[tuple[Any, ...]] = []
    real = asyncio.create_subprocess_exec

    async def recording(*argv: Any, **kwargs: Any) -> Any:
        calls.append(argv)
        return await real(*argv, **kwargs)

    # The supervisor looks the function up on the asyncio module at each start.
    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording)
    return calls


def _processes_with(text: str) -> list[str]:
    found = subprocess.run(["pgrep", "-f", text], capture_output=True, text=True, check=False)
    return found.stdout.split()


@pytest.mark.parametrize("busy", ["temporal", "temporal_ui", "codec_server"])
def test_busy_port_is_named_with_the_fix_and_nothing_starts(
    dev_settings: Settings,
    listening_socket: socket.socket,
    spawned: list[tuple[Any, ...]],
    capsys: pytest.CaptureFixture[str],
    busy: str,
) -> None:
    port = listening_socket.getsockname()[1]
    settings = dev_settings.model_copy(update={"ports": {**dev_settings.ports, busy: port}})
    owner = "codec_server" if busy == "codec_server" else "temporal"

    code = run_stack(_args(), settings)

    err = capsys.readouterr().err
    assert code != 0
    assert f"127.0.0.1:{port}" in err
    assert f'{owner} (setting "{busy}")' in err
    assert "Address already in use" in err
    # The program holding the port (here the test itself) is named.
    assert f"held by pid {os.getpid()}: " in err
    assert "ADX_PORTS='" in err
    assert f'"{busy}": ' in err
    assert "--port-offset" in err
    assert "ADX_PORT_OFFSET" in err
    assert "Nothing was started." in err
    # Not even Temporal, which comes first, was started, and nothing was written.
    assert spawned == []
    assert not settings.data_dir.exists()
    assert _processes_with(str(database_file(settings))) == []


def test_suggested_adx_ports_keeps_the_ports_already_set(
    dev_settings: Settings, listening_socket: socket.socket
) -> None:
    port = listening_socket.getsockname()[1]
    settings = dev_settings.model_copy(update={"ports": {**dev_settings.ports, "temporal": port}})

    conflicts = find_port_conflicts(build_registry(settings).processes)
    message = describe_conflicts(conflicts, settings.ports)

    assert [(c.process, c.binding.setting, c.binding.port) for c in conflicts] == [
        ("temporal", "temporal", port)
    ]
    suggested = json.loads(message.split("ADX_PORTS='", 1)[1].split("'", 1)[0])
    # The ports already configured are kept; the busy one gets another valid number.
    assert suggested.keys() == settings.ports.keys()
    assert suggested["temporal_ui"] == settings.port("temporal_ui")
    assert suggested["codec_server"] == settings.port("codec_server")
    assert suggested["temporal"] != port
    assert 1024 < suggested["temporal"] <= 65535


def test_one_port_configured_twice_is_a_conflict(dev_settings: Settings) -> None:
    shared = dev_settings.port("codec_server")
    settings = dev_settings.model_copy(
        update={"ports": {**dev_settings.ports, "temporal_ui": shared}}
    )

    conflicts = find_port_conflicts(build_registry(settings).processes)

    assert [(c.process, c.binding.setting) for c in conflicts] == [("codec_server", "codec_server")]
    assert conflicts[0].reason == "also configured for temporal (temporal_ui)"


def test_free_ports_have_no_conflict(dev_settings: Settings) -> None:
    assert find_port_conflicts(build_registry(dev_settings).processes) == []


def test_out_of_range_port_is_reported(dev_settings: Settings) -> None:
    settings = dev_settings.model_copy(update={"ports": {**dev_settings.ports, "temporal": 70000}})

    conflicts = find_port_conflicts(build_registry(settings).processes)

    assert [(c.binding.port, c.reason) for c in conflicts] == [(70000, "not a valid port number")]


def test_list_prints_and_starts_nothing(
    dev_settings: Settings, spawned: list[tuple[Any, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_stack(_args("--list", "--only", "temporal"), dev_settings)

    out = capsys.readouterr().out
    assert code == 0
    assert f"temporal  127.0.0.1:{dev_settings.port('temporal')} (temporal)" in out
    assert "codec_server" not in out
    assert spawned == []
    assert not dev_settings.data_dir.exists()


def test_unknown_process_is_a_usage_error(
    dev_settings: Settings, spawned: list[tuple[Any, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_stack(_args("--only", "temporl"), dev_settings)

    assert code == 2
    assert "unknown process 'temporl'" in capsys.readouterr().err
    assert spawned == []


def test_second_launcher_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(DataDirError, match=rf"in use by another adx dev \(pid {os.getpid()}\)"):
            DataDirLock(tmp_path).acquire()
    finally:
        first.release()
    # Released: the next launcher may use it.
    again = DataDirLock(tmp_path)
    again.acquire()
    again.release()


def test_reset_empties_the_data_dir_but_keeps_the_lock(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "temporal").mkdir(parents=True)
    (data_dir / "temporal" / "temporal.sqlite").write_text("old")
    (data_dir / "keys.json").write_text("{}")
    lock = DataDirLock(data_dir)
    lock.acquire()
    try:
        removed = reset_data_dir(data_dir)
    finally:
        lock.release()

    assert sorted(p.name for p in removed) == ["keys.json", "temporal"]
    assert [p.name for p in data_dir.iterdir()] == [LOCK_FILE_NAME]


@pytest.mark.parametrize("protected", [REPO_ROOT, REPO_ROOT.parent, Path.home(), Path("/")])
def test_reset_refuses_directories_holding_the_repo_or_home(protected: Path) -> None:
    with pytest.raises(DataDirError, match="refusing to --reset"):
        check_reset_is_safe(protected)


def test_reset_flag_deletes_old_data_before_start_only_when_ports_are_free(
    dev_settings: Settings,
    listening_socket: socket.socket,
    spawned: list[tuple[Any, ...]],
) -> None:
    """A refused start (busy port) does not reset either."""
    old = dev_settings.data_dir / "temporal" / "temporal.sqlite"
    old.parent.mkdir(parents=True)
    old.write_text("precious")
    port = listening_socket.getsockname()[1]
    settings = dev_settings.model_copy(update={"ports": {**dev_settings.ports, "temporal": port}})

    assert run_stack(_args("--reset"), settings) != 0

    assert old.read_text() == "precious"
    assert spawned == []
