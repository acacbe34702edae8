"""The collector's record store: every record by ``(source, seq)``, deduped, with full-text search.

A commit looks up the ids already stored in the batch's seq span with one range query, inserts the new
records with one executemany, skips identical duplicates, and keeps a record that reuses an id with another
digest in ``conflicts`` (flagged, never overwriting the first). Full-text indexing is a separate step
(``index_pending``, driven by a background task), so storage never waits for the index: search may trail
ingestion, but what was acknowledged is always stored.

This module must never overwrite a stored record, never acknowledge a seq before its commit, and never
index in FTS5 a row that is not stored (the FTS table is external-content over ``records``; deleting a record
later must also issue the FTS5 'delete' command with its old message).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from logferry.errors import StoreError
from logferry.model import Record, decode_body
from logferry.reconcile.summary import BucketTally, ItemKind
from logferry.reconcile.tables import BUCKETS_SQL, add_tally, dirty_sql
from logferry.store.runs import Range, ranges_of
from logferry.store.sqlite import Database, Durability

T = TypeVar("T")

RECORDS_APPLICATION_ID = 0x4C465263  # "LFRc"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE records(
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL, seq INTEGER NOT NULL, ts_ns INTEGER NOT NULL, level INTEGER NOT NULL,
        host TEXT NOT NULL, path TEXT NOT NULL, msg TEXT NOT NULL, fields TEXT, digest BLOB NOT NULL,
        relay TEXT NOT NULL, received_ns INTEGER NOT NULL,
        UNIQUE (source, seq)
    );
    CREATE INDEX records_ts ON records(ts_ns);
    CREATE VIRTUAL TABLE records_fts USING fts5(msg, content='records', content_rowid='id');
    CREATE TABLE meta(id INTEGER PRIMARY KEY CHECK (id = 1), fts_indexed_rowid INTEGER NOT NULL);
    INSERT INTO meta VALUES (1, 0);
    CREATE TABLE conflicts(
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL, seq INTEGER NOT NULL, ts_ns INTEGER NOT NULL, level INTEGER NOT NULL,
        host TEXT NOT NULL, path TEXT NOT NULL, msg TEXT NOT NULL, fields TEXT, digest BLOB NOT NULL,
        relay TEXT NOT NULL, received_ns INTEGER NOT NULL,
        UNIQUE (source, seq, digest)
    );
    CREATE TABLE sources(source TEXT PRIMARY KEY, count INTEGER NOT NULL, max_seq INTEGER NOT NULL);
    """,
    # The inbox: batches exactly as they arrived, committed before the relay is acknowledged. Turning them
    # into rows (dedupe, conflicts) and indexing them follows behind, so acknowledging a relay costs one
    # blob insert however many records the batch holds.
    """
    CREATE TABLE inbox(
        id INTEGER PRIMARY KEY,
        relay TEXT NOT NULL, source TEXT NOT NULL, count INTEGER NOT NULL, codec INTEGER NOT NULL,
        bytes INTEGER NOT NULL, received_ns INTEGER NOT NULL, body BLOB NOT NULL
    );
    """,
    # Reconciliation (logferry.reconcile): one summary per (source, item kind, bucket of 1024 seqs) of the
    # stored rows, kept in the transaction that stores them. A row deleted or changed by anything else (an
    # operator's sqlite3, a damaged disk that SQLite still reads) marks its bucket dirty through the
    # triggers, and the bucket is rebuilt from the rows before the next answer. Existing rows start dirty.
    BUCKETS_SQL
    + dirty_sql("records", ItemKind.RECORD)
    + """
    INSERT OR IGNORE INTO recon_dirty SELECT DISTINCT source, 1, seq >> 10 FROM records;
    """,
    # Search and facets by source over a time range (store/record_queries.py): without it a source filter
    # walks the whole (source, seq) index of a busy source. One more index entry per stored row.
    """
    CREATE INDEX records_source_ts ON records(source, ts_ns);
    """,
)

STORED_COLUMNS = _COLUMNS = "source, seq, ts_ns, level, host, path, msg, fields, digest, relay, received_ns"
_json = msgspec.json.Encoder()
_fields_decoder = msgspec.json.Decoder(dict[str, str])


class SourceCount(msgspec.Struct, frozen=True, gc=False):
    source: str
    count: int  # records stored
    max_seq: int


class SearchQueryError(StoreError):
    """A full-text query is not valid FTS5 syntax."""


class StoredRecord(msgspec.Struct, frozen=True, gc=False):
    source: str
    relay: str
    received_ns: int
    record: Record


class CommitResult(msgspec.Struct, frozen=True, gc=False):
    ranges: list[Range]  # every incoming seq: stored, duplicate or conflicting, all durable now
    stored: int
    duplicates: int
    conflicts: int


class RecordStats(msgspec.Struct, frozen=True, gc=False):
    records: int
    sources: int
    conflicts: int
    fts_indexed_rowid: int
    fts_pending: int


def stored_from_row(row: Any) -> StoredRecord:
    """A row of ``STORED_COLUMNS`` as a StoredRecord (store/record_queries.py reads rows too)."""
    source, seq, ts_ns, level, host, path, msg, fields, digest, relay, received_ns = row
    found = _fields_decoder.decode(fields) if fields else {}
    return StoredRecord(source, relay, received_ns, Record(seq, ts_ns, level, host, path, msg, found, digest))


def _store_rows(
    conn: sqlite3.Connection, relay: str, source: str, records: Sequence[Record], received_ns: int
) -> CommitResult:
    seqs = [r.seq for r in records]
    known: dict[int, bytes] = dict(
        conn.execute(
            "SELECT seq, digest FROM records WHERE source = ? AND seq BETWEEN ? AND ?",
            (source, min(seqs), max(seqs)),
        ).fetchall()
    )
    new: list[tuple[object, ...]] = []
    clashes: list[tuple[object, ...]] = []
    duplicates = top = 0
    tally = BucketTally()  # only new rows count for reconciliation: duplicates and conflicts do not
    encode = _json.encode
    for r in records:
        digest = known.get(r.seq)
        if digest == r.digest:
            duplicates += 1
            continue
        fields = encode(r.fields).decode() if r.fields else None
        row = (source, r.seq, r.ts_ns, r.level, r.host, r.path, r.msg, fields, r.digest, relay, received_ns)
        if digest is None:
            known[r.seq] = r.digest  # a seq twice in one batch is a duplicate or a conflict too
            new.append(row)
            tally.add(r.seq, r.digest)
            top = max(top, r.seq)
        else:
            clashes.append(row)
    if new:
        conn.executemany(f"INSERT INTO records({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", new)
        conn.execute(
            "INSERT INTO sources VALUES (?, ?, ?) ON CONFLICT(source) DO UPDATE SET "
            "count = count + excluded.count, max_seq = MAX(max_seq, excluded.max_seq)",
            (source, len(new), top),
        )
        add_tally(conn, source, ItemKind.RECORD, tally)
    if clashes:
        conn.executemany(
            f"INSERT OR IGNORE INTO conflicts({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", clashes
        )
    return CommitResult(ranges_of(seqs), len(new), duplicates, len(clashes))


class RecordStore:
    """The collector's store. Create with ``await RecordStore.open(...)``; close with ``await close()``."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._inbox_bytes = 0
        self._inbox_records = 0

    @classmethod
    async def open(cls, path: Path | str, durability: Durability = Durability.FULL) -> RecordStore:
        db = await Database.open(
            path, MIGRATIONS, durability, "records", application_id=RECORDS_APPLICATION_ID
        )
        store = cls(db)
        try:
            store._inbox_records, store._inbox_bytes = await db.read(
                lambda c: c.execute(
                    "SELECT COALESCE(SUM(count), 0), COALESCE(SUM(bytes), 0) FROM inbox"
                ).fetchone()
            )
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        await self._db.close()

    async def read_with(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a read connection: for code built on this file (reconciliation)."""
        return await self._db.read(fn)

    async def write_with(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a write transaction of this store: for code built on this file."""
        return await self._db.write(fn)

    async def commit(self, relay: str, source: str, records: Sequence[Record]) -> CommitResult:
        """Store a batch as rows in one transaction; duplicates skipped, conflicts flagged."""
        if not records:
            return CommitResult([], 0, 0, 0)
        return await self._db.write(lambda conn: _store_rows(conn, relay, source, records, time.time_ns()))

    async def receive(self, relay: str, source: str, count: int, codec: int, body: bytes) -> None:
        """Commit a batch body as it arrived (already checked to decode); it becomes rows in ``materialize``.

        Once this returns the batch is durable here: the relay may be acknowledged.
        """

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO inbox(relay, source, count, codec, bytes, received_ns, body) "
                "VALUES (?,?,?,?,?,?,?)",
                (relay, source, count, codec, len(body), time.time_ns(), body),
            )

        await self._db.write(run)
        self._inbox_bytes += len(body)
        self._inbox_records += count

    async def inbox_oldest_ns(self) -> int | None:
        """When the oldest batch still in the inbox was received (None: the inbox is empty)."""
        row = await self._db.read(
            lambda c: c.execute("SELECT received_ns FROM inbox ORDER BY id LIMIT 1").fetchone()
        )
        return None if row is None else int(row[0])

    @property
    def inbox_bytes(self) -> int:
        return self._inbox_bytes

    @property
    def inbox_records(self) -> int:
        return self._inbox_records

    async def materialize(self, max_batches: int, max_body_bytes: int) -> int:
        """Turn the oldest inbox batches into rows (dedupe, conflicts) and drop them from the inbox, in one
        transaction. Returns the number of records taken from the inbox."""

        def run(conn: sqlite3.Connection) -> tuple[int, int]:
            rows = conn.execute(
                "SELECT id, relay, source, count, codec, bytes, received_ns, body "
                "FROM inbox ORDER BY id LIMIT ?",
                (max_batches,),
            ).fetchall()
            taken = nbytes = 0
            for _id, relay, source, count, codec, size, received_ns, body in rows:
                try:
                    records = decode_body(body, codec, max_body_bytes)
                except (ValueError, msgspec.DecodeError) as exc:
                    # Checked at receive time, so only disk corruption gets here: keep the evidence.
                    raise StoreError(f"inbox batch {_id} of {source} no longer decodes: {exc}") from exc
                _store_rows(conn, relay, source, records, received_ns)
                taken += count
                nbytes += size
            if rows:
                conn.execute("DELETE FROM inbox WHERE id <= ?", (rows[-1][0],))
            return taken, nbytes

        taken, nbytes = await self._db.write(run)
        self._inbox_records -= taken
        self._inbox_bytes -= nbytes
        return taken

    async def index_pending(self, max_rows: int) -> int:
        """Add the next ``max_rows`` stored records (by rowid) to the full-text index; returns how many."""

        def run(conn: sqlite3.Connection) -> int:
            (done,) = conn.execute("SELECT fts_indexed_rowid FROM meta").fetchone()
            (upto,) = conn.execute(
                "SELECT MAX(id) FROM (SELECT id FROM records WHERE id > ? ORDER BY id LIMIT ?)",
                (done, max_rows),
            ).fetchone()
            if upto is None:
                return 0
            cur = conn.execute(
                "INSERT INTO records_fts(rowid, msg) SELECT id, msg FROM records WHERE id > ? AND id <= ?",
                (done, upto),
            )
            conn.execute("UPDATE meta SET fts_indexed_rowid = ?", (upto,))
            return cur.rowcount

        return await self._db.write(run)

    async def count(self, source: str | None = None) -> int:
        def run(conn: sqlite3.Connection) -> int:
            if source is None:
                row = conn.execute("SELECT COALESCE(SUM(count), 0) FROM sources").fetchone()
            else:
                row = conn.execute(
                    "SELECT COALESCE(SUM(count), 0) FROM sources WHERE source = ?", (source,)
                ).fetchone()
            return int(row[0])

        return await self._db.read(run)

    async def get(self, source: str, seq: int) -> StoredRecord | None:
        def run(conn: sqlite3.Connection) -> StoredRecord | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM records WHERE source = ? AND seq = ?", (source, seq)
            ).fetchone()
            return None if row is None else stored_from_row(row)

        return await self._db.read(run)

    async def search(
        self,
        query: str,
        limit: int = 100,
        offset: int = 0,
        *,
        source: str | None = None,
        level_max: int | None = None,
        ts_min_ns: int | None = None,
        ts_max_ns: int | None = None,
    ) -> list[StoredRecord]:
        """Newest first. ``query`` is FTS5 syntax over the message (empty: every record); only indexed
        records are found by a non-empty query. ``ts_min_ns`` inclusive, ``ts_max_ns`` exclusive."""
        clauses: list[str] = []
        params: list[object] = []
        if query.strip():
            clauses.append("r.id IN (SELECT rowid FROM records_fts WHERE records_fts MATCH ?)")
            params.append(query)
        for clause, value in (
            ("r.source = ?", source),
            ("r.level <= ?", level_max),
            ("r.ts_ns >= ?", ts_min_ns),
            ("r.ts_ns < ?", ts_max_ns),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = " AND ".join(clauses) or "1"
        cols = ", ".join(f"r.{c.strip()}" for c in _COLUMNS.split(","))
        sql = f"SELECT {cols} FROM records r WHERE {where} ORDER BY r.ts_ns DESC, r.id DESC LIMIT ? OFFSET ?"

        def run(conn: sqlite3.Connection) -> list[StoredRecord]:
            try:
                rows = conn.execute(sql, [*params, limit, offset]).fetchall()
            except sqlite3.OperationalError as exc:
                raise SearchQueryError(
                    f'invalid search query {query!r}: {exc}; use words, "quoted phrases", prefix*, '
                    "AND / OR / NOT and parentheses"
                ) from exc
            return [stored_from_row(r) for r in rows]

        return await self._db.read(run)

    async def source_counts(self, limit: int = 10_000) -> list[SourceCount]:
        """Every source (at most ``limit``) with its records stored and highest seq, by name."""
        sql = "SELECT source, count, max_seq FROM sources ORDER BY source LIMIT ?"
        rows = await self._db.read(lambda c: c.execute(sql, (limit,)).fetchall())
        return [SourceCount(str(s), int(n), int(m)) for s, n, m in rows]

    async def seqs(self, source: str) -> list[Range]:
        """The inclusive ranges of seqs of ``source`` this store holds."""

        def run(conn: sqlite3.Connection) -> list[Range]:
            rows = conn.execute(
                # Gaps and islands: seq minus its rank is constant along a run without holes.
                "SELECT MIN(seq), MAX(seq) FROM "
                "(SELECT seq, seq - ROW_NUMBER() OVER (ORDER BY seq) AS island FROM records "
                "WHERE source = ?) GROUP BY island ORDER BY 1",
                (source,),
            )
            return [(int(a), int(b)) for a, b in rows]

        return await self._db.read(run)

    async def conflicts(self, limit: int = 100) -> list[StoredRecord]:
        """Records that reused a stored id with another digest, oldest first (``get`` has the first)."""
        sql = f"SELECT {_COLUMNS} FROM conflicts ORDER BY id LIMIT ?"
        return await self._db.read(lambda c: [stored_from_row(r) for r in c.execute(sql, (limit,))])

    async def stats(self) -> RecordStats:
        def run(conn: sqlite3.Connection) -> RecordStats:
            n, sources = conn.execute("SELECT COALESCE(SUM(count), 0), COUNT(*) FROM sources").fetchone()
            (conflicts,) = conn.execute("SELECT COUNT(*) FROM conflicts").fetchone()
            (done,) = conn.execute("SELECT fts_indexed_rowid FROM meta").fetchone()
            (pending,) = conn.execute("SELECT COUNT(*) FROM records WHERE id > ?", (done,)).fetchone()
            return RecordStats(n, sources, conflicts, done, pending)

        return await self._db.read(run)
