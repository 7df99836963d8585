"""``python -m bench [--quick]`` (``make bench``): starts the stack, measures, prints a table and
writes ``bench/results/<timestamp>.json`` (and ``.md``), stops everything it started.

Order: warm-up, idle memory, 1 workflow overhead, 2 BFF overhead, 3 parallel aggregation,
4 throughput (peak memory sampled meanwhile), 5 live progress (and memory per subscription).
A measurement that fails is reported in the notes; the others still run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from adx.logging import configure_logging
from bench import aggregation, bff_cost, dashboard, flows, overhead, progress, throughput
from bench.client import HttpConnection, graphql
from bench.context import FULL, QUICK, SELF, Bench, Profile, Row
from bench.procs import REDIS_ENV
from bench.stack import ALICE, Stack, StartupError
from bench.stats import CpuWindow, RssPeak, rss_kb
from contracts.names import WORKFLOW_TASK_QUEUES, WorkflowType
from subscriptions.hub import ProgressHub
from workflow_client.connect import connect
from workflow_client.models import ExecuteOutcome
from workflow_client.operations import WorkflowOperations

RESULTS = Path(__file__).resolve().parent / "results"
# The worker process each read workflow needs.
READ_WORKERS = {
    WorkflowType.GET_USER_PROFILE.value: "user-worker",
    WorkflowType.GET_RECENT_ACTIVITY.value: "user-worker",
    WorkflowType.GET_TENANT_DATA.value: "tenant-worker",
    WorkflowType.GET_RECENT_FILES.value: "file-worker",
}
OPTIONAL = ("tenant-worker", "file-worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="about a minute instead of minutes")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis cache variant")
    parser.add_argument("--keep", action="store_true", help="keep the run's data dir and logs")
    args = parser.parse_args(argv)
    _raise_open_files_limit()
    profile = QUICK if args.quick else FULL
    workdir = Path(tempfile.mkdtemp(prefix="adx-bench-"))
    command = "make bench" + (" ARGS=--quick" if args.quick else "")
    try:
        report = asyncio.run(_run(profile, workdir, redis=not args.no_redis, command=command))
    except StartupError as error:
        print(f"\nthe stack did not start: {error}\nlogs: {workdir / 'logs'}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; logs: {workdir / 'logs'}", file=sys.stderr)
        return 130
    failed = bool(report["failures"])
    if args.keep or failed:
        print(f"\nlogs and data of this run: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


def _raise_open_files_limit() -> None:
    # A thousand WebSockets need more descriptors than a default soft limit of 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def _run(profile: Profile, workdir: Path, *, redis: bool, command: str) -> dict[str, Any]:
    machine = machine_info()
    stack = Stack.create(workdir)
    # This process is the load client: its own logs would only slow it down.
    configure_logging(stack.settings.model_copy(update={"log_level": "ERROR"}))
    started = time.monotonic()
    print(f"bench ({profile.name}): starting the stack in {workdir} ...", flush=True)
    try:
        bench = await _start(stack, profile, redis=redis)
        startup_seconds = time.monotonic() - started
        print(f"stack up in {startup_seconds:.1f} s; warming up ...", flush=True)
        await _warm_up(bench)
        idle = {name: rss_kb(pid) for name, pid in _pids(bench).items()}
        failures: list[str] = []
        steps: list[tuple[str, Callable[[Bench], Awaitable[None]]]] = [
            ("1 workflow overhead", overhead.measure),
            ("2 BFF overhead", bff_cost.measure),
            ("3 parallel aggregation", aggregation.measure),
        ]
        for name, step in steps:
            await _step(bench, name, step, failures)
        async with RssPeak(_pids(bench)) as peak:
            await _step(bench, "4 throughput", throughput.measure, failures)
        await _step(bench, "5 live progress", progress.measure, failures)
        _memory(bench, idle, peak.peak_kb)
        bench.notes[:0] = stack.notes
    finally:
        stack.stop()
    report = {
        "profile": profile.name,
        "command": command,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "startup_seconds": round(startup_seconds, 1),
        "machine": machine,
        "processes": _process_table(stack),
        "results": bench.results,
        "rows": [row.__dict__ for row in sorted(bench.rows, key=lambda r: r.section[:1])],
        "notes": bench.notes,
        "failures": failures,
    }
    _write(report)
    return report


async def _step(
    bench: Bench, name: str, step: Callable[[Bench], Awaitable[None]], failures: list[str]
) -> None:
    print(f"  {name} ...", flush=True)
    began = time.monotonic()
    window = CpuWindow(_pids(bench)).start()
    try:
        await step(bench)
    except Exception as error:  # one failed measurement must not lose the others
        traceback.print_exc()
        failures.append(f"{name}: {type(error).__name__}: {error}")
        bench.notes.append(f"{name} failed: {type(error).__name__}: {str(error)[:300]}")
    window.stop()
    ours = sum(window.percent().values())
    cores = (os.cpu_count() or 1) * 100
    bench.results.setdefault("cpu_by_section", {})[name] = {
        "seconds": round(window.seconds, 1),
        "stack_and_client_percent": round(ours, 1),
        "machine_busy_percent": window.machine_percent(),
        "by_process_percent": window.percent(),
    }
    bench.row(
        name,
        "CPU while this ran: stack + client / whole machine (other users included)",
        f"{ours:.0f}% / {window.machine_percent():.0f}% of {cores}%",
    )
    print(f"  {name}: {time.monotonic() - began:.1f} s", flush=True)


def _pids(bench: Bench) -> dict[str, int]:
    return {SELF: os.getpid(), **bench.stack.pids()}


# Starting -----------------------------------------------------------------------------------


async def _start(stack: Stack, profile: Profile, *, redis: bool) -> Bench:
    temporal = stack.temporal()
    redis_proc = stack.redis() if redis else None
    await stack.wait_port(temporal, stack.ports["temporal"])
    if redis_proc is not None:
        await stack.wait_port(redis_proc, stack.ports["redis"])
    servers = [
        stack.bench_proc("plain", "plain", stack.ports["plain"]),
        stack.adx("user-server", "service", "user", "server", url=stack.url("user")),
        stack.adx("gateway", "gateway", url=stack.url("gateway")),
        stack.bench_proc(
            "bff-bench",
            "bff",
            stack.ports["bff_bench"],
            extra_env={REDIS_ENV: stack.redis_url} if stack.redis_url else None,
        ),
        stack.adx("bff-workflow", "bff", "workflow", url=stack.url("bff_workflow")),
    ]
    if dashboard.user_bff_listed():
        servers.append(stack.adx("bff-user", "bff", "user", url=stack.url("bff_user")))
    stack.adx("user-worker", "service", "user", "worker")
    stack.adx("tenant-worker", "service", "tenant", "worker")
    stack.adx("file-worker", "service", "file", "worker")
    stack.bench_proc("bench-worker", "worker")
    await asyncio.gather(*(stack.wait_http(proc) for proc in servers))
    for name in ("user-worker", "bench-worker"):
        if not stack.procs[name].alive:
            raise StartupError(f"{name} exited:\n{stack.procs[name].log_tail()}")
    client = await connect(stack.settings)
    queues = {str(k): str(v) for k, v in WORKFLOW_TASK_QUEUES.items()}
    queues.update({flows.NOOP: flows.BENCH_TASK_QUEUE, flows.PROGRESS: flows.BENCH_TASK_QUEUE})
    ops = WorkflowOperations(client, task_queues=queues)
    return Bench(
        stack=stack,
        profile=profile,
        client=client,
        ops=ops,
        hub=ProgressHub(ops),
        token=stack.token(ALICE),
    )


async def _warm_up(bench: Bench) -> None:
    stack = bench.stack
    gateway = HttpConnection(stack.url("gateway"))
    deadline = time.monotonic() + 30
    while True:
        reply = await gateway.request("GET", f"/api/user/users/{ALICE.user_id}", headers=bench.auth)
        if reply.status == 200:
            break
        if time.monotonic() > deadline:
            raise StartupError(f"the gateway's direct call answers {reply.status}: {reply.body!r}")
        await asyncio.sleep(0.5)
    await gateway.close()
    await bench.client.execute_workflow(
        flows.NOOP, id=f"bench-warmup-{time.time_ns()}", task_queue=flows.BENCH_TASK_QUEUE
    )

    async def try_part(part: str) -> str | None:
        worker = stack.procs[READ_WORKERS[part]]
        if not worker.alive:
            tail = worker.log_tail(3).replace("\n", " | ")
            return f"{part}: its worker ({worker.name}) exited: {tail[-300:]}"
        try:
            outcome: ExecuteOutcome[Any] = await asyncio.wait_for(
                bench.ops.execute(
                    ALICE,
                    part,
                    _read_input(part),
                    budget=dt.timedelta(seconds=20),
                ),
                25,
            )
        except Exception as error:  # the part is left out, and the notes say why
            return f"{part}: {type(error).__name__}: {str(error)[:200]}"
        return None if outcome.completed else f"{part}: no result within 20 s"

    problems = await asyncio.gather(*(try_part(part) for part in READ_WORKERS))
    essential = problems[list(READ_WORKERS).index(WorkflowType.GET_USER_PROFILE.value)]
    if essential is not None:
        # Items 1, 3 and 4 stand on this operation: without it there is nothing to measure.
        raise StartupError(f"the user worker does not run get_user_profile: {essential}")
    for part, problem in zip(READ_WORKERS, problems, strict=True):
        if problem is None:
            bench.parts.append(part)
        else:
            bench.notes.append(f"3: left out {problem}")
    for name in OPTIONAL:
        if not stack.procs[name].alive:
            bench.notes.append(f"{name} exited at start (see its log); its reads are left out")
    if "bff-user" in stack.procs:
        try:
            bench.dashboard_query = await dashboard.discover(stack.url("bff_user"), bench.token)
            if bench.dashboard_query is None:
                bench.notes.append("3: bffs/user has no argument-free `dashboard` query field")
        except Exception as error:  # measured without it; the notes say why
            bench.notes.append(f"3: bffs/user dashboard not measured: {str(error)[:300]}")
    else:
        bench.notes.append(
            "3: bffs/user is not there yet: the dashboard is measured through its equivalent "
            "(bench subgraph `aggregate`: WorkflowOperations.execute of the read workflows)"
        )
    bff = HttpConnection(stack.url("bff_bench"))
    await graphql(bff, '{ profile(id: "' + ALICE.user_id + '") { userId } }', token=bench.token)
    await bff.close()


def _read_input(part: str) -> Any:
    from bench.graph import READ_INPUTS

    return READ_INPUTS[part](ALICE)


# Memory (6) ---------------------------------------------------------------------------------


def _memory(bench: Bench, idle: dict[str, int], peak: dict[str, int]) -> None:
    bench.results["memory"] = {
        "rss_idle_kb": idle,
        "rss_peak_during_throughput_kb": peak,
    }
    for name in sorted(idle, key=lambda n: -peak.get(n, 0)):
        bench.row(
            "6 memory",
            f"{name}: RSS idle / under load (peak during 4)",
            f"{idle[name] / 1024:.0f} / {peak.get(name, 0) / 1024:.0f} MiB",
        )
    bench.row(
        "6 memory",
        "all processes: RSS idle / under load",
        f"{sum(idle.values()) / 1024:.0f} / {sum(peak.values()) / 1024:.0f} MiB",
    )


# Reporting ----------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    versions = {}
    for package in ("temporalio", "strawberry-graphql", "graphql-core", "uvicorn", "starlette"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "temporal_cli": _temporal_version(),
        "packages": versions,
        "git": _git(),
    }


def _temporal_version() -> str:
    from adx.settings import Settings

    try:
        out = subprocess.run(
            [str(Settings().temporal_cli()), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, FileNotFoundError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' (uncommitted changes)' if dirty else ''}"


def _process_table(stack: Stack) -> dict[str, str]:
    table = {}
    for name, proc in stack.procs.items():
        args = proc.popen.args
        words = [str(a) for a in args] if isinstance(args, list | tuple) else [str(args)]
        table[name] = " ".join(words[:6])
    return table


def machine_line(machine: dict[str, Any]) -> str:
    return (
        f"{machine['cpu_model']}, {machine['nproc']} vCPU, {machine['memory_gib']} GiB RAM, "
        f"Linux {machine['kernel']}, Python {machine['python']}, {machine['temporal_cli']}, "
        f"load average at start {machine['load_average_at_start'][0]}"
    )


def render_text(rows: list[Row]) -> str:
    width = max(len(r.metric) for r in rows)
    value_width = min(70, max(len(r.value) for r in rows))
    lines = []
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            lines.append(f"\n== {section}")
        goal = f"  [{row.goal}: {row.verdict}]" if row.goal else ""
        lines.append(f"  {row.metric:<{width}}  {row.value:<{value_width}}{goal}")
    return "\n".join(lines)


def render_markdown(rows: list[Row]) -> str:
    lines = ["| # | measurement | result | goal | |", "|---|---|---|---|---|"]
    for row in rows:
        section = row.section.split(" ", 1)[0]
        cells = [section, row.metric, row.value, row.goal, row.verdict]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _write(report: dict[str, Any]) -> None:
    rows = [Row(**row) for row in report["rows"]]
    machine = machine_line(report["machine"])
    print(render_text(rows))
    if report["notes"]:
        print("\nnotes:")
        for note in report["notes"]:
            print(f"  - {note}")
    print(f"\nmachine: {machine}\nrun: {report['seconds']} s ({report['profile']})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{stamp}-{report['profile']}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    markdown = [
        f"`{report['command']}` ({report['profile']}, {report['seconds']} s, "
        f"{report['finished_at']})",
        "",
        f"Machine: {machine}.",
        "",
        render_markdown(rows),
    ]
    if report["notes"]:
        markdown += ["", *(f"- {note}" for note in report["notes"])]
    path.with_suffix(".md").write_text("\n".join(markdown) + "\n")
    print(f"results: {path} (and .md)")
