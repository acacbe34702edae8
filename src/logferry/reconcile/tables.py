"""The bucket tables both stores keep for reconciliation, and the SQL that reads and updates them.

``recon_buckets(source, kind, bucket, count, xor, sum)`` holds one ``Summary`` per bucket of
``BUCKET_SEQS`` seqs. The relay adds to it in the journal transaction that sends items to the outbox
(forward, redact, release); the collector in the transaction that stores new rows. Each function here takes
the connection of a transaction (or a read) the caller opened: none commits, none touches the event loop,
and none may ever be called outside the store's own writer thread for writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from logferry.reconcile.summary import EMPTY, BucketTally, ItemKind, Summary, bucket_of, signed64

# The tables' SQL, for the stores' migrations (journal, records, file manifests): declared once here.
BUCKETS_SQL = """
    CREATE TABLE recon_buckets(
        source TEXT NOT NULL, kind INTEGER NOT NULL, bucket INTEGER NOT NULL,
        count INTEGER NOT NULL, xor INTEGER NOT NULL, sum INTEGER NOT NULL,
        PRIMARY KEY (source, kind, bucket)
    ) WITHOUT ROWID;"""


def dirty_sql(items: str, kind: ItemKind) -> str:
    """``recon_dirty`` and the triggers that mark a bucket dirty when a row of ``items`` (a table with
    ``source`` and ``seq``) is deleted or changed behind the store's back; it is rebuilt before answering."""
    k = int(kind)
    return f"""
    CREATE TABLE recon_dirty(
        source TEXT NOT NULL, kind INTEGER NOT NULL, bucket INTEGER NOT NULL,
        PRIMARY KEY (source, kind, bucket)
    ) WITHOUT ROWID;
    CREATE TRIGGER {items}_recon_delete AFTER DELETE ON {items} BEGIN
        INSERT OR IGNORE INTO recon_dirty VALUES (old.source, {k}, old.seq >> 10);
    END;
    CREATE TRIGGER {items}_recon_update AFTER UPDATE ON {items} BEGIN
        INSERT OR IGNORE INTO recon_dirty VALUES (old.source, {k}, old.seq >> 10);
        INSERT OR IGNORE INTO recon_dirty VALUES (new.source, {k}, new.seq >> 10);
    END;"""


_SELECT = "SELECT count, xor, sum FROM recon_buckets WHERE source = ? AND kind = ? AND bucket = ?"
_UPSERT = (
    "INSERT INTO recon_buckets(source, kind, bucket, count, xor, sum) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(source, kind, bucket) DO UPDATE SET count = excluded.count, xor = excluded.xor, "
    "sum = excluded.sum"
)


def add_tally(conn: sqlite3.Connection, source: str, kind: ItemKind, tally: BucketTally) -> None:
    """Add a transaction's items to their buckets (read, combine in Python: SQL sums overflow to REAL)."""
    if not tally:
        return
    rows: list[tuple[object, ...]] = []
    for bucket, delta in tally.items():
        row = conn.execute(_SELECT, (source, int(kind), bucket)).fetchone()
        now = delta if row is None else Summary(*row) + delta
        rows.append((source, int(kind), bucket, now.count, now.xor, now.sum))
    conn.executemany(_UPSERT, rows)


def set_bucket(conn: sqlite3.Connection, source: str, kind: ItemKind, bucket: int, value: Summary) -> None:
    """Replace one bucket's summary (a rebuild from the items themselves); an empty one is removed."""
    if value.count == 0:
        conn.execute(
            "DELETE FROM recon_buckets WHERE source = ? AND kind = ? AND bucket = ?",
            (source, int(kind), bucket),
        )
        return
    conn.execute(_UPSERT, (source, int(kind), bucket, value.count, value.xor, value.sum))


def bucket_sum(
    conn: sqlite3.Connection, source: str, kind: ItemKind, first_bucket: int, last_bucket: int
) -> Summary:
    """The combined summary of buckets ``first_bucket..last_bucket`` (one indexed range scan)."""
    rows = conn.execute(
        "SELECT count, xor, sum FROM recon_buckets WHERE source = ? AND kind = ? AND bucket BETWEEN ? AND ?",
        (source, int(kind), first_bucket, last_bucket),
    )
    count = xor = total = 0
    for c, x, s in rows:
        count += c
        xor ^= x
        total += s
    return Summary(count, xor, signed64(total)) if count else EMPTY


def range_sum(conn: sqlite3.Connection, source: str, kind: ItemKind, first: int, last: int) -> Summary:
    """The summary of the buckets that ``first..last`` touches (exact when the range is bucket-aligned)."""
    return bucket_sum(conn, source, kind, bucket_of(first), bucket_of(last))


def sources(conn: sqlite3.Connection, kind: ItemKind) -> Iterable[str]:
    rows = conn.execute("SELECT DISTINCT source FROM recon_buckets WHERE kind = ?", (int(kind),))
    return [str(s) for (s,) in rows]
