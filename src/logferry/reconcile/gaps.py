"""Holes in an agent's seqs, seen from the relay: when to ask the agent again, and what it could not give.

Seqs count 1, 2, 3 … per source without holes, so a batch that lands past a source's contiguous prefix
(``Journal.acked_through``) means something in between never arrived: a spool problem, a bug, a lost
batch. After such a commit the relay asks the agent on that connection for the holes (``ResendRequest``);
the agent answers with ordinary batches, and with ``Unavailable`` for what its spool no longer has, which
goes to the missing list as ``missing_at_device`` and is never asked for again.

A source is asked at most once per ``retry_s`` (a hole the agent is still filling is not asked twice), and
one request names at most ``max_request_seqs`` seqs. An operator may also ask a connected agent at once
(:meth:`AgentGaps.ask`: "ask the device", ``POST /api/missing/ask``), for its holes or for ranges it once
reported unavailable. This module never writes the journal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from logferry.reconcile import relay_store
from logferry.store.journal import Journal
from logferry.store.missing import MissingStore, subtract
from logferry.store.runs import Range

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
    ) -> None:
        self.journal = journal
        self.missing = missing
        self.retry_s = retry_s
        self.max_request_seqs = max_request_seqs
        self.clock = clock
        self.requests = 0
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
        """After a commit of ``committed`` ranges: the holes to ask the agent for now (often none)."""
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
        if added:
            log.warning(
                "source %s cannot resend seqs %s: listed as missing at the device", source, list(ranges)[:8]
            )
