"""The collector's file store: every manifest in ``files.db``, the content once per sha256 on disk.

A file item ``(source, seq)`` is kept as one row (path, size, mtime_ns, sha256, relay, received_ns); its
content lives in the content-addressed directory ``<data_dir>/files`` (``store/content.py``), so identical
content sent under many ids is stored once while every manifest is kept. A row is written only after its
content is durable at its address; the relay is acknowledged only after the row's commit.

The rows also feed reconciliation (``ItemKind.FILE``; an item's digest is the first 8 bytes of its sha256):
bucket summaries are kept in the transaction that stores a row, and a row deleted or changed behind the
store marks its bucket dirty through triggers. Content deleted or changed on disk is found by
:meth:`FileManifests.sweep`, which compares every stored content file's size and mtime with the fingerprint
taken when it was last verified (``content_checks``) and marks the buckets of changed ones dirty;
:meth:`FileManifests.rebuild_dirty` then verifies the sha256 of the content of every item in the buckets it
rebuilds (re-hashing only content whose fingerprint changed) and rebuilds each bucket with a poisoned digest
for bad content, so a lost or corrupt file shows as a difference. :meth:`FileManifests.verify_content`
re-hashes everything (a full scrub, for damage that kept size and mtime). This module never changes a
manifest once written and never deletes content.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from logferry.protocol.connection import Authenticated
from logferry.protocol.messages import FileOffer
from logferry.reconcile.summary import BucketTally, ItemKind, Summary, bucket_span
from logferry.reconcile.tables import BUCKETS_SQL, add_tally, dirty_sql, set_bucket
from logferry.store.content import ContentStore, sha256_of
from logferry.store.sqlite import Database, Durability, rows_by_id

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
    CREATE INDEX files_received ON files(received_ns);"""
    + BUCKETS_SQL
    + dirty_sql("files", ItemKind.FILE)
    + "\n    ",
    # The verdict of the last verification of each stored content, with the size and mtime it had then:
    # content whose size or mtime no longer match is verified again before its buckets are trusted.
    """
    CREATE TABLE content_checks(
        sha256 BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, good INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX files_sha ON files(sha256);
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


Fingerprint = tuple[int, int]  # (size, mtime_ns) of a stored content file; MISSING when it is gone
MISSING: Fingerprint = (-1, -1)
SWEEP_PAGE = 10_000  # distinct contents read per query of a sweep


def fingerprint(path: str | Path) -> Fingerprint:
    """The size and mtime of ``path``, or ``MISSING`` (one stat; blocks)."""
    try:
        st = os.stat(path)
    except OSError:
        return MISSING
    return (st.st_size, st.st_mtime_ns)


class FileManifests:
    """Create with ``await FileManifests.open(data_dir)``; close with ``await close()``."""

    def __init__(self, db: Database, content: ContentStore, bad: set[bytes] | None = None) -> None:
        self._db = db
        self.content = content
        self._bad: set[bytes] = bad or set()  # content found missing or damaged by the last verification

    @classmethod
    async def open(cls, data_dir: Path, durability: Durability = Durability.FULL) -> FileManifests:
        db = await Database.open(
            data_dir / "files.db", MIGRATIONS, durability, "files", application_id=FILES_APPLICATION_ID
        )
        bad = await db.read(
            lambda c: {bytes(h) for (h,) in c.execute("SELECT sha256 FROM content_checks WHERE good = 0")}
        )
        return cls(db, await asyncio.to_thread(ContentStore, data_dir / "files"), bad)

    async def close(self) -> None:
        await self._db.close()

    @property
    def bad(self) -> frozenset[bytes]:
        """Contents the last verification found missing or damaged (their items answer poisoned digests)."""
        return frozenset(self._bad)

    async def read_with(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._db.read(fn)

    async def get(self, source: str, seq: int) -> StoredFile | None:
        sql = f"SELECT {_COLUMNS} FROM files WHERE source = ? AND seq = ?"
        row = await self._db.read(lambda c: c.execute(sql, (source, seq)).fetchone())
        return None if row is None else _row(row)

    async def add(self, source: str, seq: int, path: str, size: int, mtime_ns: int, sha256: bytes,
                  relay: str) -> bool:  # fmt: skip
        """Keep a manifest whose content is durable (and verified) already; False if the id was stored
        before. The content's fingerprint is recorded as verified good."""
        (added,) = await self.add_many([FileOffer(source, seq, path, size, mtime_ns, sha256)], relay)
        return added

    async def add_many(self, offers: list[FileOffer], relay: str) -> list[bool]:
        """``add`` for many manifests in one transaction; per manifest, False if its id was stored before."""
        hashes = list(dict.fromkeys(o.sha256 for o in offers))
        # Taken from the write where put_many just wrote the file, else one stat of the address.
        found = [self.content.take_written(h) for h in hashes]
        prints: list[Fingerprint] = [p for p in found if p is not None]
        if len(prints) < len(hashes):
            address = self.content.address
            pairs = list(zip(hashes, found, strict=True))
            prints = await asyncio.to_thread(lambda: [p or fingerprint(address(h)) for h, p in pairs])
        now = time.time_ns()

        def run(conn: sqlite3.Connection) -> list[bool]:
            conn.executemany(
                _CHECK_UPSERT, [(h, n, m, 1) for h, (n, m) in zip(hashes, prints, strict=True) if n >= 0]
            )
            # Which ids are stored already, one query per 500 seqs; then the new rows in one executemany
            # (not one execute per manifest: a bundle brings up to 1,024). Only this writer thread writes.
            stored = {
                (s, q) for s, q, _ in rows_by_id(conn, "files", "1", ((o.source, o.seq) for o in offers))
            }
            added: list[bool] = []
            rows: list[tuple[object, ...]] = []
            tallies: dict[str, BucketTally] = {}
            dirty: list[tuple[str, int]] = []
            for o in offers:
                key = (o.source, o.seq)
                new = key not in stored
                added.append(new)
                if new:
                    stored.add(key)  # the same id twice in one call is stored once
                    rows.append((o.source, o.seq, o.path, o.size, o.mtime_ns, o.sha256, relay, now))
                    tallies.setdefault(o.source, BucketTally()).add(o.seq, o.sha256[:8])
                else:
                    # The id is stored: if its content was lost and has just come back, redo its bucket.
                    dirty.append((o.source, o.seq >> 10))
            conn.executemany(f"INSERT INTO files({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.executemany("INSERT OR IGNORE INTO recon_dirty VALUES (?, 2, ?)", dirty)
            for source, tally in tallies.items():
                add_tally(conn, source, ItemKind.FILE, tally)
            return added

        self._bad.difference_update(hashes)
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

    async def sweep(self) -> int:
        """Mark dirty the buckets of items whose content's size or mtime changed since it was last verified
        (or that were never verified). One stat per distinct content; no hashing. Returns how many changed."""
        changed: set[bytes] = set()
        after = b""
        while True:
            rows = await self._db.read(functools.partial(_sweep_page, after=after))
            if not rows:
                break
            after = bytes(rows[-1][0])
            changed |= await asyncio.to_thread(self._changed, rows)
        if changed:
            await self._db.write(lambda c: _mark_dirty(c, changed))
            log.warning(
                "%d stored file contents changed on disk: their buckets are checked again", len(changed)
            )
        return len(changed)

    def _changed(self, rows: list[tuple[Any, ...]]) -> set[bytes]:
        out: set[bytes] = set()
        for sha, size, mtime_ns in rows:
            h = bytes(sha)
            if size is None or fingerprint(self.content.address(h)) != (size, mtime_ns):
                out.add(h)
        return out

    async def verify_content(self) -> int:
        """Re-hash every stored content file (a full scrub); record each verdict and mark the buckets of
        items whose content is gone or damaged dirty. Returns how many distinct contents are bad. Reads each
        file in pieces (bounded memory)."""
        shas = await self._db.read(
            lambda c: [bytes(h) for (h,) in c.execute("SELECT DISTINCT sha256 FROM files")]
        )
        verdicts = await asyncio.to_thread(self._verify, [(h, None, None, None) for h in shas])
        bad = {h for h, _fp, good in verdicts if not good}
        await self._db.write(lambda c: _record(c, verdicts, mark_bad=True))
        self._bad = bad
        return len(bad)

    async def rebuild_dirty(self) -> int:
        """Rebuild dirty buckets from their rows, after verifying the content of every item in them
        (re-hashing only content whose fingerprint changed since its last verification)."""

        def read(conn: sqlite3.Connection) -> tuple[int, list[tuple[Any, ...]]]:
            (n,) = conn.execute("SELECT COUNT(*) FROM recon_dirty WHERE kind = 2").fetchone()
            return int(n), conn.execute(_DIRTY_CONTENT).fetchall() if n else []

        dirty, rows = await self._db.read(read)
        if not dirty:
            return 0
        verdicts = await asyncio.to_thread(self._verify, rows)
        for h, _fp, good in verdicts:
            if good:
                self._bad.discard(h)
            else:
                self._bad.add(h)
        bad = set(self._bad)

        def write(conn: sqlite3.Connection) -> int:
            _record(conn, verdicts, mark_bad=False)
            return _rebuild(conn, bad)

        return await self._db.write(write)

    def _verify(self, rows: list[tuple[Any, ...]]) -> list[tuple[bytes, Fingerprint, bool]]:
        """``(sha256, fingerprint now, good)`` per ``(sha256, size, mtime_ns, good)`` row: the recorded
        verdict while the fingerprint is unchanged, else a fresh one (hashing the content)."""
        out: list[tuple[bytes, Fingerprint, bool]] = []
        for sha, size, mtime_ns, good in rows:
            h = bytes(sha)
            path = self.content.path_for(h)
            fp = fingerprint(path)
            if good is not None and fp == (size, mtime_ns):
                out.append((h, fp, bool(good)))
                continue
            ok = fp != MISSING and sha256_of(path).digest() == h
            if not ok:
                log.warning(
                    "stored content %s is %s", h.hex()[:16], "missing" if fp == MISSING else "damaged"
                )
            out.append((h, fingerprint(path) if ok else fp, ok))
        return out


_CHECK_UPSERT = (
    "INSERT INTO content_checks(sha256, size, mtime_ns, good) VALUES (?, ?, ?, ?) ON CONFLICT(sha256) "
    "DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, good = excluded.good"
)
_SWEEP_PAGE = (
    "SELECT f.sha256, k.size, k.mtime_ns FROM (SELECT DISTINCT sha256 FROM files WHERE sha256 > ? "
    "ORDER BY sha256 LIMIT ?) f LEFT JOIN content_checks k ON k.sha256 = f.sha256 ORDER BY f.sha256"
)
_DIRTY_CONTENT = (
    "SELECT DISTINCT f.sha256, k.size, k.mtime_ns, k.good FROM recon_dirty d "
    "JOIN files f ON f.source = d.source AND f.seq BETWEEN (d.bucket << 10) AND ((d.bucket + 1) << 10) - 1 "
    "LEFT JOIN content_checks k ON k.sha256 = f.sha256 WHERE d.kind = 2"
)


def _sweep_page(conn: sqlite3.Connection, after: bytes) -> list[tuple[Any, ...]]:
    return conn.execute(_SWEEP_PAGE, (after, SWEEP_PAGE)).fetchall()


def _record(
    conn: sqlite3.Connection, verdicts: list[tuple[bytes, Fingerprint, bool]], mark_bad: bool
) -> None:
    conn.executemany(_CHECK_UPSERT, [(h, fp[0], fp[1], int(good)) for h, fp, good in verdicts])
    if mark_bad:
        _mark_dirty(conn, {h for h, _fp, good in verdicts if not good})


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

    async def files_known(self, files: list[tuple[str, int, bytes]]) -> set[tuple[str, int]]:
        def run(c: sqlite3.Connection) -> list[tuple[str, int, bytes, bytes]]:
            rows = rows_by_id(c, "files", "sha256", ((source, seq) for source, seq, _sha in files))
            held = {(source, seq): bytes(sha) for source, seq, sha in rows}
            return [(s, q, sha, held[s, q]) for s, q, sha in files if (s, q) in held]

        stored = await self.manifests.read_with(run)
        known: set[tuple[str, int]] = set()
        check: list[tuple[tuple[str, int], bytes]] = []
        for source, seq, sha, held in stored:
            if held != sha:
                log.warning(
                    "file %s:%d offered with other content than stored; the first is kept", source, seq
                )
                known.add((source, seq))
            else:
                check.append(((source, seq), sha))
        if check:
            # Content reconciliation found damaged is set aside and taken again (the relay's copy), and
            # content that was lost is taken again.
            known.update(await asyncio.to_thread(self._still_held, check))
        return known

    def _still_held(self, check: list[tuple[tuple[str, int], bytes]]) -> list[tuple[str, int]]:
        held = []
        for key, sha in check:
            if sha in self.manifests._bad:
                self.manifests.content.quarantine(sha)
            elif self.manifests.content.has(sha):
                held.append(key)
        return held

    async def file_commit_many(self, peer: Authenticated, offers: list[FileOffer]) -> None:
        await self.manifests.add_many(offers, peer.source)
