"""The relay's whole files: received from agents (rules decide), kept content-addressed, forwarded.

Composes the layers for files the way ``relay.py`` does for records: ``FileIntake`` receives into the
content store under ``<data_dir>/files``; ``RelayFileLedger`` gives each file its fate by the rules (decided
once, at the offer: rules look at source, path and size) and journals it (``store/journal_files.py``)
before the agent is acknowledged; ``RelayFileOutbox`` is the file sender's queue (forwarded and released
files the collector has not acknowledged). Content stays on disk after the collector's acknowledgement so
reconciliation can send it again, up to ``file_keep_bytes`` (``store/file_retention.py``); a dropped file's
content is removed at once unless another item still needs it.

Cut-through: a large file whose fate is *forward* is offered to the collector while it is still arriving
(``LiveFiles``, the intake's tap): the sender reads only bytes the relay's partial holds durably, and sends
``FileDone`` only after the relay verified and journaled its own copy; the agent's ack still waits for that
journal commit, and the relay keeps the content until the collector acknowledged it, as for any file. A
file that turns out bad here is cancelled with ``discard`` so the collector deletes what it got. The chunks
written last stay in memory until forwarded (``RecentPieces``, at most ``RECENT_BYTES`` for all live files):
the partial is written around the page cache, so reading it back would wait for the disk. Nothing here
decides a fate itself (the rules do).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
import weakref
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Collection
from pathlib import Path

from logferry.model import Fate
from logferry.pipeline.rules import RuleSet
from logferry.protocol.connection import Authenticated
from logferry.protocol.messages import FileNack, FileOffer
from logferry.store import journal_files
from logferry.store.content import ContentStore, Partial
from logferry.store.file_intake import FileIntake, Outcome
from logferry.store.journal import Journal
from logferry.store.journal_files import FileItem
from logferry.transport.file_sender import FileAbandoned, Key, OutgoingFile

CUT_THROUGH_MIN_BYTES = 4 << 20  # smaller files gain nothing from being forwarded while they arrive
LOGGED_EACH = 8  # files of one group logged one line each at info level; a larger group gets a summary
DECISIONS_KEPT = 4096  # fates decided at offers whose files have not arrived yet (bounded)
RECENT_BYTES = 128 << 20  # chunks kept in memory for forwarding, all live files together

log = logging.getLogger("logferry.relay")


class RelayFileLedger:
    """Journals a received file with its fate by the rules (``FileLedger`` of the relay's intake)."""

    def __init__(
        self, journal: Journal, rules: RuleSet, content: ContentStore, on_forward: Callable[[], None]
    ) -> None:
        self.journal = journal
        self.rules = rules
        self.content = content
        self.on_forward = on_forward
        self.fates: dict[Fate, int] = {}
        self._decided: OrderedDict[tuple[str, int, bytes], tuple[Fate, str]] = OrderedDict()

    def decide(self, offer: FileOffer) -> tuple[Fate, str]:
        """The file's fate and rule, decided once at its offer (forwarding may start before it arrived)."""
        key = (offer.source, offer.seq, offer.sha256)
        found = self._decided.get(key)
        if found is None:
            found = self.rules.decide_file(offer.source, offer.path, offer.size)
            self._decided[key] = found
            if len(self._decided) > DECISIONS_KEPT:
                self._decided.popitem(last=False)
        return found

    async def files_known(self, files: list[tuple[str, int, bytes]]) -> set[tuple[str, int]]:
        def run(c: sqlite3.Connection) -> list[tuple[str, int, bytes, bytes]]:
            held = journal_files.journaled(c, ((source, seq) for source, seq, _sha in files))
            return [(s, q, sha, held[s, q]) for s, q, sha in files if (s, q) in held]

        known = await self.journal.read_with(run)
        for source, seq, sha, held in known:
            if held != sha:
                log.warning(
                    "file %s:%d offered again with other content; the first version is kept", source, seq
                )
        return {(source, seq) for source, seq, _sha, _held in known}

    async def file_commit_many(self, peer: Authenticated, offers: list[FileOffer]) -> None:
        now = time.time_ns()
        items = []
        for offer in offers:
            fate, rule = self.decide(offer)
            self._decided.pop((offer.source, offer.seq, offer.sha256), None)
            items.append(FileItem(offer.source, offer.seq, offer.path, offer.size, offer.mtime_ns,
                                  offer.sha256, fate, rule, now, False))  # fmt: skip

        await self.journal.write_with(lambda c: journal_files.commit_many(c, items))
        # One line per file, as info for a few, as debug within a large group (one summary line instead).
        each = log.info if len(items) <= LOGGED_EACH else log.debug
        said = log.isEnabledFor(logging.INFO if len(items) <= LOGGED_EACH else logging.DEBUG)
        for item in items:
            self.fates[item.fate] = self.fates.get(item.fate, 0) + 1
            if said:
                each("file %s:%d (%s) %s%s", item.source, item.seq, item.path, item.fate.name.lower(),
                     f" by rule {item.rule}" if item.rule else "")  # fmt: skip
        if len(items) > LOGGED_EACH:
            tally = Counter(item.fate.name.lower() for item in items)
            log.info("%d files from %s: %s", len(items), peer.source,
                     ", ".join(f"{n} {fate}" for fate, n in sorted(tally.items())))  # fmt: skip
        for sha256 in {item.sha256 for item in items if item.fate is Fate.DROPPED}:
            await self._drop_content(sha256)
        if any(item.fate is Fate.FORWARDED for item in items):
            self.on_forward()

    async def _drop_content(self, sha256: bytes) -> None:
        in_use = await self.journal.read_with(lambda c: journal_files.content_in_use(c, sha256))
        if not in_use:
            await asyncio.to_thread(self.content.remove, sha256)


class Budget:
    """Bytes that all live files may keep in memory together: the sum over the pieces still alive (a live
    file nobody forwards any more lets go of its share when it is dropped)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.holders: weakref.WeakSet[RecentPieces] = weakref.WeakSet()

    def room(self, size: int) -> bool:
        return sum(r.bytes for r in self.holders) + size <= self.limit


class RecentPieces:
    """A live file's chunks written here and not yet forwarded, in offset order, within a shared budget.

    A chunk that does not fit is not kept (the sender reads it from the partial); one forwarded, or older
    than the sender's position, is let go.
    """

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.pieces: deque[tuple[int, bytes]] = deque()
        self.bytes = 0
        budget.holders.add(self)

    def add(self, offset: int, data: bytes) -> None:
        if self.pieces:
            last, kept = self.pieces[-1]
            if offset != last + len(kept):  # written out of order (a resume): start again from here
                self.clear()
        if not self.budget.room(len(data)):
            return
        self.pieces.append((offset, data))
        self.bytes += len(data)

    def take(self, offset: int, size: int) -> bytes | None:
        """Up to ``size`` bytes from ``offset`` if held (everything before ``offset`` is let go)."""
        pieces = self.pieces
        while pieces and pieces[0][0] + len(pieces[0][1]) <= offset:
            self.bytes -= len(pieces.popleft()[1])
        if not pieces or pieces[0][0] > offset:
            return None
        start, data = pieces[0]
        if start == offset and len(data) <= size:
            pieces.popleft()
            self.bytes -= len(data)
            return data
        return data[offset - start : offset - start + size]

    def clear(self) -> None:
        self.pieces.clear()
        self.bytes = 0


class LiveFile:
    """A forwarded file still arriving from its agent: how much of it is durable here, and its outcome."""

    def __init__(self, offer: FileOffer, path: Path, durable: int, budget: Budget) -> None:
        self.offer = offer
        self.path = path
        self.durable = durable
        self.outcome: Outcome | None = None  # None while it arrives
        self.recent = RecentPieces(budget)
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def grew(self, durable: int) -> None:
        if durable > self.durable:
            self.durable = durable
            self._notify()

    def end(self, outcome: Outcome) -> None:
        self.outcome = outcome
        if outcome is not Outcome.STORED:
            self.recent.clear()  # what was forwarded from here is sent again from the partial, if at all
        self._notify()

    def piece(self, offset: int, size: int) -> bytes | None:
        return self.recent.take(offset, size)

    def _check(self) -> None:
        if self.outcome is Outcome.BAD:
            raise FileAbandoned("it turned out bad here (sha256 differs from the offer)", discard=True)
        if self.outcome is Outcome.DETACHED:
            raise FileAbandoned("its agent stopped sending it; it resumes when the agent does", discard=False)

    async def readable(self, offset: int) -> int:
        while True:
            if self.outcome is Outcome.STORED:
                return self.offer.size
            if self.durable > offset:
                return self.durable
            self._check()
            await self._changed.wait()

    async def verified(self) -> None:
        while self.outcome is not Outcome.STORED:
            self._check()
            await self._changed.wait()


class LiveFiles:
    """The intake's tap at the relay: large forwarded files become sendable while they arrive."""

    def __init__(self, ledger: RelayFileLedger, wake: Callable[[], None]) -> None:
        self.ledger = ledger
        self.wake = wake  # the file sender: a file is ready to forward
        self.files: dict[tuple[str, int], LiveFile] = {}  # arriving now (ended ones are forgotten)
        self.budget = Budget(RECENT_BYTES)

    def opened(self, offer: FileOffer, partial: Partial) -> bool:
        fate, _rule = self.ledger.decide(offer)
        if fate is not Fate.FORWARDED or offer.size < CUT_THROUGH_MIN_BYTES:
            return False
        old = self.files.get((offer.source, offer.seq))
        if old is not None:
            old.recent.clear()
        self.files[(offer.source, offer.seq)] = LiveFile(offer, partial.path, partial.synced, self.budget)
        self.wake()
        return True

    def wrote(self, key: tuple[str, int], offset: int, data: bytes) -> None:
        live = self.files.get(key)
        if live is not None:
            live.recent.add(offset, data)

    def durable(self, key: tuple[str, int], offset: int) -> None:
        live = self.files.get(key)
        if live is not None:
            live.grew(offset)

    def ended(self, key: tuple[str, int], outcome: Outcome) -> None:
        live = self.files.pop(key, None)
        if live is not None:
            live.end(outcome)

    def arriving(self, limit: int, busy: Collection[Key] = frozenset()) -> list[OutgoingFile]:
        out: list[OutgoingFile] = []
        for key, live in list(self.files.items()):
            if len(out) >= limit:
                break
            if key in busy:
                continue
            o = live.offer
            local = str(live.path)
            out.append(OutgoingFile(o.source, o.seq, o.path, o.size, o.mtime_ns, o.sha256, local, live))
        return out


class RelayFileOutbox:
    """Forwarded and released files waiting for the collector (the file sender's queue)."""

    def __init__(
        self,
        journal: Journal,
        content: ContentStore,
        on_acked: Callable[[int], None] = lambda acked_bytes: None,
        live: LiveFiles | None = None,
    ) -> None:
        self.journal = journal
        self.content = content
        self.on_acked = on_acked  # told the bytes acknowledged: the retention pass may remove older content
        self.live = live  # files forwarded while they arrive (cut-through)

    async def next_files(self, limit: int, busy: Collection[Key] = frozenset()) -> list[OutgoingFile]:
        # Arriving files first: their agents are sending them now, and the collector should keep pace.
        arriving = self.live.arriving(limit, busy) if self.live is not None else []
        limit -= len(arriving)
        items = await self.journal.read_with(lambda c: journal_files.outbox(c, limit, busy))
        return arriving + [self._outgoing(f) for f in items]

    def _outgoing(self, f: FileItem) -> OutgoingFile:
        h = f.sha256
        row = f.size <= self.content.small_max_bytes  # a row of the small table, maybe still in memory
        return OutgoingFile(
            f.source,
            f.seq,
            f.path,
            f.size,
            f.mtime_ns,
            h,
            self.content.address(h),
            load=functools.partial(self.content.load_small, h) if row else None,
            checked=functools.partial(self.content.take_recent, h) if row else None,
        )

    async def acked(self, item: OutgoingFile) -> None:
        await self.acked_many([item])

    async def acked_many(self, items: list[OutgoingFile]) -> None:
        now = time.time_ns()
        keys = [(item.source, item.seq) for item in items]
        await self.journal.write_with(lambda c: journal_files.mark_sent_many(c, keys, now))
        self.on_acked(sum(item.size for item in items))

    async def refused(self, item: OutgoingFile, nack: FileNack) -> None:
        if item.growing is not None:
            log.warning("the collector refused file %s:%d (%s) while it arrived: %s; it is sent again "
                        "once stored here", item.source, item.seq, item.path, nack.reason)  # fmt: skip
            return
        # The relay's copy was verified when it arrived; a refusal means the stored content is damaged.
        where = "the relay's small-content table" if item.load is not None else item.local
        log.error("the collector refused file %s:%d (%s): %s; its content here may be damaged, check %s "
                  "(sha256 %s)", item.source, item.seq, item.path, nack.reason, where,
                  item.sha256.hex())  # fmt: skip


def file_intake(
    content: ContentStore, journal: Journal, rules: RuleSet, on_forward: Callable[[], None]
) -> tuple[FileIntake, LiveFiles]:
    """The relay's receiving side for files into ``content`` (the store the ``RelayFileOutbox`` reads, one
    object: its small table has one connection), and its cut-through tap (give it to the outbox)."""
    ledger = RelayFileLedger(journal, rules, content, on_forward)
    live = LiveFiles(ledger, on_forward)
    return FileIntake(content, ledger, live), live
