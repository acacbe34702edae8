"""The relay's held store: filters, pages, and the operator's release and purge transactions.

A held record waits in the ``held`` table until an operator releases it (it moves to a new outbox batch and
its journal fate becomes RELEASED) or purges it (fate PURGED). Either move happens in one transaction that
also rewrites the journal's fate runs and the counters, so every seq keeps exactly one current fate.

Held whole files (``file_items`` with fate HELD, ``store/journal_files.py``) are held items too: the
``*_items`` functions list, count and find records and files together (a file's time is its mtime; a filter
on level or record time never matches a file, and ``text`` matches a file's path), and ``settle`` moves the
files a filter or keys select in the same transaction as the records.

Functions taking a connection run inside a transaction opened by the Database; nothing here may commit or
touch the event loop, and a held record may never leave the table without its fate changing with it.
"""

from __future__ import annotations

import bisect
import json
import sqlite3
from collections.abc import Sequence
from itertools import groupby
from typing import Any

import msgspec

from logferry.model import Codec, Fate, Record, encode_body
from logferry.reconcile.summary import BucketTally, ItemKind
from logferry.reconcile.tables import add_tally
from logferry.store import journal_files
from logferry.store.journal_files import FileItem, settle_files
from logferry.store.journal_tx import bump_counters, insert_outbox, overlapping
from logferry.store.runs import decode_runs, encode_runs, refate

RELEASE_BATCH_RECORDS = 5_000  # a large release becomes several outbox batches of bounded size

_fields_decoder = msgspec.json.Decoder(dict[str, str])

HeldKey = tuple[str, int]

_COLUMNS = "source, seq, rule, ts_ns, level, host, path, msg, fields, digest, held_ns"


class HeldFilter(msgspec.Struct, frozen=True, gc=False):
    """Which held records a console view or bulk action means. Unset fields match everything.

    ``level_max`` keeps records at least that severe (lower numbers are more severe); ``text`` is a
    case-insensitive substring of the message; ``ts_min_ns`` is inclusive, ``ts_max_ns`` exclusive.
    """

    rule: str | None = None
    source: str | None = None
    level_max: int | None = None
    text: str | None = None
    ts_min_ns: int | None = None
    ts_max_ns: int | None = None


class HeldRecord(msgspec.Struct, frozen=True, gc=False):
    source: str
    rule: str
    held_ns: int
    record: Record


def where(target: HeldFilter | Sequence[HeldKey]) -> tuple[str, list[object]]:
    """A WHERE clause (never empty: ``1`` matches all) and its parameters for a filter or explicit keys."""
    if not isinstance(target, HeldFilter):
        keys = json.dumps([[s, q] for s, q in target])
        return (
            "(source, seq) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') "
            "FROM json_each(?))",
            [keys],
        )
    clauses: list[str] = []
    params: list[object] = []
    if target.rule is not None:
        clauses.append("rule = ?")
        params.append(target.rule)
    if target.source is not None:
        clauses.append("source = ?")
        params.append(target.source)
    if target.level_max is not None:
        clauses.append("level <= ?")
        params.append(target.level_max)
    if target.text:
        escaped = target.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("msg LIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    if target.ts_min_ns is not None:
        clauses.append("ts_ns >= ?")
        params.append(target.ts_min_ns)
    if target.ts_max_ns is not None:
        clauses.append("ts_ns < ?")
        params.append(target.ts_max_ns)
    return (" AND ".join(clauses) or "1"), params


def _to_held(row: Any) -> HeldRecord:
    source, seq, rule, ts_ns, level, host, path, msg, fields, digest, held_ns = row
    found = _fields_decoder.decode(fields) if fields else {}
    return HeldRecord(source, rule, held_ns, Record(seq, ts_ns, level, host, path, msg, found, digest))


def count(conn: sqlite3.Connection, target: HeldFilter) -> int:
    clause, params = where(target)
    return int(conn.execute(f"SELECT COUNT(*) FROM held WHERE {clause}", params).fetchone()[0])


def page(conn: sqlite3.Connection, target: HeldFilter, limit: int, offset: int) -> list[HeldRecord]:
    """Held records matching ``target``, newest first (by record time), stable across pages."""
    clause, params = where(target)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM held WHERE {clause} ORDER BY ts_ns DESC, source, seq DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return [_to_held(r) for r in rows]


def get(conn: sqlite3.Connection, source: str, seq: int) -> HeldRecord | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM held WHERE source = ? AND seq = ?", (source, seq)).fetchone()
    return None if row is None else _to_held(row)


HeldItem = HeldRecord | FileItem


def _file_where(target: HeldFilter) -> tuple[str, list[object]] | None:
    """The held files a filter selects; None when it can select none (level or record time given)."""
    if target.level_max is not None or target.ts_min_ns is not None or target.ts_max_ns is not None:
        return None
    return journal_files.held_where(target.source, target.rule, target.text)


def count_items(conn: sqlite3.Connection, target: HeldFilter) -> int:
    """Held records and held files matching ``target``."""
    files = _file_where(target)
    if files is None:
        return count(conn, target)
    clause, params = files
    (n,) = conn.execute(f"SELECT COUNT(*) FROM file_items WHERE {clause}", params).fetchone()
    return count(conn, target) + int(n)


def page_items(conn: sqlite3.Connection, target: HeldFilter, limit: int, offset: int) -> list[HeldItem]:
    """Held records and files matching ``target``, newest first (record time; a file's mtime)."""
    files = _file_where(target)
    if files is None:
        return list(page(conn, target, limit, offset))
    r_clause, r_params = where(target)
    f_clause, f_params = files
    keys = conn.execute(
        f"SELECT 0 AS k, source, seq, ts_ns AS t FROM held WHERE {r_clause} UNION ALL "
        f"SELECT 1 AS k, source, seq, mtime_ns AS t FROM file_items WHERE {f_clause} "
        "ORDER BY t DESC, source, seq DESC LIMIT ? OFFSET ?",
        [*r_params, *f_params, limit, offset],
    ).fetchall()
    out: list[HeldItem] = []
    for k, source, seq, _t in keys:
        found = get(conn, source, seq) if k == 0 else journal_files.get(conn, source, seq)
        if found is not None:
            out.append(found)
    return out


def get_item(conn: sqlite3.Connection, source: str, seq: int) -> HeldItem | None:
    """The held record or held file with this id, or None."""
    found = get(conn, source, seq)
    if found is not None:
        return found
    item = journal_files.get(conn, source, seq)
    return item if item is not None and item.fate is Fate.HELD else None


def settle(
    conn: sqlite3.Connection,
    target: HeldFilter | Sequence[HeldKey],
    fate: Fate,
    codec: Codec,
    *,
    now_ns: int,
    limit: int | None = None,
) -> int:
    """Release (fate RELEASED: to the outbox) or purge (fate PURGED) the matching held records.

    ``limit`` bounds how many one transaction moves (and holds in memory); None moves all that match.
    """
    files = _settle_held_files(conn, target, fate)  # held whole files move with the same action
    clause, params = where(target)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM held WHERE {clause} ORDER BY source, seq LIMIT ?",
        [*params, -1 if limit is None else limit],
    ).fetchall()
    if not rows:
        return files
    for source, group in groupby((_to_held(r) for r in rows), key=lambda h: h.source):
        held = list(group)
        if fate is Fate.RELEASED:
            for i in range(0, len(held), RELEASE_BATCH_RECORDS):
                records = [h.record for h in held[i : i + RELEASE_BATCH_RECORDS]]
                body = encode_body(records, codec)
                span = (records[0].seq, records[-1].seq, len(records))
                insert_outbox(conn, source, span, codec, body, now_ns=now_ns)
                add_tally(
                    conn, source, ItemKind.RECORD, BucketTally().add_all((r.seq, r.digest) for r in records)
                )
        _refate_journal(conn, source, [h.record.seq for h in held], fate)
        deltas: dict[tuple[int, str], int] = {}
        for h in held:
            deltas[(int(Fate.HELD), h.rule)] = deltas.get((int(Fate.HELD), h.rule), 0) - 1
            deltas[(int(fate), h.rule)] = deltas.get((int(fate), h.rule), 0) + 1
        bump_counters(conn, source, deltas)
    conn.executemany("DELETE FROM held WHERE source = ? AND seq = ?", [(r[0], r[1]) for r in rows])
    return len(rows) + files


def _settle_held_files(conn: sqlite3.Connection, target: HeldFilter | Sequence[HeldKey], fate: Fate) -> int:
    """Held files matching the action; a filter on level or record time never matches a file."""
    if not isinstance(target, HeldFilter):
        return len(settle_files(conn, None, None, None, fate, keys=list(target)))
    if target.level_max is not None or target.ts_min_ns is not None or target.ts_max_ns is not None:
        return 0
    return len(settle_files(conn, target.source, target.rule, target.text, fate))


def _refate_journal(conn: sqlite3.Connection, source: str, seqs: list[int], fate: Fate) -> None:
    """Rewrite the fate runs of the journal rows holding ``seqs`` (ascending) to ``fate``."""
    updates: list[tuple[bytes, int]] = []
    spans = list(overlapping(conn, source, seqs[0], seqs[-1]))
    for row_id, first, last in spans:
        lo, hi = bisect.bisect_left(seqs, first), bisect.bisect_right(seqs, last)
        if lo == hi:
            continue
        (blob,) = conn.execute("SELECT fates FROM journal WHERE id = ?", (row_id,)).fetchone()
        runs = refate(decode_runs(blob), seqs[lo:hi], int(fate))
        updates.append((encode_runs(runs), row_id))
    conn.executemany("UPDATE journal SET fates = ? WHERE id = ?", updates)
