"""How long the relay keeps whole files' content once it no longer needs it to forward them.

The relay keeps a forwarded file's content after the collector acknowledged it, so reconciliation can send
it again (``reconcile/relay_side.py``), but only up to ``file_keep_bytes`` of distinct content: beyond that
the content of the files acknowledged longest ago is removed first. A purged held file's content (and a
dropped one's) is removed at once unless another item still needs it. An item whose content the relay no
longer keeps is marked ``pruned`` in ``file_items``; reconciliation reports such a file as ``lost`` if the
collector loses it.

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


def prune_acked(conn: sqlite3.Connection, content: ContentStore, keep_bytes: int) -> tuple[int, int]:
    """Keep the newest acknowledged contents up to ``keep_bytes``; remove older ones (at most
    ``PASS_CONTENTS``) and mark their items pruned. Returns (contents removed, bytes)."""
    rows = conn.execute(
        "SELECT sha256, size FROM file_items WHERE pruned = 0 AND sent = 1 AND fate IN (?, ?) "
        "ORDER BY sent_ns DESC, source, seq DESC",
        _OUTGOING,
    )
    seen: set[bytes] = set()
    total = 0
    older: list[tuple[bytes, int]] = []
    for sha, size in rows:
        h = bytes(sha)
        if h in seen:
            continue
        seen.add(h)
        total += int(size)
        if total > keep_bytes:
            older.append((h, int(size)))
            if len(older) >= PASS_CONTENTS:
                break
    rows.close()
    removed = freed = 0
    for h, size in older:
        if not needed(conn, h):
            content.remove(h)
            removed, freed = removed + 1, freed + size
        conn.execute(
            "UPDATE file_items SET pruned = 1 WHERE sha256 = ? AND sent = 1 AND fate IN (?, ?)",
            (h, *_OUTGOING),
        )
    return removed, freed


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

    def notify(self) -> None:
        """The collector acknowledged a file: the bound may be exceeded now."""
        self._acked = True
        self._wake.set()

    async def collect(self) -> int:
        """One full pass (several transactions if needed); returns how many contents were removed."""
        total = 0
        while True:
            removed, freed = await self.journal.write_with(lambda c: release_gone(c, self.content))
            if self._acked:
                self._acked = False
                more = await self.journal.write_with(lambda c: prune_acked(c, self.content, self.keep_bytes))
                removed, freed = removed + more[0], freed + more[1]
                self._acked = more[0] >= PASS_CONTENTS
            total += removed
            self.removed += removed
            self.freed_bytes += freed
            if removed:
                log.info(
                    "removed the content of %d files (%d bytes) the relay no longer keeps", removed, freed
                )
            if removed < PASS_CONTENTS:
                return total

    async def run(self, stopping: asyncio.Event) -> None:
        """Pass after every wake-up and every ``INTERVAL_S`` until ``stopping`` is set."""
        while not stopping.is_set():
            try:
                await self.collect()
            except Exception:  # a failed pass is retried; the journal keeps what it has
                log.exception("removing files' content the relay no longer keeps failed; will retry")
            # A pass reads every acknowledged item: after one, let acknowledgements gather for PASS_GAP_S so
            # thousands of small files acknowledged one by one cost a few passes, not one each.
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
