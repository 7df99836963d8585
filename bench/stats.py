"""Distributions, and what the kernel says about a process (CPU time, resident memory)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Dist:
    """A latency distribution in milliseconds."""

    n: int
    p50: float
    p90: float
    p99: float
    mean: float
    min: float
    max: float

    @classmethod
    def of(cls, values_ms: Iterable[float]) -> Dist:
        values = list(values_ms)
        if not values:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
        return cls(
            n=len(values),
            p50=percentile(values, 50),
            p90=percentile(values, 90),
            p99=percentile(values, 99),
            mean=sum(values) / len(values),
            min=min(values),
            max=max(values),
        )

    def json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "p50_ms": _round(self.p50),
            "p90_ms": _round(self.p90),
            "p99_ms": _round(self.p99),
            "mean_ms": _round(self.mean),
            "min_ms": _round(self.min),
            "max_ms": _round(self.max),
        }


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


# /proc ------------------------------------------------------------------------------------


def cpu_ns(pid: int) -> int:
    """CPU time the process has used so far, in ns: the sum of its threads' run time from
    schedstat (ns resolution), or utime+stime in clock ticks where schedstat is missing.
    0 for a process that is gone."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
        if total:
            return total
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * _TICK_NS
    except (OSError, ValueError, IndexError):
        return 0


def rss_kb(pid: int) -> int:
    """Resident set size in KiB (0 for a process that is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return 0


def machine_busy_ns() -> int:
    """CPU time all CPUs of the machine spent busy so far (every process, ours or not)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return 0
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) * _TICK_NS


class CpuWindow:
    """CPU used by each process between ``start`` and ``stop``, as a share of one core."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._pids = dict(pids)
        self._start: dict[str, int] = {}
        self._t0 = 0.0
        self.used_ns: dict[str, int] = {}
        self.seconds = 0.0
        self._machine_start = 0
        self.machine_ns = 0

    def start(self) -> CpuWindow:
        self._t0 = _now()
        self._start = {name: cpu_ns(pid) for name, pid in self._pids.items()}
        self._machine_start = machine_busy_ns()
        return self

    def stop(self) -> CpuWindow:
        self.seconds = _now() - self._t0
        self.used_ns = {
            name: max(0, cpu_ns(pid) - self._start[name]) for name, pid in self._pids.items()
        }
        self.machine_ns = max(0, machine_busy_ns() - self._machine_start)
        return self

    def machine_percent(self) -> float:
        """The whole machine's busy CPU in the window (100 = one core), other users included."""
        return round(self.machine_ns / 1e9 / self.seconds * 100, 1) if self.seconds > 0 else 0.0

    def percent(self) -> dict[str, float]:
        """Per process: 100 = one core busy the whole window."""
        if self.seconds <= 0:
            return {name: 0.0 for name in self._pids}
        return {
            name: round(used / 1e9 / self.seconds * 100, 1) for name, used in self.used_ns.items()
        }


class RssPeak:
    """Samples every process's RSS in the background and keeps the highest value seen."""

    def __init__(self, pids: Mapping[str, int], interval: float = 0.1) -> None:
        self._pids = dict(pids)
        self._interval = interval
        self.peak_kb: dict[str, int] = {name: rss_kb(pid) for name, pid in self._pids.items()}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RssPeak:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._take()

    async def _sample(self) -> None:
        while True:
            self._take()
            await asyncio.sleep(self._interval)

    def _take(self) -> None:
        for name, pid in self._pids.items():
            self.peak_kb[name] = max(self.peak_kb[name], rss_kb(pid))


def _now() -> float:
    return asyncio.get_running_loop().time()
