"""The relay's journal: every item the relay saw and its fate, the held store and the outbox, in one file.

A commit dedupes against what is journaled (an agent resends after losing an ack), writes one journal row
per contiguous run of new seqs with run-length fates, the held rows, ONE outbox row carrying the forwarded
and redacted records as an encoded body, the counters, and the source's acked_through — in one transaction,
so the ack the relay then sends means all of it is durable. ``counters`` hold current-fate totals: a release
moves a count from HELD to RELEASED, so per source they always sum to the seqs journaled.

This module must never acknowledge a seq before its commit, give one seq two fates, or delete an outbox row
the collector has not acknowledged.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import msgspec

from logferry.model import Codec, Entry, Fate, Record, decode_body
from logferry.reconcile.summary import BucketTally
from logferry.reconcile.tables import BUCKETS_SQL
from logferry.store import journal_held as held
from logferry.store.journal_held import HeldFilter, HeldKey, HeldRecord
from logferry.store.journal_tx import (
    Decided,
    Decision,
    commit_body,
    commit_decisions,
    overlapping,
    source_state,
)
from logferry.store.runs import Range, decode_rules, decode_runs
from logferry.store.sqlite import Database, Durability

__all__ = ["Decided", "Decision", "HeldFilter", "HeldRecord", "Journal", "JournalStats", "OutboxBatch"]

T = TypeVar("T")

JOURNAL_APPLICATION_ID = 0x4C464A6E  # "LFJn"
MAX_BODY_BYTES = 1 << 30

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta(id INTEGER PRIMARY KEY CHECK (id = 1), outbox_kept_bytes INTEGER NOT NULL);
    INSERT INTO meta VALUES (1, 0);
    CREATE TABLE sources(
        source TEXT PRIMARY KEY,
        next_seq INTEGER NOT NULL,       -- for inputs without an agent: the journal numbers them
        acked_through INTEGER NOT NULL   -- every seq up to here is journaled
    );
    CREATE TABLE journal(
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        received_ns INTEGER NOT NULL,
        fates BLOB NOT NULL,   -- msgpack [[first, last, fate, rule_index], ...]
        rules BLOB NOT NULL    -- msgpack [rule name, ...]
    );
    -- A source's rows never overlap, so (source, last_seq) answers overlap queries in order.
    CREATE INDEX journal_span ON journal(source, last_seq, first_seq);
    CREATE TABLE held(
        source TEXT NOT NULL, seq INTEGER NOT NULL, rule TEXT NOT NULL, ts_ns INTEGER NOT NULL,
        level INTEGER NOT NULL, host TEXT NOT NULL, path TEXT NOT NULL, msg TEXT NOT NULL, fields TEXT,
        digest BLOB NOT NULL, held_ns INTEGER NOT NULL,
        PRIMARY KEY (source, seq)
    ) WITHOUT ROWID;
    CREATE INDEX held_rule ON held(rule, ts_ns);
    CREATE INDEX held_ts ON held(ts_ns);
    CREATE TABLE outbox(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, count INTEGER NOT NULL,
        codec INTEGER NOT NULL, bytes INTEGER NOT NULL, acked INTEGER NOT NULL, created_ns INTEGER NOT NULL,
        body BLOB NOT NULL
    );
    CREATE INDEX outbox_state ON outbox(acked, id);
    CREATE INDEX outbox_span ON outbox(source, last_seq);
    CREATE TABLE counters(
        source TEXT NOT NULL, fate INTEGER NOT NULL, rule TEXT NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (source, fate, rule)
    ) WITHOUT ROWID;
    """,
    # Reconciliation (logferry.reconcile): one summary per (source, item kind, bucket of 1024 seqs) of what
    # went to the outbox, kept in the transaction that put it there. Sources journaled before this
    # migration have no tallies for what they already forwarded: they are reconciled from the first bucket
    # after everything journaled so far (recon_floor).
    BUCKETS_SQL
    + """
    CREATE TABLE recon_floor(
        source TEXT NOT NULL, kind INTEGER NOT NULL, floor_seq INTEGER NOT NULL,
        PRIMARY KEY (source, kind)
    ) WITHOUT ROWID;
    INSERT INTO recon_floor SELECT source, 1, ((MAX(last_seq) >> 10) + 1) << 10 FROM journal GROUP BY source;
    """,
    # Whole files (store/journal_files.py): one row per file item with its manifest and current fate; the
    # content itself lives in the content-addressed directory beside the journal. ``sent`` = 1 once the
    # collector acknowledged it; forwarded and released rows with sent = 0 are the file outbox.
    """
    CREATE TABLE file_items(
        source TEXT NOT NULL, seq INTEGER NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL, sha256 BLOB NOT NULL, fate INTEGER NOT NULL, rule TEXT NOT NULL,
        received_ns INTEGER NOT NULL, sent INTEGER NOT NULL DEFAULT 0, sent_ns INTEGER,
        PRIMARY KEY (source, seq)
    ) WITHOUT ROWID;
    CREATE INDEX file_items_outbox ON file_items(sent, fate, received_ns);
    CREATE INDEX file_items_sha ON file_items(sha256);
    """,
    # Relay file retention (store/file_retention.py): pruned = 1 once the relay no longer keeps the item's
    # content (acknowledged beyond file_keep_bytes, or purged/dropped); reconciliation reports it lost.
    """
    ALTER TABLE file_items ADD COLUMN pruned INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX file_items_kept ON file_items(pruned, sent, sent_ns);
    CREATE INDEX file_items_gone ON file_items(pruned, fate);
    """,
    # The held table's source filter, newest first and within a time range (console, GET /api/held): without
    # it a source's held records are all read and sorted for every page.
    """
    CREATE INDEX held_source_ts ON held(source, ts_ns);
    """,
    # The file outbox in order without a sort: with fate IN (forwarded, released) the older index gives two
    # ranges, and every read of the outbox sorted all waiting files (the file sender reads it at each refill).
    """
    CREATE INDEX file_items_waiting ON file_items(received_ns) WHERE sent = 0 AND fate IN (1, 5);
    """,
    # Which agent spool speaks for each source (roles/relay.py): the first to connect. Another spool under the
    # same name (a cloned device, a reset spool) would number seqs this journal holds already, and they would
    # be taken for duplicates: it is refused.
    """
    CREATE TABLE spools(
        source TEXT PRIMARY KEY, spool TEXT NOT NULL, bound_ns INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
)


class OutboxBatch(msgspec.Struct, frozen=True, gc=False):
    id: int
    source: str
    first_seq: int
    last_seq: int
    count: int
    codec: Codec
    body: bytes


class JournalStats(msgspec.Struct, frozen=True, gc=False):
    held: int
    outbox_unacked_batches: int
    outbox_unacked_records: int
    outbox_unacked_bytes: int
    outbox_kept_bytes: int
    acked_through: dict[str, int]


class Journal:
    """The relay's store. Create with ``await Journal.open(...)``; close with ``await close()``."""

    def __init__(self, db: Database, codec: Codec, keep_acked_outbox_bytes: int) -> None:
        self._db = db
        self._codec = codec
        self._keep = keep_acked_outbox_bytes
        self._acked: dict[str, int] = {}
        self._spools: dict[str, str] = {}  # source -> the spool bound to it (read through to the table)

    @classmethod
    async def open(
        cls,
        path: Path | str,
        durability: Durability = Durability.FULL,
        codec: Codec = Codec.MSGPACK,
        keep_acked_outbox_bytes: int = 64 << 20,
    ) -> Journal:
        db = await Database.open(
            path, MIGRATIONS, durability, "journal", application_id=JOURNAL_APPLICATION_ID
        )
        journal = cls(db, codec, keep_acked_outbox_bytes)
        try:
            rows = await db.read(lambda c: c.execute("SELECT source, acked_through FROM sources").fetchall())
        except BaseException:
            await db.close()
            raise
        journal._acked = {s: a for s, a in rows}
        return journal

    async def close(self) -> None:
        await self._db.close()

    def acked_through(self, source: str) -> int:
        """The highest seq of ``source`` up to which every seq is journaled (0: none); from memory."""
        return self._acked.get(source, 0)

    async def bind_spool(self, source: str, spool: str) -> str | None:
        """Bind ``source`` to the agent spool ``spool`` unless it is bound already; None if it is now bound
        to ``spool``, else the other spool it belongs to."""
        known = self._spools.get(source)
        if known is None:

            def run(conn: sqlite3.Connection) -> str:
                row = conn.execute("SELECT spool FROM spools WHERE source = ?", (source,)).fetchone()
                if row is not None:
                    return str(row[0])
                conn.execute("INSERT INTO spools VALUES (?, ?, ?)", (source, spool, time.time_ns()))
                return spool

            known = self._spools[source] = await self._db.write(run)
        return None if known == spool else known

    def _note(self, source: str, at: int) -> None:
        if at > self._acked.get(source, 0):
            self._acked[source] = at

    # ----------------------------------------------------------------------------------------- commits

    async def commit(
        self, source: str, decisions: Sequence[Decided], codec: Codec | None = None
    ) -> list[Range]:
        """Journal the decisions in one transaction; returns ranges covering ALL their seqs (dupes too)."""
        use = self._codec if codec is None else codec

        def run(conn: sqlite3.Connection) -> tuple[list[Range], int]:
            return commit_decisions(conn, source, decisions, use, time.time_ns())

        ranges, at = await self._db.write(run)
        self._note(source, at)
        return ranges

    async def commit_entries(
        self, source: str, entries: Sequence[Entry], decide: Callable[[Record], Decided]
    ) -> list[Range]:
        """Number entries of an input without an agent (syslog, line) and journal them, in one transaction.

        ``decide`` runs the rules on the writer thread: it must be pure and quick (no I/O, no event loop).
        """
        codec = self._codec

        def run(conn: sqlite3.Connection) -> tuple[list[Range], int]:
            first, _ = source_state(conn, source)
            decisions = [decide(e.numbered(first + i)) for i, e in enumerate(entries)]
            conn.execute("UPDATE sources SET next_seq = ? WHERE source = ?", (first + len(entries), source))
            return commit_decisions(conn, source, decisions, codec, time.time_ns())

        ranges, at = await self._db.write(run)
        self._note(source, at)
        return ranges

    async def commit_forward_body(
        self,
        source: str,
        first_seq: int,
        last_seq: int,
        count: int,
        codec: Codec,
        body: bytes,
        *,
        tally: BucketTally | None = None,
    ) -> bool:
        """Fast path with no rules: journal a contiguous batch as FORWARDED, keep its body undecoded.

        Returns False, having written nothing, when any of its seqs is journaled already (a resend) or the
        batch is not contiguous: the caller then decodes the body and calls :meth:`commit`, which dedupes
        seq by seq. ``tally`` is the records' reconciliation summary, if the caller decoded them already.
        """

        def run(conn: sqlite3.Connection) -> int | None:
            span = (first_seq, last_seq, count)
            return commit_body(conn, source, span, codec, body, now_ns=time.time_ns(), tally=tally)

        at = await self._db.write(run)
        if at is None:
            return False
        self._note(source, at)
        return True

    async def read_with(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a read connection: for stores built on this file (reconciliation)."""
        return await self._db.read(fn)

    async def write_with(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a write transaction of the journal: for stores built on this file."""
        return await self._db.write(fn)

    # ------------------------------------------------------------------------------------------ outbox

    async def outbox_pending(self, after_id: int, max_batches: int) -> list[OutboxBatch]:
        """Unacknowledged outbox batches with ``id > after_id``, ascending."""

        def run(conn: sqlite3.Connection) -> list[OutboxBatch]:
            rows = conn.execute(
                "SELECT id, source, first_seq, last_seq, count, codec, body FROM outbox "
                "WHERE acked = 0 AND id > ? ORDER BY id LIMIT ?",
                (after_id, max_batches),
            )
            return [OutboxBatch(i, s, f, la, n, Codec(c), b) for i, s, f, la, n, c, b in rows]

        return await self._db.read(run)

    async def outbox_ack(self, ids: Sequence[int]) -> None:
        """Mark outbox batches acknowledged by the collector; prune the oldest acked beyond the retention."""
        if not ids:
            return
        keep, wanted = self._keep, json.dumps(list(ids))

        def run(conn: sqlite3.Connection) -> None:
            freed = conn.execute(
                "UPDATE outbox SET acked = 1 WHERE acked = 0 AND id IN (SELECT value FROM json_each(?)) "
                "RETURNING bytes",
                (wanted,),
            ).fetchall()
            (kept,) = conn.execute("SELECT outbox_kept_bytes FROM meta").fetchone()
            kept += sum(r[0] for r in freed)
            if kept > keep:
                cut = None
                rows = conn.execute("SELECT id, bytes FROM outbox WHERE acked = 1 ORDER BY id")
                for row_id, nbytes in rows:
                    if kept <= keep:
                        break
                    cut, kept = row_id, kept - nbytes
                rows.close()
                if cut is not None:
                    conn.execute("DELETE FROM outbox WHERE acked = 1 AND id <= ?", (cut,))
            conn.execute("UPDATE meta SET outbox_kept_bytes = ?", (kept,))

        await self._db.write(run)

    async def outbox_records(self, source: str, first_seq: int, last_seq: int) -> list[Record]:
        """Records of ``source`` in ``first_seq..last_seq`` still in the outbox, acked or not: for resends."""

        def run(conn: sqlite3.Connection) -> list[Record]:
            rows = conn.execute(
                "SELECT codec, body FROM outbox WHERE source = ? AND last_seq >= ? AND first_seq <= ?",
                (source, first_seq, last_seq),
            )
            found = {
                r.seq: r
                for codec, body in rows
                for r in decode_body(body, codec, MAX_BODY_BYTES)
                if first_seq <= r.seq <= last_seq
            }
            return [found[s] for s in sorted(found)]

        return await self._db.read(run)

    # -------------------------------------------------------------------------------------------- held

    async def held_count(self, target: HeldFilter | None = None) -> int:
        return await self._db.read(lambda c: held.count(c, target or HeldFilter()))

    async def held_page(
        self, target: HeldFilter | None = None, limit: int = 100, offset: int = 0
    ) -> list[HeldRecord]:
        return await self._db.read(lambda c: held.page(c, target or HeldFilter(), limit, offset))

    async def held_get(self, source: str, seq: int) -> HeldRecord | None:
        return await self._db.read(lambda c: held.get(c, source, seq))

    async def release(self, target: HeldFilter | Sequence[HeldKey], *, limit: int | None = None) -> int:
        """Move matching held records to new outbox batches (fate RELEASED), in one transaction.

        Returns how many moved. ``limit`` bounds one call (memory, transaction size); call again until 0.
        """
        return await self._settle(target, Fate.RELEASED, limit)

    async def purge(self, target: HeldFilter | Sequence[HeldKey], *, limit: int | None = None) -> int:
        """Delete matching held records (fate PURGED), in one transaction; returns how many."""
        return await self._settle(target, Fate.PURGED, limit)

    async def _settle(self, target: HeldFilter | Sequence[HeldKey], fate: Fate, limit: int | None) -> int:
        codec = self._codec

        def run(conn: sqlite3.Connection) -> int:
            return held.settle(conn, target, fate, codec, now_ns=time.time_ns(), limit=limit)

        return await self._db.write(run)

    # ---------------------------------------------------------------------------------------- accounts

    async def counters(self) -> dict[tuple[str, Fate, str], int]:
        """Current-fate totals keyed by (source, fate, rule)."""
        rows = await self._db.read(
            lambda c: c.execute("SELECT source, fate, rule, n FROM counters").fetchall()
        )
        return {(s, Fate(f), r): n for s, f, r, n in rows if n}

    async def fates(self, source: str, first_seq: int, last_seq: int) -> list[tuple[int, int, Fate, str]]:
        """Fate runs ``(first, last, fate, rule)`` of the journaled seqs in the range, ascending, clipped."""

        def run(conn: sqlite3.Connection) -> list[tuple[int, int, Fate, str]]:
            out: list[tuple[int, int, Fate, str]] = []
            for row_id, _, _ in list(overlapping(conn, source, first_seq, last_seq)):
                blob, rules_blob = conn.execute(
                    "SELECT fates, rules FROM journal WHERE id = ?", (row_id,)
                ).fetchone()
                rules = decode_rules(rules_blob)
                for f, la, fate, ri in decode_runs(blob):
                    if la >= first_seq and f <= last_seq:
                        out.append((max(f, first_seq), min(la, last_seq), Fate(fate), rules[ri]))
            return out

        return await self._db.read(run)

    async def stats(self) -> JournalStats:
        def run(conn: sqlite3.Connection) -> JournalStats:
            (n_held,) = conn.execute("SELECT COUNT(*) FROM held").fetchone()
            batches, records, nbytes = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(count), 0), COALESCE(SUM(bytes), 0) "
                "FROM outbox WHERE acked = 0"
            ).fetchone()
            (kept,) = conn.execute("SELECT outbox_kept_bytes FROM meta").fetchone()
            acked = dict(conn.execute("SELECT source, acked_through FROM sources").fetchall())
            return JournalStats(n_held, batches, records, nbytes, kept, acked)

        return await self._db.read(run)
