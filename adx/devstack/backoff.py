"""Restart delays for a crashing child: quick at first, then slower, so a crash loop neither
spins the CPU nor delays recovery from a one-off crash."""

from __future__ import annotations


class Backoff:
    def __init__(self, initial: float = 1.0, maximum: float = 30.0, reset_after: float = 60.0):
        self.initial = initial
        self.maximum = maximum
        # A child that stayed up this long was healthy: its next crash starts the series afresh.
        self.reset_after = reset_after
        self._next = initial

    def next_delay(self, uptime: float) -> float:
        """The wait before restarting a child that ran for ``uptime`` seconds."""
        if uptime >= self.reset_after:
            self._next = self.initial
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay
