"""What reconciliation reads from and writes to the relay's journal file (SQL only, no policy).

Every function takes a connection from ``Journal.read_with`` / ``Journal.write_with``: reads run on a read
connection, ``insert_resend`` inside the journal's write transaction. The range a source is reconciled over
stops below the first bucket that holds an item the collector has not acknowledged yet, so an item in flight
is never reported missing (for files: below the first bucket with a file the collector has not acknowledged
yet). Nothing here may change a fate, a tally, or an acknowledged outbox row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from logferry.model import Codec, Fate, Record, encode_body
from logferry.reconcile.summary import BUCKET_BITS, ItemKind, bucket_of, bucket_span
from logferry.store.journal_tx import insert_outbox, overlapping
from logferry.store.runs import Range, coalesce, decode_runs

RESEND_BATCH_RECORDS = 5_000  # a large resend becomes several outbox batches of bounded size
_SENT = frozenset((int(Fate.FORWARDED), int(Fate.REDACTED), int(Fate.RELEASED)))
_FILE_SENT = (int(Fate.FORWARDED), int(Fate.RELEASED))
_UNSENT_FILES = "SELECT source, MIN(seq) FROM file_items WHERE sent = 0 AND fate IN (?, ?) GROUP BY source"


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
