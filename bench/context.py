"""What every measurement gets: the running stack, the run's settings, a Temporal client of
its own (the benchmark process is also a workflow_client user), and where results go."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client

from bench.stack import Stack
from subscriptions.hub import ProgressHub
from workflow_client.operations import WorkflowOperations

SELF = "bench client"


@dataclass(frozen=True)
class Profile:
    """How much each measurement does: ``quick`` (about a minute) or ``full``."""

    name: str
    overhead_rounds: int
    floor_samples: int
    bff_rounds: int
    bff_block: int
    aggregation_rounds: int
    throughput_levels: tuple[int, ...]
    throughput_warmup: float
    throughput_seconds: float
    subscriber_levels: tuple[int, ...]
    progress_seconds: float
    ws_subscriptions: int
    sse_subscriptions: int
    # How long deliveries stamped inside a fan-out window may still arrive.
    fanout_grace: float


QUICK = Profile(
    name="quick",
    overhead_rounds=30,
    floor_samples=20,
    bff_rounds=8,
    bff_block=15,
    aggregation_rounds=8,
    throughput_levels=(1, 10, 50),
    throughput_warmup=1.0,
    throughput_seconds=3.0,
    subscriber_levels=(1, 10, 100, 1000),
    progress_seconds=3.0,
    ws_subscriptions=200,
    sse_subscriptions=0,
    fanout_grace=2.0,
)
FULL = Profile(
    name="full",
    overhead_rounds=300,
    floor_samples=200,
    bff_rounds=40,
    bff_block=50,
    aggregation_rounds=40,
    throughput_levels=(1, 10, 50),
    throughput_warmup=1.0,
    throughput_seconds=10.0,
    subscriber_levels=(1, 10, 100, 1000),
    progress_seconds=10.0,
    ws_subscriptions=1000,
    sse_subscriptions=1000,
    fanout_grace=10.0,
)


@dataclass
class Row:
    section: str
    metric: str
    value: str
    goal: str = ""
    verdict: str = ""


@dataclass
class Bench:
    stack: Stack
    profile: Profile
    client: Client
    ops: WorkflowOperations
    hub: ProgressHub
    token: str
    # Read workflows whose worker answered during warm-up (the parts of a dashboard).
    parts: list[str] = field(default_factory=list)
    # The selection of the user BFF's real ``dashboard`` field, when that BFF exists.
    dashboard_query: str | None = None
    results: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def row(
        self, section: str, metric: str, value: str, goal: str = "", met: bool | None = None
    ) -> None:
        verdict = "" if met is None else ("met" if met else "MISSED")
        self.rows.append(Row(section, metric, value, goal, verdict))


def ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def ratio(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def safe_ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan
