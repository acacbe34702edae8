"""Small contents as rows of one SQLite table: the small table of ``ContentStore`` (``store/content.py``).

One connection for writes, shared by worker threads behind a lock (``check_same_thread=False``); WAL with
``synchronous=FULL``, so an insert is durable when ``insert`` returns. Reads (``has``, ``load``) go through a
second connection behind a lock of its own: WAL lets them see every committed row while an insert waits for
its flush, so a sender reading contents never waits for an intake's commit. A delete is not flushed at
once: the next insert's commit flushes it, and a delete lost in a crash leaves only a row nobody names.
SQLite errors are raised as OSError, like a file store's. This module never verifies content (its caller
does, before ``insert``) and never replaces a row (INSERT OR IGNORE: content is stored once per sha256).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

_SCHEMA = (
    # A rowid table (not WITHOUT ROWID): rows of up to hundreds of KiB are what SQLite advises it for.
    "CREATE TABLE IF NOT EXISTS content (sha256 BLOB PRIMARY KEY, data BLOB NOT NULL)"
)
# A new table's pages: a content of a few KiB fits in one with others, where SQLite's 4 KiB page needs an
# overflow page per row, and the WAL writes, checkpoint reads and rewrites every one of them. Inserting
# 4 KiB rows in transactions of 1,000 cost 0.15-0.17 CPU-s per 10k with 4 KiB pages, 0.056-0.067 with
# 64 KiB (docs/BENCHMARKS.md). A table created before keeps its page size (SQLite cannot change it in WAL).
PAGE_BYTES = 64 << 10
CHECKPOINT_BYTES = 8 << 20  # the WAL is copied into the table every ~8 MiB, whatever the page size


class SmallTable:
    """The rows of small contents: one SQLite connection shared by worker threads behind a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        with self._guard():
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                conn.execute(f"PRAGMA page_size={PAGE_BYTES}")  # only a new, empty database takes it
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(_SCHEMA)
                (page,) = conn.execute("PRAGMA page_size").fetchone()
                conn.execute(f"PRAGMA wal_autocheckpoint={max(1, CHECKPOINT_BYTES // int(page))}")
            except BaseException:
                conn.close()
                raise
        self._conn: sqlite3.Connection | None = conn
        self._durable = True  # synchronous=FULL is in effect
        self._read_lock = threading.Lock()
        with self._guard():
            self._reader: sqlite3.Connection | None = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """The reading connection, exclusively."""
        with self._read_lock, self._guard():
            if self._reader is None:
                raise OSError(f"the small-content table {self.path} is closed")
            yield self._reader

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise OSError(f"the small-content table {self.path} failed: {exc}") from exc

    @contextlib.contextmanager
    def _use(self, durable: bool | None = None) -> Iterator[sqlite3.Connection]:
        """The connection, exclusively; for a write, ``durable`` says whether its commit is flushed."""
        with self._lock, self._guard():
            if self._conn is None:
                raise OSError(f"the small-content table {self.path} is closed")
            if durable is not None and durable != self._durable:
                self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._durable = durable
            yield self._conn

    def insert(self, rows: list[tuple[bytes, bytes]]) -> None:
        """Store ``(sha256, data)`` rows not stored yet, in one transaction, durable when it returns."""
        with self._use(durable=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR IGNORE INTO content (sha256, data) VALUES (?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def has(self, sha256: bytes) -> bool:
        with self._read() as conn:
            return conn.execute("SELECT 1 FROM content WHERE sha256 = ?", (sha256,)).fetchone() is not None

    def load(self, sha256: bytes) -> bytes | None:
        with self._read() as conn:
            row = conn.execute("SELECT data FROM content WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else bytes(row[0])

    def delete(self, sha256: bytes) -> None:
        # Not flushed: the WAL makes it durable with the next insert; lost in a crash, it only leaves a
        # row nobody names (as an unlink whose directory was not fsynced).
        with self._use(durable=False) as conn:
            conn.execute("DELETE FROM content WHERE sha256 = ?", (sha256,))

    def close(self) -> None:
        with self._read_lock, self._guard():
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        with self._lock, self._guard():
            if self._conn is not None:
                self._conn.close()
                self._conn = None
