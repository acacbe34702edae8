"""The agent's spool: the first durable point of a record, where it gets its seq.

An append numbers entries from ``next_seq``, encodes them as ONE batch body (the spool never needs a single
record by itself except to answer a resend request, so a blob per batch keeps per-record work minimal) and,
in the same transaction, stores the inputs' read positions (checkpoints). A line is therefore spooled exactly
once even across ``kill -9``: after a restart an input resumes from the position committed with its records.

A batch stays until the relay acknowledged all its seqs; acked batches are then kept, oldest pruned first,
up to ``keep_acked_bytes`` to answer later "resend these seqs" requests. A checkpoint's ``acked`` value moves
only over the contiguous acked prefix of batches, so it never claims a line whose batch is still unacked.

This module must never give a seq twice or leave a hole, never delete an unacked batch, and never report a
seq range before the transaction that stored it has committed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec

from logferry.model import Codec, Entry, Record, decode_body, encode_body
from logferry.store.runs import Range, coalesce
from logferry.store.sqlite import Database, Durability

SPOOL_APPLICATION_ID = 0x4C465370  # "LFSp": refuses to open a journal or record store as a spool
MAX_BODY_BYTES = 1 << 30  # our own bodies; the bound only guards against a damaged file

# Large blobs go last in every table: SQLite must walk a blob's overflow pages to reach later columns.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta(
        id INTEGER PRIMARY KEY CHECK (id = 1),
        next_seq INTEGER NOT NULL,
        acked_through INTEGER NOT NULL,
        kept_bytes INTEGER NOT NULL  -- bytes of the acked prefix's batches still kept
    );
    INSERT INTO meta VALUES (1, 1, 0, 0);
    CREATE TABLE batches(
        first_seq INTEGER PRIMARY KEY,
        last_seq INTEGER NOT NULL,
        count INTEGER NOT NULL,
        codec INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        acked INTEGER NOT NULL DEFAULT 0,
        marks BLOB,  -- msgpack {checkpoint key: value} carried by this batch, or NULL
        body BLOB NOT NULL
    );
    CREATE TABLE checkpoints(
        key TEXT PRIMARY KEY,
        spooled BLOB,
        acked BLOB,
        updated_ns INTEGER NOT NULL
    );
    """,
    # The spool's id, random and fixed for its life: the agent says it in Hello, and a relay refuses another
    # spool for a source it has items of (a cloned device, or this spool reset, would number them again).
    """
    ALTER TABLE meta ADD COLUMN spool_id TEXT NOT NULL DEFAULT '';
    UPDATE meta SET spool_id = lower(hex(randomblob(8)));
    """,
)

_marks_encoder = msgspec.msgpack.Encoder()
_marks_decoder = msgspec.msgpack.Decoder(dict[str, bytes])


class SpooledBatch(msgspec.Struct, frozen=True, gc=False):
    """An unacked batch, ready to send as-is."""

    first_seq: int
    last_seq: int
    count: int
    codec: Codec
    body: bytes


class SpoolStats(msgspec.Struct, frozen=True, gc=False):
    next_seq: int
    acked_through: int
    unacked_batches: int
    unacked_records: int
    unacked_bytes: int
    kept_batches: int


class Spool:
    """The agent's durable spool. Create with ``await Spool.open(...)``; close with ``await close()``."""

    def __init__(self, db: Database, max_unacked_bytes: int, keep_acked_bytes: int, codec: Codec) -> None:
        self._db = db
        self._max_unacked_bytes = max_unacked_bytes
        self._keep_acked_bytes = keep_acked_bytes
        self._codec = codec
        self._next_seq = 1
        self._acked_through = 0
        self._unacked_bytes = 0
        self.spool_id = ""  # random, fixed for the spool's life: said in Hello (a relay binds a source to it)
        self._room = asyncio.Event()

    @classmethod
    async def open(
        cls,
        path: Path | str,
        durability: Durability = Durability.FULL,
        max_unacked_bytes: int = 256 << 20,
        keep_acked_bytes: int = 64 << 20,
        codec: Codec = Codec.MSGPACK,
    ) -> Spool:
        db = await Database.open(path, MIGRATIONS, durability, "spool", application_id=SPOOL_APPLICATION_ID)
        spool = cls(db, max_unacked_bytes, keep_acked_bytes, codec)

        def load(conn: sqlite3.Connection) -> tuple[int, int, int, str]:
            next_seq, acked, spool_id = conn.execute(
                "SELECT next_seq, acked_through, spool_id FROM meta"
            ).fetchone()
            (unacked,) = conn.execute(
                "SELECT COALESCE(SUM(bytes), 0) FROM batches WHERE acked = 0"
            ).fetchone()
            return int(next_seq), int(acked), int(unacked), str(spool_id)

        try:
            spool._next_seq, spool._acked_through, unacked, spool.spool_id = await db.read(load)
        except BaseException:
            await db.close()
            raise
        spool._set_unacked(unacked)
        return spool

    async def close(self) -> None:
        await self._db.close()

    @property
    def next_seq(self) -> int:
        """The seq the next appended entry will get."""
        return self._next_seq

    @property
    def acked_through(self) -> int:
        """The highest seq up to which every seq was acknowledged by the relay."""
        return self._acked_through

    @property
    def unacked_bytes(self) -> int:
        return self._unacked_bytes

    def _set_unacked(self, value: int) -> None:
        self._unacked_bytes = value
        if value < self._max_unacked_bytes:
            self._room.set()
        else:
            self._room.clear()

    async def wait_for_room(self) -> None:
        """Return once unacked bytes are below ``max_unacked_bytes``; an input awaits this before reading."""
        while self._unacked_bytes >= self._max_unacked_bytes:
            await self._room.wait()

    # ------------------------------------------------------------------------------------------ writing

    async def append(
        self, entries: Sequence[Entry], checkpoints: Mapping[str, bytes] | None = None
    ) -> tuple[int, int]:
        """Number and store ``entries`` as one batch with the inputs' read positions; one transaction.

        Returns the inclusive seq range given, ``(first, first - 1)`` when ``entries`` is empty.
        """
        codec = self._codec
        marks = dict(checkpoints or {})

        def run(conn: sqlite3.Connection) -> tuple[int, int, int]:
            (first, acked_through) = conn.execute("SELECT next_seq, acked_through FROM meta").fetchone()
            now = time.time_ns()
            if not entries:
                # Nothing to wait for when everything before is acked: the position is acked as well.
                sql = _UPSERT_BOTH if acked_through == first - 1 else _UPSERT_SPOOLED
                conn.executemany(sql, [(k, v, now) for k, v in marks.items()])
                return first, first - 1, 0
            records = [entry.numbered(first + i) for i, entry in enumerate(entries)]
            last = first + len(records) - 1
            body = encode_body(records, codec)
            blob = _marks_encoder.encode(marks) if marks else None
            conn.execute(
                "INSERT INTO batches VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                (first, last, len(records), int(codec), len(body), blob, body),
            )
            conn.execute("UPDATE meta SET next_seq = ?", (last + 1,))
            if marks:
                conn.executemany(_UPSERT_SPOOLED, [(k, v, now) for k, v in marks.items()])
            return first, last, len(body)

        first, last, nbytes = await self._db.write(run)
        self._next_seq = max(self._next_seq, last + 1)
        self._set_unacked(self._unacked_bytes + nbytes)
        return first, last

    async def ack(self, ranges: Sequence[Range]) -> None:
        """Mark batches wholly covered by ``ranges`` acked; advance the acked prefix; prune old batches."""
        merged = coalesce(ranges)
        if not merged:
            return
        keep = self._keep_acked_bytes

        def run(conn: sqlite3.Connection) -> tuple[int, int]:
            freed = 0
            for lo, hi in merged:
                rows = conn.execute(
                    "UPDATE batches SET acked = 1 WHERE first_seq BETWEEN ? AND ? AND last_seq <= ? "
                    "AND acked = 0 RETURNING bytes",
                    (lo, hi, hi),
                ).fetchall()
                freed += sum(r[0] for r in rows)
            at, kept = conn.execute("SELECT acked_through, kept_bytes FROM meta").fetchone()
            if freed:
                at, kept = _advance(conn, at, kept)
            if kept > keep:
                kept = _prune(conn, at, kept, keep)
            conn.execute("UPDATE meta SET acked_through = ?, kept_bytes = ?", (at, kept))
            return freed, at

        freed, at = await self._db.write(run)
        self._acked_through = max(self._acked_through, at)
        self._set_unacked(self._unacked_bytes - freed)

    # ------------------------------------------------------------------------------------------ reading

    async def pending(self, after_seq: int, max_batches: int) -> list[SpooledBatch]:
        """Unacked batches with ``first_seq > after_seq``, ascending: what to send next."""
        start = max(after_seq, self._acked_through)

        def run(conn: sqlite3.Connection) -> list[SpooledBatch]:
            rows = conn.execute(
                "SELECT first_seq, last_seq, count, codec, body FROM batches "
                "WHERE first_seq > ? AND acked = 0 ORDER BY first_seq LIMIT ?",
                (start, max_batches),
            )
            return [SpooledBatch(f, la, c, Codec(k), b) for f, la, c, k, b in rows]

        return await self._db.read(run)

    async def records(self, first_seq: int, last_seq: int) -> list[Record]:
        """The still-kept records with seqs in ``first_seq..last_seq`` (acked or not), ascending."""

        def run(conn: sqlite3.Connection) -> list[Record]:
            (start,) = conn.execute(
                "SELECT COALESCE(MAX(first_seq), ?) FROM batches WHERE first_seq <= ?", (first_seq, first_seq)
            ).fetchone()
            out: list[Record] = []
            rows = conn.execute(
                "SELECT codec, body FROM batches WHERE first_seq BETWEEN ? AND ? ORDER BY first_seq",
                (start, last_seq),
            )
            for codec, body in rows:
                out.extend(
                    r for r in decode_body(body, codec, MAX_BODY_BYTES) if first_seq <= r.seq <= last_seq
                )
            return out

        return await self._db.read(run)

    async def checkpoints(self) -> dict[str, bytes]:
        """The spooled read positions: where each input resumes after a restart."""
        return await self._db.read(lambda c: _key_values(c, "spooled"))

    async def acked_checkpoints(self) -> dict[str, bytes]:
        """The read positions up to which the relay acknowledged everything."""
        return await self._db.read(lambda c: _key_values(c, "acked"))

    async def stats(self) -> SpoolStats:
        def run(conn: sqlite3.Connection) -> SpoolStats:
            next_seq, at = conn.execute("SELECT next_seq, acked_through FROM meta").fetchone()
            batches, records, nbytes = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(count), 0), COALESCE(SUM(bytes), 0) "
                "FROM batches WHERE acked = 0"
            ).fetchone()
            (kept,) = conn.execute("SELECT COUNT(*) FROM batches").fetchone()
            return SpoolStats(next_seq, at, batches, records, nbytes, kept)

        return await self._db.read(run)


_UPSERT_SPOOLED = (
    "INSERT INTO checkpoints(key, spooled, acked, updated_ns) VALUES (?, ?, NULL, ?) "
    "ON CONFLICT(key) DO UPDATE SET spooled = excluded.spooled, updated_ns = excluded.updated_ns"
)
_UPSERT_BOTH = (
    "INSERT INTO checkpoints(key, spooled, acked, updated_ns) VALUES (?1, ?2, ?2, ?3) "
    "ON CONFLICT(key) DO UPDATE SET spooled = excluded.spooled, acked = excluded.acked, "
    "updated_ns = excluded.updated_ns"
)


def _advance(conn: sqlite3.Connection, at: int, kept: int) -> tuple[int, int]:
    """Move acked_through over the contiguous acked batches after it and carry their checkpoints along."""
    marks: dict[str, bytes] = {}
    rows = conn.execute(
        "SELECT first_seq, last_seq, acked, bytes, marks FROM batches WHERE first_seq > ? ORDER BY first_seq",
        (at,),
    )
    for first, last, acked, nbytes, blob in rows:
        if not acked or first != at + 1:
            break
        at, kept = last, kept + nbytes
        if blob is not None:
            marks.update(_marks_decoder.decode(blob))  # later batches carry later positions
    rows.close()
    if marks:
        now = time.time_ns()
        conn.executemany(
            "UPDATE checkpoints SET acked = ?, updated_ns = ? WHERE key = ?",
            [(v, now, k) for k, v in marks.items()],
        )
        # A forgotten key whose forgetting is acknowledged too is gone for good: rotations do not pile up.
        conn.execute("DELETE FROM checkpoints WHERE spooled = x'' AND acked = x''")
    return at, kept


def _prune(conn: sqlite3.Connection, at: int, kept: int, keep: int) -> int:
    """Delete the oldest acked-prefix batches until at most ``keep`` bytes of them remain."""
    cut = None
    rows = conn.execute("SELECT first_seq, bytes FROM batches WHERE first_seq <= ? ORDER BY first_seq", (at,))
    for first, nbytes in rows:
        if kept <= keep:
            break
        cut, kept = first, kept - nbytes
    rows.close()
    if cut is not None:
        conn.execute("DELETE FROM batches WHERE first_seq <= ?", (cut,))
    return kept


def _key_values(conn: sqlite3.Connection, column: str) -> dict[str, bytes]:
    # ``column`` is one of two literals chosen above, never user input.
    # An empty value is an input's "forget this key" (inputs.DELETE_CHECKPOINT): not a position to resume.
    rows = conn.execute(
        f"SELECT key, {column} FROM checkpoints WHERE {column} IS NOT NULL AND {column} != x''"
    )
    return {k: bytes(v) for k, v in rows}
