"""Holes in an agent's seqs, seen from the relay: when to ask the agent again, and what it could not give.

Seqs count 1, 2, 3 … per source without holes, so a batch that lands past a source's contiguous prefix
(``Journal.acked_through``) means something in between never arrived: a spool problem, a bug, a lost
batch. After such a commit the relay asks the agent on that connection for the holes (``ResendRequest``);
the agent answers with ordinary batches, and with ``Unavailable`` for what its spool no longer has, which
goes to the missing list as ``missing_at_device`` and is not asked for again unless an operator does.

A source is asked at most once per ``retry_s`` (a hole the agent is still filling is not asked twice), and
one request names at most ``max_request_seqs`` seqs. An operator may also ask a connected agent at once
(:meth:`AgentGaps.ask`: "ask the device", ``POST /api/missing/ask``), for its holes or for ranges it once
reported unavailable.

The relay's journal is the truth about what arrived: when seqs of a live ``missing_at_device`` entry are
journaled after all (the agent resent them, on an operator's ask or after its spool was restored), the entry
— or the part of its range that arrived — closes as ``recovered`` by itself. That check costs a dict look-up
per commit: only sources with live device entries (a memory mirror of the missing list) are compared with
the committed ranges. :meth:`AgentGaps.sweep` compares the journal itself, at start and every ``sweep_s``
(``run``), so a commit whose check was skipped (the session closed first, a crash) still closes its entry.
This module never writes the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence

from logferry.errors import StoreError
from logferry.reconcile import relay_store
from logferry.store.journal import Journal
from logferry.store.journal_tx import overlapping
from logferry.store.missing import MissingStore, intersect, subtract
from logferry.store.runs import Range, coalesce

log = logging.getLogger("logferry.reconcile")


class AgentGaps:
    def __init__(
        self,
        journal: Journal,
        missing: MissingStore,
        *,
        retry_s: float = 10.0,
        max_request_seqs: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        sweep_s: float = 60.0,
    ) -> None:
        self.journal = journal
        self.missing = missing
        self.retry_s = retry_s
        self.max_request_seqs = max_request_seqs
        self.clock = clock
        self.sweep_s = sweep_s
        self.requests = 0
        self.recovered = 0  # seqs of missing_at_device entries closed because the journal got them
        # Per source, the ranges of its live missing_at_device entries (None: not loaded yet). A mirror of the
        # missing list, so a commit of a source without such entries costs no read at all.
        self._live: dict[str, list[Range]] | None = None
        self._asked: dict[str, float] = {}
        # The connected agents' sessions, to ask them on an operator's demand: source -> (address, ask).
        self._askers: dict[str, tuple[str, Callable[[list[Range]], Awaitable[None]]]] = {}

    def attach(self, source: str, address: str, ask: Callable[[list[Range]], Awaitable[None]]) -> None:
        self._askers[source] = (address, ask)

    def detach(self, source: str, address: str) -> None:
        """Forget the session at ``address`` (a newer session of the same source stays)."""
        if self._askers.get(source, ("", None))[0] == address:
            del self._askers[source]

    def connected(self, source: str) -> bool:
        return source in self._askers

    async def holes(self, source: str) -> list[Range]:
        """The holes in ``source``'s seqs past its contiguous prefix (what a ResendRequest would name)."""
        at = self.journal.acked_through(source)
        return await self.journal.read_with(lambda c: relay_store.gaps(c, source, at))

    async def ask(self, source: str, ranges: Sequence[Range]) -> list[Range]:
        """Send the agent of ``source`` a ResendRequest for ``ranges`` now (at most ``max_request_seqs``).

        Returns the ranges asked for. Raises KeyError when the agent is not connected and TransportError
        when its session is closing; the agent answers with batches and ``Unavailable`` as usual.
        """
        _address, send = self._askers[source]
        out: list[Range] = []
        budget = self.max_request_seqs
        for lo, hi in sorted(ranges):
            if budget <= 0:
                break
            end = min(hi, lo + budget - 1)
            out.append((lo, end))
            budget -= end - lo + 1
        if out:
            await send(out)
            self._asked[source] = self.clock()
            self.requests += 1
            log.info("asked the agent of %s on an operator's demand to resend seqs %s", source, out[:8])
        return out

    async def wanted(self, source: str, committed: Sequence[Range]) -> list[Range]:
        """After a commit of ``committed`` ranges: close the device entries they fill, and return the holes
        to ask the agent for now (often none)."""
        await self.refilled(source, committed)
        at = self.journal.acked_through(source)
        if not committed or max(hi for _, hi in committed) <= at:
            return []  # the common case, decided from memory: no hole behind this batch
        now = self.clock()
        if now - self._asked.get(source, -self.retry_s) < self.retry_s:
            return []
        holes = await self.journal.read_with(lambda c: relay_store.gaps(c, source, at))
        holes = subtract(holes, await self.missing.device_ranges(source))
        out: list[Range] = []
        budget = self.max_request_seqs
        for lo, hi in holes:
            if budget <= 0:
                break
            end = min(hi, lo + budget - 1)
            out.append((lo, end))
            budget -= end - lo + 1
        if out:
            self._asked[source] = now
            self.requests += 1
            log.warning(
                "source %s has holes in its seqs %s: asking the agent to resend them", source, out[:8]
            )
        return out

    async def unavailable(self, source: str, ranges: Sequence[Range]) -> None:
        """The agent no longer has these seqs: they are missing at the device, for an operator to see."""
        added = await self.missing.add_device_gaps(source, ranges)
        if self._live is not None:
            self._live = None  # reloaded at the next commit: the store knows which parts were new
        if added:
            log.warning(
                "source %s cannot resend seqs %s: listed as missing at the device", source, list(ranges)[:8]
            )

    async def _live_ranges(self) -> dict[str, list[Range]]:
        if self._live is None:
            self._live = await self.missing.live_device_ranges()
        return self._live

    async def refilled(self, source: str, committed: Sequence[Range]) -> int:
        """``committed`` seqs of ``source`` were just journaled: close the live device entries they cover.

        Returns the seqs closed. Costs a dict look-up unless ``source`` has live device entries.
        """
        live = await self._live_ranges()
        arrived = intersect(committed, live.get(source, ()))
        return await self._recover(source, arrived) if arrived else 0

    async def sweep(self) -> int:
        """Close every live device entry whose seqs the journal has now; returns the seqs closed."""
        self._live = None  # start from the store: it is the list an operator sees
        closed = 0
        for source, ranges in (await self._live_ranges()).items():
            have = await self.journal.read_with(functools.partial(journaled, source=source, ranges=ranges))
            if have:
                closed += await self._recover(source, have)
        return closed

    async def run(self, stopping: asyncio.Event) -> None:
        """Sweep at once and then every ``sweep_s`` until ``stopping`` is set; failures are logged."""
        while not stopping.is_set():
            try:
                await self.sweep()
            except StoreError as exc:
                log.warning("cannot check device gaps against the journal, will retry: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.sweep_s)

    async def _recover(self, source: str, arrived: list[Range]) -> int:
        closed = await self.missing.recover_device(source, arrived)
        live = await self._live_ranges()
        rest = subtract(live.get(source, ()), arrived)
        if rest:
            live[source] = rest
        else:
            live.pop(source, None)
        if closed:
            self.recovered += closed
            log.info("source %s sent seqs %s it had been missing: closed as recovered", source, arrived[:8])
        return closed


def journaled(conn: sqlite3.Connection, source: str, ranges: Sequence[Range]) -> list[Range]:
    """The parts of ``ranges`` that ``source``'s journal rows cover (a read; cost: the rows overlapping)."""
    out: list[Range] = []
    for lo, hi in coalesce(ranges):
        spans = [(max(f, lo), min(la, hi)) for _, f, la in overlapping(conn, source, lo, hi)]
        out.extend(spans)
    return coalesce(out)
