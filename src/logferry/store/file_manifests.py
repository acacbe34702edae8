"""The collector's file store: every manifest in ``files.db``, the content once per sha256 on disk.

A file item ``(source, seq)`` is kept as one row (path, size, mtime_ns, sha256, relay, received_ns); its
content lives in the content-addressed directory ``<data_dir>/files`` (``store/content.py``), so identical
content sent under many ids is stored once while every manifest is kept. A row is written only after its
content is durable at its address; the relay is acknowledged only after the row's commit.

The rows also feed reconciliation (``ItemKind.FILE``; an item's digest is the first 8 bytes of its sha256):
bucket summaries are kept in the transaction that stores a row, and a row deleted or changed behind the
store marks its bucket dirty through triggers. Content deleted or damaged on disk is found by
:meth:`FileManifests.verify_content`, which re-hashes stored files and marks the buckets of bad ones dirty;
a bucket is rebuilt from rows whose content verifies, so a lost or corrupt file shows as a difference.
This module never changes a manifest once written and never deletes content.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import msgspec

from logferry.protocol.connection import Authenticated
from logferry.protocol.messages import FileOffer
from logferry.reconcile.summary import BucketTally, ItemKind, Summary, bucket_span
from logferry.reconcile.tables import add_tally, set_bucket
from logferry.store.content import ContentStore
from logferry.store.sqlite import Database, Durability

T = TypeVar("T")
log = logging.getLogger("logferry.files")

FILES_APPLICATION_ID = 0x4C464673  # "LFFs"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE files(
        source TEXT NOT NULL, seq INTEGER NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL, sha256 BLOB NOT NULL, relay TEXT NOT NULL, received_ns INTEGER NOT NULL,
        PRIMARY KEY (source, seq)
    ) WITHOUT ROWID;
    CREATE INDEX files_received ON files(received_ns);
    CREATE TABLE recon_buckets(
        source TEXT NOT NULL, kind INTEGER NOT NULL, bucket INTEGER NOT NULL,
        count INTEGER NOT NULL, xor INTEGER NOT NULL, sum INTEGER NOT NULL,
        PRIMARY KEY (source, kind, bucket)
    ) WITHOUT ROWID;
    CREATE TABLE recon_dirty(
        source TEXT NOT NULL, kind INTEGER NOT NULL, bucket INTEGER NOT NULL,
        PRIMARY KEY (source, kind, bucket)
    ) WITHOUT ROWID;
    CREATE TRIGGER files_recon_delete AFTER DELETE ON files BEGIN
        INSERT OR IGNORE INTO recon_dirty VALUES (old.source, 2, old.seq >> 10);
    END;
    CREATE TRIGGER files_recon_update AFTER UPDATE ON files BEGIN
        INSERT OR IGNORE INTO recon_dirty VALUES (old.source, 2, old.seq >> 10);
        INSERT OR IGNORE INTO recon_dirty VALUES (new.source, 2, new.seq >> 10);
    END;
    """,
)

_COLUMNS = "source, seq, path, size, mtime_ns, sha256, relay, received_ns"


class StoredFile(msgspec.Struct, frozen=True, gc=False):
    source: str
    seq: int
    path: str
    size: int
    mtime_ns: int
    sha256: bytes
    relay: str
    received_ns: int


def _row(r: tuple[object, ...]) -> StoredFile:
    return msgspec.convert(dict(zip(StoredFile.__struct_fields__, r, strict=True)), StoredFile, strict=False)


class FileManifests:
    """Create with ``await FileManifests.open(data_dir)``; close with ``await close()``."""

    def __init__(self, db: Database, content: ContentStore) -> None:
        self._db = db
        self.content = content
        self._bad: set[bytes] = set()  # content found missing or damaged by the last verification

    @classmethod
    async def open(cls, data_dir: Path, durability: Durability = Durability.FULL) -> FileManifests:
        db = await Database.open(
            data_dir / "files.db", MIGRATIONS, durability, "files", application_id=FILES_APPLICATION_ID
        )
        return cls(db, await asyncio.to_thread(ContentStore, data_dir / "files"))

    async def close(self) -> None:
        await self._db.close()

    async def read_with(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._db.read(fn)

    async def get(self, source: str, seq: int) -> StoredFile | None:
        sql = f"SELECT {_COLUMNS} FROM files WHERE source = ? AND seq = ?"
        row = await self._db.read(lambda c: c.execute(sql, (source, seq)).fetchone())
        return None if row is None else _row(row)

    async def add(self, source: str, seq: int, path: str, size: int, mtime_ns: int, sha256: bytes,
                  relay: str) -> bool:  # fmt: skip
        """Keep a manifest whose content is durable already; False if the id was stored before."""

        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                f"INSERT OR IGNORE INTO files({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (source, seq, path, size, mtime_ns, sha256, relay, time.time_ns()),
            )
            if cur.rowcount:
                add_tally(conn, source, ItemKind.FILE, BucketTally().add_all([(seq, sha256[:8])]))
                return True
            # The id is stored: if its content was lost and has just come back, its bucket must be redone.
            conn.execute("INSERT OR IGNORE INTO recon_dirty VALUES (?, 2, ?)", (source, seq >> 10))
            return False

        self._bad.discard(sha256)
        return await self._db.write(run)

    async def page(
        self, *, source: str | None = None, name: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[list[StoredFile], int]:
        """Manifests newest first, filtered by source and a substring of the path; and the total matching."""
        clauses: list[str] = []
        params: list[object] = []
        if source is not None:
            clauses.append("source = ?")
            params.append(source)
        if name:
            escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append("path LIKE ? ESCAPE '\\'")
            params.append(f"%{escaped}%")
        where = " AND ".join(clauses) or "1"

        def run(conn: sqlite3.Connection) -> tuple[list[StoredFile], int]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM files WHERE {where} ORDER BY received_ns DESC, source, seq "
                "LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
            found = [_row(r) for r in rows]
            (total,) = conn.execute(f"SELECT COUNT(*) FROM files WHERE {where}", params).fetchone()
            return found, int(total)

        return await self._db.read(run)

    async def verify_content(self) -> int:
        """Re-hash every stored content file; mark the buckets of items whose content is gone or damaged
        dirty. Returns how many distinct contents are bad. Reads each file in pieces (bounded memory)."""
        shas = await self._db.read(
            lambda c: [bytes(h) for (h,) in c.execute("SELECT DISTINCT sha256 FROM files")]
        )
        bad = {h for h in shas if not await asyncio.to_thread(self.content.verify, h)}
        self._bad = bad
        if bad:
            await self._db.write(lambda c: _mark_dirty(c, bad))
        return len(bad)

    async def rebuild_dirty(self) -> int:
        """Rebuild dirty buckets from the rows whose content is not known bad."""
        bad = set(self._bad)
        return await self._db.write(lambda c: _rebuild(c, bad))


def _mark_dirty(conn: sqlite3.Connection, bad: set[bytes]) -> None:
    for sha in bad:
        conn.execute(
            "INSERT OR IGNORE INTO recon_dirty SELECT source, 2, seq >> 10 FROM files WHERE sha256 = ?",
            (sha,),
        )


def items(
    conn: sqlite3.Connection, source: str, first: int, last: int, bad: set[bytes]
) -> list[tuple[int, bytes]]:
    """``(seq, digest)`` of the stored files in the range; a file whose content is bad gets a digest that
    matches nothing the relay has, so it shows as a mismatch."""
    rows = conn.execute(
        "SELECT seq, sha256 FROM files WHERE source = ? AND seq BETWEEN ? AND ? ORDER BY seq",
        (source, first, last),
    )
    return [(int(s), b"\xff" * 8 if bytes(h) in bad else bytes(h)[:8]) for s, h in rows]


def _rebuild(conn: sqlite3.Connection, bad: set[bytes]) -> int:
    dirty = conn.execute("SELECT source, bucket FROM recon_dirty WHERE kind = 2").fetchall()
    for source, bucket in dirty:
        first, last = bucket_span(int(bucket))
        set_bucket(
            conn, source, ItemKind.FILE, int(bucket), Summary.of(items(conn, source, first, last, bad))
        )
    conn.execute("DELETE FROM recon_dirty WHERE kind = 2")
    return len(dirty)


class CollectorFiles:
    """The collector's ``FileLedger``: a file is known when its manifest is kept and its content is good."""

    def __init__(self, manifests: FileManifests) -> None:
        self.manifests = manifests

    async def file_known(self, source: str, seq: int, sha256: bytes) -> bool:
        stored = await self.manifests.get(source, seq)
        if stored is None:
            return False
        if stored.sha256 != sha256:
            log.warning("file %s:%d offered with other content than stored; the first is kept", source, seq)
            return True
        if sha256 in self.manifests._bad:
            # Reconciliation found this content damaged: set it aside and take the relay's copy.
            await asyncio.to_thread(self.manifests.content.quarantine, sha256)
            return False
        return await asyncio.to_thread(self.manifests.content.has, sha256)

    async def file_commit(self, peer: Authenticated, offer: FileOffer) -> None:
        await self.manifests.add(
            offer.source, offer.seq, offer.path, offer.size, offer.mtime_ns, offer.sha256, peer.source
        )
