"""The relay's throughput: counters of what came in and what went out, and a short history of rates.

:class:`Throughput` is four running totals the relay bumps where the traffic passes: records and bytes
received (agents' batches, syslog and line messages) and records and bytes forwarded (outbox batches the
collector acknowledged). :class:`RateHistory` samples them every ``interval_s`` into a ring buffer of at most
``keep`` samples (ten minutes by default) and turns consecutive samples into per-second rates, which
``GET /api/rates``, ``GET /api/status`` and the console's Overview charts show.

This module is pure Python and cheap to import (a role imports it at start-up). It keeps no store and must
never block: a sample is four integer reads; memory is bounded by ``keep``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_INTERVAL_S = 2.0
DEFAULT_KEEP = 300  # samples: 10 minutes at 2 s


@dataclass
class Throughput:
    """Running totals since start (never reset): what the relay received and what the collector acked."""

    records_in: int = 0
    bytes_in: int = 0
    records_out: int = 0
    bytes_out: int = 0

    def came_in(self, records: int, nbytes: int) -> None:
        self.records_in += records
        self.bytes_in += nbytes

    def went_out(self, records: int, nbytes: int) -> None:
        self.records_out += records
        self.bytes_out += nbytes


@dataclass(frozen=True, slots=True)
class Rate:
    """Per-second rates over one sampling interval ending at ``at_ns``."""

    at_ns: int
    records_in: float
    bytes_in: float
    records_out: float
    bytes_out: float


ZERO = Rate(0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class _Sample:
    at_ns: int
    monotonic: float
    totals: tuple[int, int, int, int]


class RateHistory:
    """A bounded ring buffer of rate samples taken from a :class:`Throughput`."""

    def __init__(
        self,
        counters: Throughput,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        keep: int = DEFAULT_KEEP,
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.counters = counters
        self.interval_s = interval_s
        self._clock = clock
        self._wall_ns = wall_ns
        self._last: _Sample | None = None
        self._rates: deque[Rate] = deque(maxlen=keep)

    def _totals(self) -> tuple[int, int, int, int]:
        c = self.counters
        return (c.records_in, c.bytes_in, c.records_out, c.bytes_out)

    def sample(self) -> Rate | None:
        """Take one sample; the rate since the previous one (None for the very first sample)."""
        now = _Sample(self._wall_ns(), self._clock(), self._totals())
        last, self._last = self._last, now
        if last is None:
            return None
        span = now.monotonic - last.monotonic
        if span <= 0:
            return None
        deltas = [max(0, a - b) / span for a, b in zip(now.totals, last.totals, strict=True)]
        rate = Rate(now.at_ns, *deltas)
        self._rates.append(rate)
        return rate

    def history(self, seconds: float | None = None) -> list[Rate]:
        """The rates of the last ``seconds`` (all kept when None), oldest first."""
        if seconds is None or not self._rates:
            return list(self._rates)
        since = self._rates[-1].at_ns - int(seconds * 1e9)
        return [r for r in self._rates if r.at_ns > since]

    def latest(self) -> Rate:
        """The most recent rate; zeros before two samples were taken."""
        return self._rates[-1] if self._rates else ZERO

    async def run(self, stopping: asyncio.Event) -> None:
        """Sample every ``interval_s`` until ``stopping`` is set (the role owns this task)."""
        self.sample()
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.interval_s)
            self.sample()


def oldest_unacked_outbox_ns(conn: sqlite3.Connection) -> int | None:
    """When the oldest outbox batch the collector has not acknowledged was written (index outbox_state)."""
    row = conn.execute("SELECT created_ns FROM outbox WHERE acked = 0 ORDER BY id LIMIT 1").fetchone()
    return None if row is None else int(row[0])
