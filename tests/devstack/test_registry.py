"""The registry: the Temporal dev server's command line, the codec server, selection."""

from __future__ import annotations

import json
import sys

import pytest

from adx.devstack.registry import SelectionError, build_registry, select
from adx.devstack.spec import HttpCheck, TcpCheck
from adx.devstack.table import render_process_list
from adx.devstack.temporal import SEARCH_ATTRIBUTES, database_file, temporal_argv
from adx.settings import Settings
from graph.runtime import BFFS
from services.command import SERVICES


def _values_of(argv: list[str] | tuple[str, ...], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def test_temporal_command_line_carries_namespaces_attributes_db_and_codec(
    dev_settings: Settings,
) -> None:
    argv = temporal_argv(dev_settings)

    assert argv[0] == str(dev_settings.temporal_cli())
    assert argv[1:3] == ["server", "start-dev"]
    assert _values_of(argv, "--ip") == ["127.0.0.1"]
    assert _values_of(argv, "--port") == [str(dev_settings.port("temporal"))]
    assert _values_of(argv, "--ui-port") == [str(dev_settings.port("temporal_ui"))]
    # "default" is created by the CLI itself; passing it again is not needed.
    assert _values_of(argv, "--namespace") == ["development", "staging", "production"]
    assert _values_of(argv, "--search-attribute") == [
        "TenantId=Keyword",
        "UserId=Keyword",
        "OperationType=Keyword",
    ]
    db_file = _values_of(argv, "--db-filename")
    assert db_file == [str(dev_settings.data_dir / "temporal" / "temporal.sqlite")]
    assert _values_of(argv, "--ui-codec-endpoint") == [dev_settings.url("codec_server")]
    assert _values_of(argv, "--log-level") == ["warn"]
    assert "--ui-disable-news-fetch" in argv


# Every service in server and worker mode, then the gateway, then the BFFs.
APPLICATION_PROCESSES = [
    *(f"{service}_{mode}" for service in SERVICES for mode in ("server", "worker")),
    "gateway",
    *(f"bff_{name}" for name in BFFS),
    "router",
]


def test_application_processes_are_registered_in_start_order(dev_settings: Settings) -> None:
    registry = build_registry(dev_settings)
    by_name = {spec.name: spec for spec in registry.processes}
    worker = by_name["user_worker"]
    assert worker.argv == (sys.executable, "-m", "adx", "service", "user", "worker")
    assert worker.ports == ()
    server = by_name["user_server"]
    assert server.readiness == HttpCheck(f"{dev_settings.url('user')}/healthz")
    assert by_name["gateway"].argv[-1] == "gateway"
    assert by_name["bff_workflow"].argv[-2:] == ("bff", "workflow")


def test_search_attributes_constant_names_the_three_keys() -> None:
    assert list(SEARCH_ATTRIBUTES) == ["TenantId", "UserId", "OperationType"]


def test_registry_starts_temporal_first_and_gates_the_rest_on_it(dev_settings: Settings) -> None:
    registry = build_registry(dev_settings)

    assert registry.names == ["temporal", "codec_server", *APPLICATION_PROCESSES]
    temporal, codec = registry.processes[:2]
    assert temporal.ready_before_next
    assert temporal.readiness == TcpCheck("127.0.0.1", dev_settings.port("temporal"))
    assert {(b.setting, b.port) for b in temporal.ports} == {
        ("temporal", dev_settings.port("temporal")),
        ("temporal_ui", dev_settings.port("temporal_ui")),
    }
    assert database_file(dev_settings).parent in temporal.directories
    rows = {row.label: row.value for row in temporal.table_rows}
    assert rows["Temporal gRPC"] == f"127.0.0.1:{dev_settings.port('temporal')}"
    assert rows["Temporal UI"] == f"http://127.0.0.1:{dev_settings.port('temporal_ui')}"
    assert rows["Temporal namespaces"] == "default, development, staging, production"

    assert codec.argv == (sys.executable, "-m", "adx", "codec-server")
    assert codec.readiness == HttpCheck(f"{dev_settings.url('codec_server')}/healthz")
    assert [(b.setting, b.port) for b in codec.ports] == [
        ("codec_server", dev_settings.port("codec_server"))
    ]
    assert not codec.ready_before_next


def test_children_get_the_launchers_ports_and_data_dir(dev_settings: Settings) -> None:
    settings = dev_settings.model_copy(update={"port_offset": 300})
    codec = build_registry(settings).processes[1]

    assert json.loads(codec.env["ADX_PORTS"]) == settings.ports
    assert codec.env["ADX_PORT_OFFSET"] == "300"
    assert codec.env["ADX_DATA_DIR"] == str(settings.data_dir)
    assert codec.env["ADX_HOST"] == "127.0.0.1"


def test_port_offset_moves_default_ports(dev_settings: Settings) -> None:
    settings = dev_settings.model_copy(update={"ports": {}, "port_offset": 1000})
    argv = temporal_argv(settings)

    assert _values_of(argv, "--port") == ["8233"]
    assert _values_of(argv, "--ui-port") == ["9088"]
    assert _values_of(argv, "--ui-codec-endpoint") == ["http://127.0.0.1:9089"]


def test_external_temporal_is_not_started_but_shown(dev_settings: Settings) -> None:
    settings = dev_settings.model_copy(update={"temporal_address": "temporal.example:7233"})
    registry = build_registry(settings)

    assert registry.names == ["codec_server", *APPLICATION_PROCESSES]
    assert "temporal" in registry.not_started
    rows = {row.label: row.value for row in registry.extra_rows}
    assert rows["Temporal gRPC"] == "temporal.example:7233 (external)"
    with pytest.raises(SelectionError, match="ADX_TEMPORAL_ADDRESS"):
        select(registry, only=["temporal"])


def test_only_and_without_choose_processes(dev_settings: Settings) -> None:
    registry = build_registry(dev_settings)

    assert [s.name for s in select(registry)] == registry.names
    assert [s.name for s in select(registry, only=["temporal"])] == ["temporal"]
    assert [s.name for s in select(registry, only=["codec_server,temporal"])] == [
        "temporal",
        "codec_server",
    ]
    assert [s.name for s in select(registry, without=["temporal"])] == registry.names[1:]
    assert [
        s.name for s in select(registry, only=["temporal", "codec_server"], without=["temporal"])
    ] == ["codec_server"]


@pytest.mark.parametrize(
    ("only", "without", "message"),
    [
        (["tempral"], [], "unknown process 'tempral'; the processes are: temporal, codec_server, "),
        ([], ["nope"], "unknown process 'nope'"),
        (["temporal"], ["temporal"], "leave no process to start"),
    ],
)
def test_bad_selection_is_an_error(
    dev_settings: Settings, only: list[str], without: list[str], message: str
) -> None:
    with pytest.raises(SelectionError, match=message):
        select(build_registry(dev_settings), only=only, without=without)


def test_list_shows_ports_with_their_settings_and_commands(dev_settings: Settings) -> None:
    registry = build_registry(dev_settings)
    text = render_process_list(registry.processes, registry.not_started, dev_settings.data_dir)

    assert f"127.0.0.1:{dev_settings.port('temporal')} (temporal)" in text
    assert f"127.0.0.1:{dev_settings.port('temporal_ui')} (temporal_ui)" in text
    assert f"127.0.0.1:{dev_settings.port('codec_server')} (codec_server)" in text
    assert "server start-dev" in text
    assert "-m adx codec-server" in text
    assert str(dev_settings.data_dir) in text


def test_each_process_gets_its_own_sdk_metrics_port(dev_settings: Settings) -> None:
    """With ADX_TEMPORAL_METRICS_BIND set, one address for every process let only the first
    one start (the others: "Address already in use")."""
    configured = dev_settings.model_copy(update={"temporal_metrics_bind": "127.0.0.1:19464"})
    registry = build_registry(configured)
    binds = {
        spec.name: spec.env["ADX_TEMPORAL_METRICS_BIND"]
        for spec in registry.processes
        if "ADX_TEMPORAL_METRICS_BIND" in spec.env
    }
    connecting = [s.name for s in registry.processes if s.name not in ("temporal", "router")]
    assert set(binds) == set(connecting) - {"codec_server"}
    assert len(set(binds.values())) == len(binds)
    assert sorted(binds.values()) == [f"127.0.0.1:{19464 + i}" for i in range(len(binds))]
    rows = {row.label: row.value for row in registry.extra_rows}
    assert (
        rows["Temporal SDK metrics"] == f"http://127.0.0.1:19464-{19464 + len(binds) - 1}/metrics"
    )
