"""`adx dev` options and the start-up table."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from adx.devstack.command import HELP, add_arguments
from adx.devstack.launcher import effective_settings
from adx.devstack.registry import build_registry
from adx.devstack.table import READY_TITLE, render_ready_table
from adx.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adx dev", description=HELP)
    add_arguments(parser)
    return parser


def test_help_documents_every_option() -> None:
    text = _parser().format_help()

    for option in ("--only", "--without", "--port-offset", "--data-dir", "--reset", "--list"):
        assert option in text
    assert "ADX_PORTS='{\"temporal\": 17233}'" in text
    assert "ADX_PORT_OFFSET" in text


def test_options_parse_repeated_and_comma_separated_names() -> None:
    args = _parser().parse_args(["--only", "temporal,codec_server", "--without", "codec_server"])

    assert args.only == ["temporal,codec_server"]
    assert args.without == ["codec_server"]
    assert not args.reset
    assert not args.list


def test_port_offset_and_data_dir_override_settings(dev_settings: Settings, tmp_path: Path) -> None:
    base = dev_settings.model_copy(update={"ports": {}, "port_offset": 5})
    args = _parser().parse_args(["--port-offset", "200", "--data-dir", str(tmp_path / "x" / "..")])

    settings = effective_settings(args, base)

    assert settings.port("temporal") == 7433
    assert settings.data_dir == tmp_path  # resolved
    assert effective_settings(_parser().parse_args([]), base) is base


def test_port_offset_must_be_a_number() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--port-offset", "many"])


def test_table_lists_every_url_and_flags_what_is_not_ready(dev_settings: Settings) -> None:
    temporal, codec = build_registry(dev_settings).processes[:2]

    table = render_ready_table([(temporal, True), (codec, False)], (), dev_settings.data_dir)

    lines = table.splitlines()
    assert f"{READY_TITLE}, not ready yet: codec_server" in lines
    assert f"  Temporal gRPC        127.0.0.1:{dev_settings.port('temporal')}" in lines
    ui_line = next(line for line in lines if "Temporal UI" in line)
    assert ui_line.rstrip().endswith(dev_settings.url("temporal_ui"))
    codec_line = next(line for line in lines if "Codec server" in line)
    assert dev_settings.url("codec_server") in codec_line
    assert "NOT READY" in codec_line
    assert "default, development, staging, production" in table
    assert f"Data dir             {dev_settings.data_dir}" in table
