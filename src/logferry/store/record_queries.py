"""Reads over the collector's stored records for search and log analysis: a page of matches, a histogram of
matches over time, and facets (source, level, host, path) with counts — one filter shape for all three.

Written for a store of 10M records, where a read must stay well under a second:

- A full-text query is driven by the FTS5 index, never by a table scan. FTS5 answers ``rowid >= ?`` itself,
  so a time range first becomes a lower bound on rowids: rows are appended in arrival order, so
  ``received_ns`` grows with the rowid, and a record whose time is at or after ``since`` was received after
  ``since - CLOCK_SKEW_S`` unless its device's clock ran more than that ahead. :func:`first_rowid_received`
  finds that bound by binary search over the rowid (about 25 primary-key lookups, no extra index).
- A search for a common word (``RARE_MATCHES`` or more) walks the time index newest first instead and asks
  FTS5 only about each step's rowid span (:func:`_newest_by_time`): the FTS-driven plan would read every
  match before it could sort them by time (1.5M rowids, seconds, for a word in 15 % of 10M records).
- Without a full-text query, ``records_ts`` (or ``records_source_ts`` with a source filter) drives.
- Histograms and facets count at most ``max_scan`` matches (the newest by time; with a full-text query the
  newest by arrival), and say when they stopped there (``partial``), instead of walking millions of rows.

Field filters are exact (``host = ?``, ``path = ?``): they come from facets or a copied value; ``level`` is
"this or more severe". This module reads only; it must never write to the store.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field, replace
from typing import Any

from logferry.store.records import (
    STORED_COLUMNS,
    RecordStore,
    SearchQueryError,
    StoredRecord,
    stored_from_row,
)

NS = 1_000_000_000
CLOCK_SKEW_S = 3600  # how far ahead of the collector a device's clock may run without its records hiding
DEFAULT_MAX_SCAN = 100_000  # matches a histogram or facet counts at most
# A full-text query matching this many records or more is searched by time first (``_newest_by_time``).
RARE_MATCHES = 20_000
WALK_CHUNK = 5_000  # rows of the time index per step of that walk
MAX_WALK = 200_000  # rows walked before falling back to the FTS-driven plan
FACET_FIELDS = ("source", "level", "host", "path")
# Histogram bucket widths people read easily; the first that gives at most the wanted number of buckets wins.
NICE_WIDTHS_S = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """What a search, histogram or facet listing selects. ``ts_min_ns`` inclusive, ``ts_max_ns`` exclusive."""

    text: str = ""  # FTS5 syntax over the message; "" selects every record
    source: str | None = None
    level_max: int | None = None  # this level or more severe (lower numbers are more severe)
    host: str | None = None
    path: str | None = None
    ts_min_ns: int | None = None
    ts_max_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Bucket:
    start_ns: int
    count: int


@dataclass(frozen=True, slots=True)
class Histogram:
    start_ns: int  # the first bucket's start (aligned to the width)
    width_s: int
    buckets: list[Bucket]  # every bucket of the range, empty ones included
    total: int  # matches counted
    partial: bool  # True: stopped after max_scan matches; older buckets count fewer than they hold


@dataclass(frozen=True, slots=True)
class FacetValue:
    value: str | int
    count: int


@dataclass(frozen=True, slots=True)
class Facets:
    fields: dict[str, list[FacetValue]] = field(default_factory=dict)  # per field, most frequent first
    scanned: int = 0
    partial: bool = False


def first_rowid_received(conn: sqlite3.Connection, since_ns: int) -> int:
    """The smallest rowid received at or after ``since_ns`` (rowids follow arrival; binary search)."""
    # Two queries: SQLite answers a lone MIN or MAX from the b-tree's edge, both in one by a full scan.
    (first,) = conn.execute("SELECT MIN(id) FROM records").fetchone()
    if first is None:
        return 0
    (last,) = conn.execute("SELECT MAX(id) FROM records").fetchone()
    lo, hi = int(first), int(last) + 1  # the answer is in [lo, hi]; hi means "none received since"
    while lo < hi:
        mid = (lo + hi) // 2
        row = conn.execute("SELECT id, received_ns FROM records WHERE id >= ? ORDER BY id LIMIT 1", (mid,))
        found = row.fetchone()
        if found is None or found[1] >= since_ns:
            hi = mid
        else:
            lo = int(found[0]) + 1
    return lo


def _where(conn: sqlite3.Connection, f: RecordFilter, fts_cap: int | None = None) -> tuple[str, list[object]]:
    """The WHERE clause (over ``records r``) and its parameters; ``fts_cap`` bounds the FTS matches read."""
    clauses: list[str] = []
    params: list[object] = []
    if f.text.strip():
        inner = "SELECT rowid FROM records_fts WHERE records_fts MATCH ?"
        params.append(f.text)
        if f.ts_min_ns is not None:
            inner += " AND rowid >= ?"
            params.append(first_rowid_received(conn, f.ts_min_ns - CLOCK_SKEW_S * NS))
        if fts_cap is not None:
            inner += " ORDER BY rowid DESC LIMIT ?"
            params.append(fts_cap)
        clauses.append(f"r.id IN ({inner})")
    # With a full-text query the FTS matches drive; "+" keeps the planner off the time index then.
    ts = "+r.ts_ns" if f.text.strip() else "r.ts_ns"
    for clause, value in (
        ("r.source = ?", f.source),
        ("r.level <= ?", f.level_max),
        ("r.host = ?", f.host),
        ("r.path = ?", f.path),
        (f"{ts} >= ?", f.ts_min_ns),
        (f"{ts} < ?", f.ts_max_ns),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return " AND ".join(clauses) or "1", params


def _run(conn: sqlite3.Connection, f: RecordFilter, sql: str, params: list[object]) -> list[Any]:
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if not f.text.strip():
            raise
        raise SearchQueryError(
            f'invalid search query {f.text!r}: {exc}; use words, "quoted phrases", prefix*, '
            "AND / OR / NOT and parentheses"
        ) from exc


def search(conn: sqlite3.Connection, f: RecordFilter, limit: int, offset: int) -> list[StoredRecord]:
    """Matches newest first (by record time, then arrival)."""
    cols = ", ".join(f"r.{c.strip()}" for c in STORED_COLUMNS.split(","))
    if f.text.strip() and _common(conn, f):
        ids = _newest_by_time(conn, f, offset + limit)
        if ids is not None:
            sql = f"SELECT {cols} FROM records r WHERE r.id IN ({','.join('?' * len(ids[offset:]))}) "
            sql += "ORDER BY r.ts_ns DESC, r.id DESC"
            return [stored_from_row(r) for r in conn.execute(sql, ids[offset:])]
    where, params = _where(conn, f)
    sql = f"SELECT {cols} FROM records r WHERE {where} ORDER BY r.ts_ns DESC, r.id DESC LIMIT ? OFFSET ?"
    return [stored_from_row(r) for r in _run(conn, f, sql, [*params, limit, offset])]


def _common(conn: sqlite3.Connection, f: RecordFilter) -> bool:
    """Whether the full-text query matches at least ``RARE_MATCHES`` records (reads at most that many)."""
    sql = "SELECT COUNT(*) FROM (SELECT rowid FROM records_fts WHERE records_fts MATCH ? LIMIT ?)"
    return int(_run(conn, f, sql, [f.text, RARE_MATCHES])[0][0]) >= RARE_MATCHES


def _newest_by_time(conn: sqlite3.Connection, f: RecordFilter, want: int) -> list[int] | None:
    """The ids of the newest ``want`` matches of a common term, walking the time index newest first.

    The FTS-driven plan reads every match (1.5M rowids for a word in 15 % of 10M records: seconds) before
    it can sort them by time. A common word is found within the first few thousand rows by time instead:
    take ``WALK_CHUNK`` rows of the time index (and the other filters), ask FTS5 only for matches within
    their rowid span (rows arrive roughly in time order, so the span is narrow), keep the rows that match,
    go on. Exact whatever the order of arrival; None (use the FTS-driven plan) once ``MAX_WALK`` rows were
    walked, e.g. a common word that is rare in the chosen time range.
    """
    ids: list[int] = []
    walked = 0
    bound = f
    last: tuple[int, int] | None = None  # (ts_ns, id) of the last row walked
    while len(ids) < want and walked < MAX_WALK:
        where, params = _where(conn, replace(bound, text=""))
        if last is not None:  # rows of the same time as the last one walked may remain: after it by id
            where += " AND (r.ts_ns, r.id) < (?, ?)"
            params += [last[0], last[1]]
        rows = conn.execute(
            f"SELECT r.id, r.ts_ns FROM records r WHERE {where} ORDER BY r.ts_ns DESC, r.id DESC LIMIT ?",
            [*params, WALK_CHUNK],
        ).fetchall()
        if not rows:
            return ids
        span = [i for i, _ in rows]
        sql = "SELECT rowid FROM records_fts WHERE records_fts MATCH ? AND rowid BETWEEN ? AND ?"
        hits = {int(i) for (i,) in _run(conn, f, sql, [f.text, min(span), max(span)])}
        ids.extend(i for i in span if i in hits)
        walked += len(rows)
        last = (int(rows[-1][1]), int(rows[-1][0]))
        bound = replace(f, ts_max_ns=last[0] + 1)  # the index seek starts at the last time walked
    return ids[:want] if len(ids) >= want else None


def _matches(
    conn: sqlite3.Connection, f: RecordFilter, columns: str, max_scan: int
) -> tuple[str, list[object]]:
    """A bounded sub-select of ``columns`` over at most ``max_scan`` matches (newest first)."""
    if f.text.strip():
        where, params = _where(conn, f, fts_cap=max_scan)
        return f"SELECT {columns} FROM records r WHERE {where}", params
    where, params = _where(conn, f)
    return f"SELECT {columns} FROM records r WHERE {where} ORDER BY r.ts_ns DESC LIMIT ?", [*params, max_scan]


def time_span(conn: sqlite3.Connection, f: RecordFilter) -> tuple[int, int] | None:
    """The histogram's range: the filter's bounds, or the stored records' first and last time."""
    lo, hi = f.ts_min_ns, f.ts_max_ns
    if lo is None or hi is None:
        (first,) = conn.execute("SELECT MIN(ts_ns) FROM records").fetchone()
        if first is None:
            return None
        (last,) = conn.execute("SELECT MAX(ts_ns) FROM records").fetchone()
        lo = int(first) if lo is None else lo
        hi = int(last) + 1 if hi is None else hi
    return (lo, hi) if hi > lo else None


def bucket_width_s(span_ns: int, want: int) -> int:
    """The smallest nice width giving at most ``want`` buckets over ``span_ns`` (whole days beyond)."""
    for width in NICE_WIDTHS_S:
        if span_ns / (width * NS) <= want:
            return width
    return -(-span_ns // (want * 86400 * NS)) * 86400


def histogram(conn: sqlite3.Connection, f: RecordFilter, want: int = 60,
              max_scan: int = DEFAULT_MAX_SCAN) -> Histogram:  # fmt: skip
    """Matches per time bucket over the filter's range (or every stored record's)."""
    span = time_span(conn, f)
    if span is None:
        return Histogram(0, 1, [], 0, False)
    lo, hi = span
    width = bucket_width_s(hi - lo, want)
    start = lo // (width * NS) * (width * NS)
    sub, params = _matches(conn, f, "r.ts_ns AS ts", max_scan)
    rows = _run(conn, f, f"SELECT (ts - ?) / ?, COUNT(*) FROM ({sub}) GROUP BY 1",
                [start, width * NS, *params])  # fmt: skip
    counts = {int(b): int(n) for b, n in rows}
    n_buckets = max(1, -(-(hi - start) // (width * NS)))
    buckets = [Bucket(start + i * width * NS, counts.get(i, 0)) for i in range(n_buckets)]
    total = sum(counts.values())
    return Histogram(start, width, buckets, total, total >= max_scan)


def facets(conn: sqlite3.Connection, f: RecordFilter, top: int = 10,
           max_scan: int = DEFAULT_MAX_SCAN) -> Facets:  # fmt: skip
    """The ``top`` most frequent values of each facet field among the matches, with counts."""
    sub, params = _matches(conn, f, "r.source, r.level, r.host, r.path", max_scan)
    # One pass over the bounded matches (materialized once), then one small GROUP BY per field.
    parts = [
        f"SELECT * FROM (SELECT '{name}', {name}, COUNT(*) AS n FROM m GROUP BY 2 ORDER BY n DESC, 2 LIMIT ?)"
        for name in FACET_FIELDS
    ]
    sql = f"WITH m AS MATERIALIZED ({sub}) " + " UNION ALL ".join(parts)
    rows = _run(conn, f, sql, [*params, *([top] * len(FACET_FIELDS))])
    out: dict[str, list[FacetValue]] = {name: [] for name in FACET_FIELDS}
    for name, value, n in rows:
        out[str(name)].append(FacetValue(value if isinstance(value, int) else str(value), int(n)))
    scanned = sum(v.count for v in out["level"]) if len(out["level"]) < top else _count(conn, f, sub, params)
    return Facets(out, scanned, scanned >= max_scan)


def _count(conn: sqlite3.Connection, f: RecordFilter, sub: str, params: list[object]) -> int:
    return int(_run(conn, f, f"SELECT COUNT(*) FROM ({sub})", params)[0][0])


class RecordQueries:
    """The reads above on a record store's read connections (never on the event loop)."""

    def __init__(self, store: RecordStore, max_scan: int = DEFAULT_MAX_SCAN) -> None:
        self.store = store
        self.max_scan = max_scan

    async def search(self, f: RecordFilter, limit: int = 100, offset: int = 0) -> list[StoredRecord]:
        return await self.store.read_with(lambda c: search(c, f, limit, offset))

    async def histogram(self, f: RecordFilter, buckets: int = 60) -> Histogram:
        return await self.store.read_with(lambda c: histogram(c, f, buckets, self.max_scan))

    async def facets(self, f: RecordFilter, top: int = 10) -> Facets:
        return await self.store.read_with(lambda c: facets(c, f, top, self.max_scan))
