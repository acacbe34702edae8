"""How long the relay keeps whole files' content once it no longer needs it to forward them.

The relay keeps a forwarded file's content after the collector acknowledged it, so reconciliation can send
it again (``reconcile/relay_side.py``), but only up to ``file_keep_bytes`` of distinct content: beyond that
the content of the files acknowledged longest ago is removed first, down to a tenth below the bound, so the
next passes have nothing to do until about that much more was acknowledged. A pass reads the journal only
when the bound may have been passed (what the last pass left plus the bytes acknowledged since), and then
walks from the oldest acknowledged item to the bound: its cost does not grow with the files kept. A purged
held file's content (and a dropped one's) is removed at once unless another item still needs it. An item
whose content the relay no longer keeps is marked ``pruned`` in ``file_items``; reconciliation reports such
a file as ``lost`` if the collector loses it.

Content is never removed while a held item, or a forwarded or released item the collector has not
acknowledged yet, has the same sha256 (content is stored once per sha256). Each pass works through at most
``PASS_CONTENTS`` contents in one journal transaction (the unlinks run in the journal's writer thread, inside
the transaction that marks the items, so a new item that needs the content is either seen or comes after).
This module never changes a fate, a tally or the file outbox, and never removes content it did not check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3

from logferry.model import Fate
from logferry.store.content import ContentStore
from logferry.store.journal import Journal

log = logging.getLogger("logferry.relay")

PASS_CONTENTS = 1000  # contents removed per transaction at most
INTERVAL_S = 2.0  # between passes when nothing wakes the keeper (an operator's purge)
PASS_GAP_S = 1.0  # at least this long between passes
_OUTGOING = (int(Fate.FORWARDED), int(Fate.RELEASED))
_GONE = (int(Fate.DROPPED), int(Fate.PURGED))


def needed(conn: sqlite3.Connection, sha256: bytes) -> bool:
    """Whether a held item, or an outgoing item the collector has not acknowledged, needs this content."""
    row = conn.execute(
        "SELECT 1 FROM file_items WHERE sha256 = ? AND (fate = ? OR (fate IN (?, ?) AND sent = 0)) LIMIT 1",
        (sha256, int(Fate.HELD), *_OUTGOING),
    ).fetchone()
    return row is not None


def kept_elsewhere(conn: sqlite3.Connection, sha256: bytes) -> bool:
    """Whether an acknowledged item still keeps this content for resends (not pruned)."""
    row = conn.execute(
        "SELECT 1 FROM file_items WHERE sha256 = ? AND fate IN (?, ?) AND sent = 1 AND pruned = 0 LIMIT 1",
        (sha256, *_OUTGOING),
    ).fetchone()
    return row is not None


def release_gone(conn: sqlite3.Connection, content: ContentStore) -> tuple[int, int]:
    """Purged and dropped items: remove their content unless another item needs or keeps it; mark them
    pruned. Returns (contents removed, bytes)."""
    rows = conn.execute(
        "SELECT DISTINCT sha256, size FROM file_items WHERE pruned = 0 AND fate IN (?, ?) LIMIT ?",
        (*_GONE, PASS_CONTENTS),
    ).fetchall()
    removed = freed = 0
    for sha, size in rows:
        h = bytes(sha)
        if not needed(conn, h) and not kept_elsewhere(conn, h) and content.has(h):
            content.remove(h)
            removed, freed = removed + 1, freed + int(size)
        conn.execute("UPDATE file_items SET pruned = 1 WHERE sha256 = ? AND fate IN (?, ?)", (h, *_GONE))
    return removed, freed


def kept_bytes(conn: sqlite3.Connection) -> int:
    """The distinct content of acknowledged items not pruned, in bytes: what ``file_keep_bytes`` bounds (one
    grouping query, in SQLite)."""
    (total,) = conn.execute(
        "SELECT coalesce(sum(size), 0) FROM (SELECT max(size) AS size FROM file_items "
        "WHERE pruned = 0 AND sent = 1 AND fate IN (?, ?) GROUP BY sha256)",
        _OUTGOING,
    ).fetchone()
    return int(total)


def prune_acked(
    conn: sqlite3.Connection,
    content: ContentStore,
    keep_bytes: int,
    down_to: int,
    kept: int | None,
) -> tuple[int, int, int, bool]:
    """If more than ``keep_bytes`` of acknowledged content is kept, remove the contents acknowledged longest
    ago (at most ``PASS_CONTENTS``) until ``down_to`` bytes (at most ``keep_bytes``) remain, and mark their
    items pruned. Returns (contents removed, bytes, bytes kept after, whether more must go: the pass
    stopped at ``PASS_CONTENTS``). ``kept``: the bytes kept now if known (an earlier pass's answer plus
    what was acknowledged since), else they are counted.

    A content's age is that of its newest acknowledged item. The walk starts at the oldest acknowledged
    item and stops at the bound, so it reads only what it removes (and items whose content a newer item
    keeps), not every kept item."""
    kept = kept_bytes(conn) if kept is None else kept
    if kept <= keep_bytes:
        return 0, 0, kept, False
    rows = conn.execute(
        "SELECT sha256, size, sent_ns FROM file_items INDEXED BY file_items_kept "
        "WHERE pruned = 0 AND sent = 1 AND fate IN (?, ?) ORDER BY sent_ns, source DESC, seq",
        _OUTGOING,
    )
    newest = (
        "SELECT max(sent_ns) FROM file_items INDEXED BY file_items_sha "
        "WHERE sha256 = ? AND pruned = 0 AND sent = 1 AND fate IN (?, ?)"
    )
    taken: set[bytes] = set()
    older: list[tuple[bytes, int]] = []
    for sha, size, sent_ns in rows:
        if kept <= down_to or len(older) >= PASS_CONTENTS:
            break
        h = bytes(sha)
        if h in taken:
            continue
        if conn.execute(newest, (h, *_OUTGOING)).fetchone()[0] > sent_ns:
            continue  # a newer item keeps this content: it is taken, or not, at that item's turn
        taken.add(h)
        older.append((h, int(size)))
        kept -= int(size)
    rows.close()  # the items are marked after the walk: an update would move them in the index it reads
    removed = freed = 0
    for h, size in older:
        if not needed(conn, h):
            content.remove(h)
            removed, freed = removed + 1, freed + size
        conn.execute(
            "UPDATE file_items SET pruned = 1 WHERE sha256 = ? AND sent = 1 AND fate IN (?, ?)",
            (h, *_OUTGOING),
        )
    return removed, freed, kept, kept > down_to and len(older) >= PASS_CONTENTS


class FileRetention:
    """Runs the passes: after the collector acknowledged files (``notify``) and every ``INTERVAL_S``."""

    def __init__(self, journal: Journal, content: ContentStore, keep_bytes: int) -> None:
        self.journal = journal
        self.content = content
        self.keep_bytes = keep_bytes
        self.removed = 0
        self.freed_bytes = 0
        self._wake = asyncio.Event()
        self._acked = True  # check the bound once at start
        # How much may be kept now, at most: what the last pass left plus every byte acknowledged since
        # (None: unknown, count). Below the bound, a pass need not read the journal at all.
        self._kept_at_most: int | None = None
        self._draining = False  # a pass stopped at PASS_CONTENTS before it was down to ``low_water``

    @property
    def low_water(self) -> int:
        """Once over the bound, content is removed down to a tenth below it: the next passes find nothing
        to do until about that much more was acknowledged, instead of reading the journal after every ack."""
        return self.keep_bytes - self.keep_bytes // 10

    def notify(self, acked_bytes: int | None = None) -> None:
        """The collector acknowledged files of ``acked_bytes`` in all (None: not said): the bound may be
        exceeded now."""
        self._acked = True
        if self._kept_at_most is not None:
            self._kept_at_most = None if acked_bytes is None else self._kept_at_most + acked_bytes
        self._wake.set()

    def _over(self) -> bool:
        return self._draining or self._kept_at_most is None or self._kept_at_most > self.keep_bytes

    def _prune(self, conn: sqlite3.Connection) -> tuple[int, int]:
        bound = self.low_water if self._draining else self.keep_bytes
        # Draining, the count the last transaction left (plus acks since) is used: not counted again
        # every PASS_CONTENTS.
        known = self._kept_at_most if self._draining else None
        removed, freed, kept, more = prune_acked(conn, self.content, bound, self.low_water, known)
        self._kept_at_most = kept
        self._draining = more
        return removed, freed

    async def collect(self) -> int:
        """One full pass (several transactions if needed); returns how many contents were removed."""
        total = 0
        while True:
            removed, freed = await self.journal.write_with(lambda c: release_gone(c, self.content))
            if self._acked:
                self._acked = False
                if self._over():
                    more = await self.journal.write_with(self._prune)
                    removed, freed = removed + more[0], freed + more[1]
                    self._acked = self._draining
            total += removed
            self.removed += removed
            self.freed_bytes += freed
            if removed:
                log.info(
                    "removed the content of %d files (%d bytes) the relay no longer keeps", removed, freed
                )
            if removed < PASS_CONTENTS and not self._draining:
                return total

    async def run(self, stopping: asyncio.Event) -> None:
        """Pass after every wake-up and every ``INTERVAL_S`` until ``stopping`` is set."""
        while not stopping.is_set():
            try:
                await self.collect()
            except Exception:  # a failed pass is retried; the journal keeps what it has
                log.exception("removing files' content the relay no longer keeps failed; will retry")
            # After a pass, let acknowledgements gather for PASS_GAP_S: thousands of small files acknowledged
            # one by one cost a few passes, not one each.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), PASS_GAP_S)
            stop = asyncio.ensure_future(stopping.wait())
            wake = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({stop, wake}, timeout=INTERVAL_S, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for f in (stop, wake):
                    f.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await f
            self._wake.clear()
