"""The relay journal's whole files: each file item's manifest and fate, the file outbox, held files.

A file item ``(source, seq)`` is journaled once, with its fate by the rules, in the transaction that makes the
relay's acknowledgement true: forwarded (waits in the file outbox until the collector acknowledged it),
held (waits for an operator), or dropped (counted, content not kept). Forwarded and released files are
tallied for reconciliation as ``ItemKind.FILE`` with digest = the first 8 bytes of their sha256. The content
lives in the relay's content store (``store/content.py``), referenced by sha256.

Release and purge of held files go through the same operator actions as held records (``journal_held.settle``
calls :func:`settle_files`), in the same transaction. This module must never give a file item a second
fate row, never mark a file sent before the collector acknowledged it, and never commit on its own (every
function runs inside a transaction the journal's Database opened).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import msgspec

from logferry.model import Fate
from logferry.reconcile.summary import BucketTally, ItemKind
from logferry.reconcile.tables import add_tally
from logferry.store.journal_tx import bump_counters
from logferry.store.sqlite import rows_by_id

_OUTGOING = (int(Fate.FORWARDED), int(Fate.RELEASED))
# Spelled as the partial index file_items_waiting is (store/journal.py), so that SQLite uses it: in order.
_WAITING = f"sent = 0 AND fate IN ({int(Fate.FORWARDED)}, {int(Fate.RELEASED)})"
_COLUMNS = "source, seq, path, size, mtime_ns, sha256, fate, rule, received_ns, sent"


class FileItem(msgspec.Struct, frozen=True, gc=False):
    """One file item as the relay journaled it."""

    source: str
    seq: int
    path: str
    size: int
    mtime_ns: int
    sha256: bytes
    fate: Fate
    rule: str
    received_ns: int
    sent: bool


def _item(row: tuple[Any, ...]) -> FileItem:
    """A row of ``_COLUMNS`` as a FileItem (built directly: outbox reads build thousands)."""
    source, seq, path, size, mtime_ns, sha256, fate, rule, received_ns, sent = row
    return FileItem(source, seq, path, size, mtime_ns, bytes(sha256), Fate(fate), rule, received_ns,
                    bool(sent))  # fmt: skip


def get(conn: sqlite3.Connection, source: str, seq: int) -> FileItem | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM file_items WHERE source = ? AND seq = ?", (source, seq))
    found = row.fetchone()
    return None if found is None else _item(found)


def commit(conn: sqlite3.Connection, item: FileItem) -> bool:
    """Journal a received file with its fate; False (nothing written) if the id is journaled already."""
    return commit_many(conn, [item]) == [True]


def commit_many(conn: sqlite3.Connection, items: Sequence[FileItem]) -> list[bool]:
    """Journal received files with their fates, counters and tallies added once per source; per item,
    False (nothing written for it) if its id is journaled already or earlier in ``items``."""
    written: list[bool] = []
    fresh: list[FileItem] = []
    seen = set(journaled(conn, ((i.source, i.seq) for i in items)))
    for item in items:
        key = (item.source, item.seq)
        new = key not in seen
        seen.add(key)
        written.append(new)
        if new:
            fresh.append(item)
    conn.executemany(
        f"INSERT INTO file_items({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
        [(i.source, i.seq, i.path, i.size, i.mtime_ns, i.sha256, int(i.fate), i.rule, i.received_ns)
         for i in fresh],
    )  # fmt: skip
    counts: dict[str, Counter[tuple[int, str]]] = {}
    tallies: dict[str, BucketTally] = {}
    for i in fresh:
        counts.setdefault(i.source, Counter())[(int(i.fate), i.rule)] += 1
        if i.fate in (Fate.FORWARDED, Fate.RELEASED):
            tallies.setdefault(i.source, BucketTally()).add(i.seq, i.sha256[:8])
    for source, deltas in counts.items():
        bump_counters(conn, source, dict(deltas))
    for source, tally in tallies.items():
        add_tally(conn, source, ItemKind.FILE, tally)
    return written


def journaled(conn: sqlite3.Connection, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], bytes]:
    """Which of these ids are journaled, with their sha256 (in few queries: ``rows_by_id``)."""
    return {(source, seq): bytes(sha) for source, seq, sha in rows_by_id(conn, "file_items", "sha256", keys)}


def outbox(
    conn: sqlite3.Connection, limit: int, busy: Collection[tuple[str, int]] = frozenset()
) -> list[FileItem]:
    """Up to ``limit`` files waiting for the collector's acknowledgement, oldest first, leaving out the
    ``(source, seq)`` in ``busy`` (in flight: left out before they are built)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM file_items INDEXED BY file_items_waiting WHERE {_WAITING} "
        "ORDER BY received_ns LIMIT ?",
        (limit + len(busy),),
    )
    return [_item(r) for r in itertools.islice((r for r in rows if (r[0], r[1]) not in busy), limit)]


def outbox_count(conn: sqlite3.Connection) -> int:
    """How many files wait for the collector's acknowledgement."""
    sql = "SELECT COUNT(*) FROM file_items WHERE sent = 0 AND fate IN (?, ?)"
    return int(conn.execute(sql, _OUTGOING).fetchone()[0])


def mark_sent(conn: sqlite3.Connection, source: str, seq: int, now_ns: int) -> None:
    mark_sent_many(conn, [(source, seq)], now_ns)


def mark_sent_many(conn: sqlite3.Connection, keys: Sequence[tuple[str, int]], now_ns: int) -> None:
    conn.executemany(
        "UPDATE file_items SET sent = 1, sent_ns = ? WHERE source = ? AND seq = ?",
        [(now_ns, source, seq) for source, seq in keys],
    )


def requeue(conn: sqlite3.Connection, keys: Sequence[tuple[str, int]]) -> int:
    """Send these (already sent) files again: reconciliation found them missing at the collector."""
    n = 0
    for source, seq in keys:
        n += conn.execute(
            "UPDATE file_items SET sent = 0, pruned = 0 WHERE source = ? AND seq = ? AND fate IN (?, ?)",
            (source, seq, *_OUTGOING),
        ).rowcount
    return n


def held(conn: sqlite3.Connection, source: str | None, rule: str | None, limit: int) -> list[FileItem]:
    clauses, params = _held_where(source, rule, None)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM file_items WHERE {clauses} ORDER BY received_ns DESC LIMIT ?",
        [*params, limit],
    )
    return [_item(r) for r in rows]


def count_held(conn: sqlite3.Connection, source: str | None = None, rule: str | None = None,
               text: str | None = None) -> int:  # fmt: skip
    """Held file items by source, rule and path substring."""
    clauses, params = _held_where(source, rule, text)
    (n,) = conn.execute(f"SELECT COUNT(*) FROM file_items WHERE {clauses}", params).fetchone()
    return int(n)


def page_held(
    conn: sqlite3.Connection, source: str | None, rule: str | None, text: str | None, limit: int, offset: int
) -> list[FileItem]:
    """Held file items matching, newest first (by the file's mtime, as the held list orders them)."""
    clauses, params = _held_where(source, rule, text)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM file_items WHERE {clauses} ORDER BY mtime_ns DESC, source, seq DESC "
        "LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return [_item(r) for r in rows]


def settle_files(
    conn: sqlite3.Connection,
    source: str | None,
    rule: str | None,
    text: str | None,
    fate: Fate,
    keys: Sequence[tuple[str, int]] | None = None,
) -> list[FileItem]:
    """Release (to the file outbox) or purge the held files matching; returns those that moved.

    ``text`` matches a substring of the file's path (the held filter's text condition). The caller deletes
    purged content that no other item references (``content_in_use``), after the commit.
    """
    if keys is not None:
        found = [f for s, q in keys if (f := get(conn, s, q)) is not None and f.fate is Fate.HELD]
    else:
        clauses, params = _held_where(source, rule, text)
        found = [_item(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM file_items WHERE {clauses}", params)]
    for f in found:
        conn.execute(
            "UPDATE file_items SET fate = ? WHERE source = ? AND seq = ?", (int(fate), f.source, f.seq)
        )
        bump_counters(conn, f.source, {(int(Fate.HELD), f.rule): -1, (int(fate), f.rule): 1})
        if fate is Fate.RELEASED:
            add_tally(conn, f.source, ItemKind.FILE, BucketTally().add_all([(f.seq, f.sha256[:8])]))
    return found


def content_in_use(conn: sqlite3.Connection, sha256: bytes) -> bool:
    """Whether any held or outgoing file item still needs or keeps this content (not pruned)."""
    row = conn.execute(
        "SELECT 1 FROM file_items WHERE sha256 = ? AND fate IN (?, ?, ?) AND pruned = 0 LIMIT 1",
        (sha256, int(Fate.HELD), *_OUTGOING),
    ).fetchone()
    return row is not None


def held_where(source: str | None, rule: str | None, text: str | None) -> tuple[str, list[object]]:
    """The WHERE clause (and parameters) selecting held file items by source, rule and path substring."""
    return _held_where(source, rule, text)


def _held_where(source: str | None, rule: str | None, text: str | None) -> tuple[str, list[object]]:
    clauses: list[str] = ["fate = ?"]
    params: list[object] = [int(Fate.HELD)]
    for clause, value in (("source = ?", source), ("rule = ?", rule)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("path LIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    return " AND ".join(clauses), params
