"""What reconciliation reads from and writes to the relay's journal file (SQL only, no policy).

Every function takes a connection from ``Journal.read_with`` / ``Journal.write_with``: reads run on a read
connection, ``insert_resend`` inside the journal's write transaction. The range a source is reconciled over
stops below the first bucket that holds an item the collector has not acknowledged yet, so an item in flight
is never reported missing (for files: below the first bucket with a file the collector has not acknowledged
yet). Items keep being sent while a reconciliation runs, so a leaf is read again, in one read transaction,
just before the collector is asked for its list (``leaf_records``, ``leaf_files``): None while anything sent
into it still awaits its acknowledgement. Nothing here may change a fate, a tally, or an acknowledged
outbox row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from logferry.model import Codec, Fate, Record, decode_body, encode_body
from logferry.reconcile.descent import Expected
from logferry.reconcile.summary import BUCKET_BITS, ItemKind, Summary, bucket_of, bucket_span
from logferry.reconcile.tables import range_sum
from logferry.store.journal import MAX_BODY_BYTES
from logferry.store.journal_tx import insert_outbox, overlapping
from logferry.store.runs import Range, coalesce, decode_runs

RESEND_BATCH_RECORDS = 5_000  # a large resend becomes several outbox batches of bounded size
_SENT = frozenset((int(Fate.FORWARDED), int(Fate.REDACTED), int(Fate.RELEASED)))
_FILE_SENT = (int(Fate.FORWARDED), int(Fate.RELEASED))
_UNSENT_FILES = "SELECT source, MIN(seq) FROM file_items WHERE sent = 0 AND fate IN (?, ?) GROUP BY source"
_UNACKED_IN = (
    "SELECT 1 FROM outbox WHERE acked = 0 AND source = ? AND first_seq <= ? AND last_seq >= ? LIMIT 1"
)
_UNSENT_FILE_IN = (
    "SELECT 1 FROM file_items WHERE sent = 0 AND fate IN (?, ?) AND source = ? AND seq BETWEEN ? AND ? "
    "LIMIT 1"
)


@dataclass(frozen=True, slots=True)
class Root:
    """The range of one source that is settled enough to reconcile now (whole buckets)."""

    source: str
    first: int
    last: int


def roots(conn: sqlite3.Connection, kind: ItemKind) -> list[Root]:
    """Per source with tallied items: from its floor to the end of its last bucket that holds no item
    still waiting for the collector's acknowledgement."""
    floors = dict(conn.execute("SELECT source, floor_seq FROM recon_floor WHERE kind = ?", (int(kind),)))
    if kind is ItemKind.FILE:
        unacked = dict(conn.execute(_UNSENT_FILES, _FILE_SENT))
    else:
        unacked = dict(
            conn.execute("SELECT source, MIN(first_seq) FROM outbox WHERE acked = 0 GROUP BY source")
        )
    out: list[Root] = []
    rows = conn.execute(
        "SELECT source, MAX(bucket) FROM recon_buckets WHERE kind = ? GROUP BY source ORDER BY source",
        (int(kind),),
    )
    for source, top in rows:
        first = (int(floors.get(source, 1)) >> BUCKET_BITS) << BUCKET_BITS
        last = bucket_span(int(top))[1]
        waiting = unacked.get(source)
        if waiting is not None:
            last = min(last, bucket_span(bucket_of(int(waiting)))[0] - 1)
        if last >= first:
            out.append(Root(str(source), first, last))
    return out


def sent_seqs(conn: sqlite3.Connection, source: str, first: int, last: int) -> frozenset[int]:
    """The seqs in ``first..last`` whose current fate sent them to the collector."""
    out: set[int] = set()
    for row_id, _, _ in list(overlapping(conn, source, first, last)):
        (blob,) = conn.execute("SELECT fates FROM journal WHERE id = ?", (row_id,)).fetchone()
        for f, la, fate, _rule in decode_runs(blob):
            if fate in _SENT and la >= first and f <= last:
                out.update(range(max(f, first), min(la, last) + 1))
    return frozenset(out)


def leaf_records(conn: sqlite3.Connection, source: str, first: int, last: int) -> Expected | None:
    """The relay's records of one leaf (seqs sent, digests the outbox keeps, the bucket's tally) as of one
    moment, or None while an outbox batch in it (new, released or a resend) awaits the collector's Ack."""
    if conn.execute(_UNACKED_IN, (source, last, first)).fetchone() is not None:
        return None
    rows = conn.execute(
        "SELECT codec, body FROM outbox WHERE source = ? AND last_seq >= ? AND first_seq <= ?",
        (source, first, last),
    )
    kept = {
        r.seq: r.digest
        for codec, body in rows
        for r in decode_body(body, codec, MAX_BODY_BYTES)
        if first <= r.seq <= last
    }
    summary = range_sum(conn, source, ItemKind.RECORD, first, last)
    return Expected(sent_seqs(conn, source, first, last), kept, summary)


def leaf_files(
    conn: sqlite3.Connection, source: str, first: int, last: int
) -> tuple[list[tuple[int, bytes]], Summary] | None:
    """The relay's sent files of one leaf and the bucket's tally as of one moment, or None while a file
    in it awaits the collector's FileAck."""
    if conn.execute(_UNSENT_FILE_IN, (*_FILE_SENT, source, first, last)).fetchone() is not None:
        return None
    return sent_files(conn, source, first, last), range_sum(conn, source, ItemKind.FILE, first, last)


def sent_files(conn: sqlite3.Connection, source: str, first: int, last: int) -> list[tuple[int, bytes]]:
    """``(seq, sha256)`` of the file items in ``first..last`` whose fate sent them to the collector."""
    rows = conn.execute(
        "SELECT seq, sha256 FROM file_items WHERE source = ? AND seq BETWEEN ? AND ? AND fate IN (?, ?) "
        "ORDER BY seq",
        (source, first, last, *_FILE_SENT),
    )
    return [(int(q), bytes(h)) for q, h in rows]


def gaps(conn: sqlite3.Connection, source: str, acked_through: int) -> list[Range]:
    """Holes in the journaled seqs of ``source`` after its contiguous prefix ``acked_through``."""
    spans = coalesce((f, la) for _, f, la in overlapping(conn, source, acked_through + 1, 1 << 62))
    out: list[Range] = []
    prev = acked_through
    for first, last in spans:
        if first > prev + 1:
            out.append((prev + 1, first - 1))
        prev = max(prev, last)
    return out


def insert_resend(
    conn: sqlite3.Connection, source: str, records: Sequence[Record], codec: Codec, now_ns: int
) -> int:
    """New outbox batches carrying ``records`` again; the tallies are not touched (already counted)."""
    for i in range(0, len(records), RESEND_BATCH_RECORDS):
        chunk = list(records[i : i + RESEND_BATCH_RECORDS])
        body = encode_body(chunk, codec)
        insert_outbox(conn, source, (chunk[0].seq, chunk[-1].seq, len(chunk)), codec, body, now_ns=now_ns)
    return len(records)
