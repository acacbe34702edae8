"""The relay's reconciliation driver and the operator's actions on what it finds.

``Reconciler.run_now()`` asks the collector about every source (``descent.find_differences``), records what
differs in the missing list (``store.missing``), and under ``auto_resend`` puts what the relay still has back
into the outbox at once. Records (``ItemKind.RECORD``) and whole files (``ItemKind.FILE``, per
``<source>/files`` source) are reconciled the same way; a file is resendable while the relay's content store
still has its content, and a resend puts it back into the file outbox for the file sender. ``run()`` does
that every ``interval_s``. ``missing_list``, ``resend`` and ``acknowledge_lost`` are the operator's side
(the REST API and the CLI call them); they need no collector connection, so they also work on a stopped
relay's stores.

A resend is an ordinary outbox batch: the collector dedupes what it already has and keeps a differing copy as
a conflict beside the first, never over it. So resending a digest mismatch does not "fix" it: it delivers the
relay's version as evidence, the entry becomes ``resent``, and later reconciliations keep finding the
mismatch (same entry, ``seen_ns`` moves) until an operator acknowledges it. A resent file whose stored
content the collector found damaged is different: the collector sets the damaged content aside and keeps
the relay's verified copy, so the entry resolves. This module never deletes an
entry, never changes a tally, and never resends what the relay no longer has.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from logferry.errors import LogferryError, ProtocolError, StoreError, TransportError
from logferry.log_repeats import Repeats
from logferry.model import Codec
from logferry.protocol.framing import encode_frame
from logferry.protocol.messages import (
    ItemsAnswer,
    ItemsQuery,
    RangeSummary,
    ReconcileAnswer,
    ReconcileQuery,
)
from logferry.reconcile import relay_store
from logferry.reconcile.descent import Expected, Findings, Probe, find_differences
from logferry.reconcile.summary import ItemKind, Summary
from logferry.reconcile.tables import range_sum
from logferry.store import journal_files
from logferry.store.content import ContentStore
from logferry.store.journal import Journal
from logferry.store.missing import MissingEntry, MissingKind, MissingState, MissingStore, subtract
from logferry.store.runs import Range, ranges_of

log = logging.getLogger("logferry.reconcile")

Query = ReconcileQuery | ItemsQuery
Answer = ReconcileAnswer | ItemsAnswer
_RESENDABLE = (MissingKind.MISSING_AT_COLLECTOR, MissingKind.DIGEST_MISMATCH)


class ReconcileUnavailable(LogferryError):
    """Reconciliation cannot run now (no session with the collector); try again once it is connected."""


class CollectorLink(Protocol):
    """The relay's session with the collector (``transport.sender.Sender`` is one)."""

    async def ask(self, make: Callable[[int], Query], timeout_s: float = 30.0) -> Answer:
        """Send the query built for a fresh query id; return its answer. Raises TransportError."""
        ...


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """One reconciliation: what it cost and what it found."""

    started_ns: int
    duration_s: float
    sources: int
    questions: int
    leaves: int
    bytes_sent: int
    bytes_received: int
    clean: bool
    new_entries: int
    resent_entries: int


@dataclass(frozen=True, slots=True)
class ResendResult:
    entries: int  # entries whose records went back into the outbox
    records: int
    skipped: list[int]  # ids not resendable: unknown, settled, not the relay's to resend, or no longer kept
    files: int = 0  # file items put back into the file outbox


class _JournalItems:
    """The relay's side of the descent, read from the journal."""

    def __init__(self, journal: Journal, kind: ItemKind) -> None:
        self.journal = journal
        self.kind = kind

    async def summary(self, source: str, first: int, last: int) -> Summary:
        return await self.journal.read_with(lambda c: range_sum(c, source, self.kind, first, last))

    async def expected(self, source: str, first: int, last: int) -> Expected | None:
        return await self.journal.read_with(lambda c: relay_store.leaf_records(c, source, first, last))


class _JournalFiles:
    """The relay's side of the descent for whole files: the journal's file items and the kept content."""

    def __init__(self, journal: Journal, content: ContentStore) -> None:
        self.journal = journal
        self.content = content

    async def summary(self, source: str, first: int, last: int) -> Summary:
        return await self.journal.read_with(lambda c: range_sum(c, source, ItemKind.FILE, first, last))

    async def expected(self, source: str, first: int, last: int) -> Expected | None:
        leaf = await self.journal.read_with(lambda c: relay_store.leaf_files(c, source, first, last))
        if leaf is None:
            return None
        sent, summary = leaf
        kept = await asyncio.to_thread(lambda: {q: h[:8] for q, h in sent if self.content.has(h)})
        return Expected(frozenset(q for q, _ in sent), kept, summary)


class _CollectorItems:
    """The collector's side of the descent, over the link; counts the bytes of every frame both ways."""

    def __init__(self, link: CollectorLink, kind: ItemKind) -> None:
        self.link = link
        self.kind = kind
        self.sent = 0
        self.received = 0

    async def _ask(self, make: Callable[[int], Query]) -> Answer:
        sizes: list[int] = []

        def build(query_id: int) -> Query:
            query = make(query_id)
            sizes.append(len(encode_frame(query)))
            return query

        answer = await self.link.ask(build)
        self.sent += sum(sizes)
        self.received += len(encode_frame(answer))
        return answer

    async def differing(self, probes: Sequence[Probe]) -> dict[int, Summary]:
        ranges = [RangeSummary(p.source, p.first, p.last, *p.summary.as_tuple()) for p in probes]
        answer = await self._ask(lambda qid: ReconcileQuery(qid, int(self.kind), ranges))
        if not isinstance(answer, ReconcileAnswer):
            raise ProtocolError("the collector answered a ReconcileQuery with ItemsAnswer")
        return {d.index: Summary(d.count, d.xor, d.sum) for d in answer.differ}

    async def items(self, source: str, first: int, last: int) -> dict[int, bytes]:
        answer = await self._ask(lambda qid: ItemsQuery(qid, int(self.kind), source, first, last))
        if not isinstance(answer, ItemsAnswer):
            raise ProtocolError("the collector answered an ItemsQuery with ReconcileAnswer")
        seqs = [s for lo, hi in answer.ranges for s in range(lo, hi + 1)]
        if len(answer.digests) != 8 * len(seqs):
            raise ProtocolError(f"ItemsAnswer: {len(seqs)} seqs but {len(answer.digests)} digest bytes")
        return {s: answer.digests[8 * i : 8 * i + 8] for i, s in enumerate(seqs)}


class Reconciler:
    """Reconciles the relay's records with the collector; owns the missing list's operator actions."""

    def __init__(
        self,
        journal: Journal,
        missing: MissingStore,
        link: CollectorLink | None,
        *,
        auto_resend: bool,
        interval_s: float,
        codec: Codec = Codec.MSGPACK,
        on_outbox: Callable[[], None] = lambda: None,
        content: ContentStore | None = None,
        on_files: Callable[[], None] = lambda: None,
    ) -> None:
        self.journal = journal
        self.missing = missing
        self.link = link
        self.auto_resend = auto_resend
        self.interval_s = interval_s
        self.codec = codec
        self.on_outbox = on_outbox
        self.content = content  # the relay's file content; None: files are neither reconciled nor resent
        self.on_files = on_files
        self.last_report: ReconcileReport | None = None
        self.last_error = ""
        self._failures = Repeats(log)  # why scheduled runs fail or are skipped, said once while it lasts
        self._lock = asyncio.Lock()

    async def run(self, stopping: asyncio.Event) -> None:
        """Reconcile every ``interval_s`` until ``stopping`` is set; failures are logged and retried."""
        if self.interval_s <= 0:
            return
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.interval_s)
            if stopping.is_set():
                return
            try:
                await self.run_now()
                self._failures.clear()
            except ReconcileUnavailable as exc:
                self._failures.say(logging.INFO, f"reconciliation skipped: {exc}")
            except (TransportError, ProtocolError, StoreError) as exc:
                self.last_error = str(exc)
                # A collector away for hours fails every run: said once, then as a reminder.
                self._failures.say(
                    logging.WARNING, f"reconciliation failed, will retry every {self.interval_s:g} s: {exc}"
                )

    async def run_now(self) -> ReconcileReport:
        """Reconcile every source now (one at a time: a call waits for a run in progress)."""
        if self.link is None:
            raise ReconcileUnavailable("this relay has no collector link (offline tools cannot reconcile)")
        async with self._lock:
            report = await self._run(self.link)
        self.last_report, self.last_error = report, ""
        return report

    async def _run(self, link: CollectorLink) -> ReconcileReport:
        started_ns, t0 = time.time_ns(), time.monotonic()
        sources = questions = leaves = sent = received = new = 0
        clean = True
        kinds = [ItemKind.RECORD] + ([ItemKind.FILE] if self.content is not None else [])
        for kind in kinds:
            local: _JournalItems | _JournalFiles
            if kind is ItemKind.FILE and self.content is not None:
                local = _JournalFiles(self.journal, self.content)
            else:
                local = _JournalItems(self.journal, kind)
            # Roots and their summaries in one read: a summary read later could count an item sent since,
            # still in flight, and send the descent down for nothing.
            roots, probes = await self.journal.read_with(functools.partial(_root_probes, kind=kind))
            peer = _CollectorItems(link, kind)
            found = await find_differences(local, peer, probes) if probes else Findings()
            for root in roots:
                # An unsettled leaf was not compared: what was listed there stays as it is until it settles.
                waiting = found.unsettled.get(root.source, [])
                for lo, hi in subtract([(root.first, root.last)], waiting):
                    new += await self.missing.update(
                        root.source, kind, (lo, hi), _by_kind(found, root.source, lo, hi)
                    )
            for source, ranges in found.extra.items():
                # Listed by the collector after the relay read its leaf: sent since, or never by this relay.
                never = await self.journal.read_with(functools.partial(_not_sent, kind, source, ranges))
                if never:
                    log.warning(
                        "the collector holds %s seqs %s that this relay never forwarded", source, never[:8]
                    )
            if found.unsettled:
                log.info("reconciliation: %s still await the collector's acknowledgement; compared next time",
                         sorted(found.unsettled.items())[:4])  # fmt: skip
            sources += len(roots)
            questions += found.questions
            leaves += found.leaves
            sent += peer.sent
            received += peer.received
            clean = clean and found.clean
        resent = 0
        if self.auto_resend and not clean:
            resent = (await self.resend([e.id for e in await self._open_resendable()])).entries
        report = ReconcileReport(
            started_ns, time.monotonic() - t0, sources, questions, leaves, sent, received, clean, new, resent,
        )  # fmt: skip
        # News is a WARNING: new missing entries, or resends. Differences already on the missing list (an
        # operator has not acted on them yet, for days maybe) are said at INFO, not every interval again.
        level = logging.WARNING if new or resent else logging.INFO
        log.log(level, "reconciled %d sources in %.3f s, %d questions, %d+%d bytes: %s", sources,
                report.duration_s, questions, sent, received,
                "in sync" if clean else f"{new} new missing entries, {resent} resent")  # fmt: skip
        return report

    async def _open_resendable(self) -> list[MissingEntry]:
        out: list[MissingEntry] = []
        for kind in _RESENDABLE:
            out.extend(await self.missing.entries(state=MissingState.OPEN, kind=kind, limit=10_000))
        return out

    # ---- the operator's actions -------------------------------------------------------------------------

    async def missing_list(
        self,
        *,
        state: MissingState | None = None,
        kind: MissingKind | None = None,
        source: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[MissingEntry]:
        """The missing list, newest first, filtered by every argument given."""
        return await self.missing.entries(state=state, kind=kind, source=source, limit=limit, offset=offset)

    async def resend(self, ids: Sequence[int]) -> ResendResult:
        """Put the records of these entries back into the outbox (new batches), as far as the relay has them.

        Only live ``missing_at_collector`` and ``digest_mismatch`` entries are resendable; what the outbox no
        longer holds is reported ``lost`` by the next reconciliation.
        """
        entries = await self.missing.get(ids)
        done: list[int] = []
        records = files = 0
        for e in entries:
            if e.kind not in _RESENDABLE or e.state not in (MissingState.OPEN, MissingState.RESENT):
                continue
            if e.item is ItemKind.FILE:
                n = await self._resend_files(e)
                if n:
                    files += n
                    done.append(e.id)
                continue
            kept = await self.journal.outbox_records(e.source, e.first_seq, e.last_seq)
            if not kept:
                continue
            put_back = functools.partial(
                relay_store.insert_resend,
                source=e.source,
                records=kept,
                codec=self.codec,
                now_ns=time.time_ns(),
            )
            records += await self.journal.write_with(put_back)
            done.append(e.id)
        if done:
            await self.missing.mark_resent(done)
            if records:
                self.on_outbox()
            if files:
                self.on_files()
            log.info("resent %d records and %d files of %d missing entries to the collector", records, files,
                     len(done))  # fmt: skip
        skipped = sorted(set(ids) - set(done))
        return ResendResult(len(done), records, skipped, files)

    async def _resend_files(self, e: MissingEntry) -> int:
        """Put the entry's files whose content the relay still has back into the file outbox."""
        content = self.content
        if content is None:
            return 0
        sent = await self.journal.read_with(
            lambda c: relay_store.sent_files(c, e.source, e.first_seq, e.last_seq)
        )
        keys = await asyncio.to_thread(lambda: [(e.source, q) for q, h in sent if content.has(h)])
        if not keys:
            return 0
        return await self.journal.write_with(lambda c: journal_files.requeue(c, keys))

    async def acknowledge_lost(self, ids: Sequence[int], who: str) -> int:
        """An operator accepts these entries as they are (lost, mismatched); they are never reported again."""
        if not who:
            raise ValueError("say who acknowledges: the missing list keeps it")
        changed = await self.missing.acknowledge(ids, who)
        log.info("%s acknowledged %d missing entries", who, changed)
        return changed


def _root_probes(conn: sqlite3.Connection, kind: ItemKind) -> tuple[list[relay_store.Root], list[Probe]]:
    roots = relay_store.roots(conn, kind)
    return roots, [
        Probe(r.source, r.first, r.last, range_sum(conn, r.source, kind, r.first, r.last)) for r in roots
    ]


def _not_sent(kind: ItemKind, source: str, ranges: Sequence[Range], conn: sqlite3.Connection) -> list[Range]:
    """The parts of ``ranges`` that the journal does not record as sent to the collector."""
    sent: set[int] = set()
    for first, last in ranges:
        if kind is ItemKind.FILE:
            sent.update(q for q, _ in relay_store.sent_files(conn, source, first, last))
        else:
            sent.update(relay_store.sent_seqs(conn, source, first, last))
    return subtract(ranges, ranges_of(sent))


def _by_kind(found: Findings, source: str, lo: int, hi: int) -> dict[MissingKind, list[Range]]:
    """The findings of ``source`` inside ``lo..hi``."""

    def inside(ranges: dict[str, list[Range]]) -> list[Range]:
        return [(max(f, lo), min(la, hi)) for f, la in ranges.get(source, []) if la >= lo and f <= hi]

    return {
        MissingKind.MISSING_AT_COLLECTOR: inside(found.resendable),
        MissingKind.LOST: inside(found.lost),
        MissingKind.DIGEST_MISMATCH: inside(found.mismatched),
    }
