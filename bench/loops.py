"""How requests are driven: side by side (variants interleaved, so drift in the machine's load
hits every variant alike) or as closed loops of concurrent clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

Call = Callable[[], Awaitable[object]]


async def timed(call: Call) -> float:
    """One call's latency in ms."""
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


async def interleaved(variants: Mapping[str, Call], rounds: int) -> dict[str, list[float]]:
    """Each round calls every variant once, in turn; returns the latencies (ms) by variant."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, call in variants.items():
            samples[name].append(await timed(call))
    return samples


@dataclass
class LoopResult:
    concurrency: int
    seconds: float
    completed: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    first_error: str | None = None

    @property
    def per_second(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0


async def closed_loop(
    operation: Callable[[int], Awaitable[object]],
    concurrency: int,
    *,
    warmup: float,
    seconds: float,
    on_window: Callable[[bool], None] | None = None,
) -> LoopResult:
    """``concurrency`` clients, each calling ``operation(client_index)`` back to back for
    ``warmup + seconds``; only calls that end inside the measured window count.
    ``on_window(True)`` runs when the window opens, ``on_window(False)`` when it closes."""
    result = LoopResult(concurrency=concurrency, seconds=seconds)
    loop = asyncio.get_running_loop()
    window_start = loop.time() + warmup
    window_end = window_start + seconds
    opened = asyncio.Event()

    async def opener() -> None:
        await asyncio.sleep(max(0.0, window_start - loop.time()))
        if on_window is not None:
            on_window(True)
        opened.set()
        await asyncio.sleep(max(0.0, window_end - loop.time()))
        if on_window is not None:
            on_window(False)

    async def client(index: int) -> None:
        while loop.time() < window_end:
            started = loop.time()
            try:
                await operation(index)
            except Exception as error:  # counted, and the first one is reported
                ended = loop.time()
                if window_start <= ended <= window_end:
                    result.errors += 1
                    result.first_error = result.first_error or f"{type(error).__name__}: {error}"
                await asyncio.sleep(0.01)
                continue
            ended = loop.time()
            if window_start <= ended <= window_end:
                result.completed += 1
                result.latencies_ms.append((ended - started) * 1000)

    await asyncio.gather(opener(), *(client(i) for i in range(concurrency)))
    return result
