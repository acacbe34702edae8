"""The agent's durable queue of whole files: where a complete file gets its id ``(<source>/files, seq)``.

A file is queued with its manifest (path, size, mtime_ns, sha256) in one transaction that gives it the next
seq; its content stays where it is and is read again, chunk by chunk, when it is sent (the manifest's sha256
tells whether it is still the same content). States: ``pending`` until the relay acknowledged it, then
``acked``; ``refused`` when the relay refused it for good (it changed while it was sent: the folder watch then
queues the new content as a new item). A version already queued (same path, size, mtime and sha256) is never
queued twice, so a restart does not ship a folder again.

Files live in ``files.db`` beside the record spool, their own seq space, so record seqs never have holes
because of files and vice versa. This module must never give a seq twice, never forget a pending file, and
never read file content (the watch hashes, the sender reads).
"""

from __future__ import annotations

import enum
import functools
import itertools
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Sequence
from pathlib import Path

from logferry.paths import loaded, shown, stored
from logferry.store.sqlite import Database, Durability
from logferry.transport.file_sender import Key, OutgoingFile

FILE_QUEUE_APPLICATION_ID = 0x4C464671  # "LFFq"
KNOWN_PAGE = 500  # paths per query when asking which versions are known
RECENT_BYTES = 32 << 20  # contents read when queued, kept in memory for the sender (all files together)

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta(id INTEGER PRIMARY KEY CHECK (id = 1), next_seq INTEGER NOT NULL);
    INSERT INTO meta VALUES (1, 1);
    CREATE TABLE files(
        seq INTEGER PRIMARY KEY,
        path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 BLOB NOT NULL,
        state INTEGER NOT NULL, queued_ns INTEGER NOT NULL, settled_ns INTEGER
    );
    CREATE INDEX files_state ON files(state, seq);
    CREATE INDEX files_version ON files(path, size, mtime_ns);
    """,
)


class FileState(enum.IntEnum):
    PENDING = 0
    ACKED = 1
    REFUSED = 2


class FileQueueStore:
    """Create with ``await FileQueueStore.open(path, source)``; close with ``await close()``."""

    def __init__(self, db: Database, source: str) -> None:
        self._db = db
        self.source = source  # the item source: "<agent source>/files"
        # Small contents read when queued, by seq, oldest first: the sender takes them instead of
        # opening the file again. The sender reads them in worker threads, hence the lock.
        self._recent: OrderedDict[int, bytes] = OrderedDict()
        self._recent_bytes = 0
        self._recent_lock = threading.Lock()

    @classmethod
    async def open(cls, path: Path, source: str, durability: Durability = Durability.FULL) -> FileQueueStore:
        db = await Database.open(
            path, MIGRATIONS, durability, "files", application_id=FILE_QUEUE_APPLICATION_ID
        )
        return cls(db, source)

    async def close(self) -> None:
        await self._db.close()

    async def known(self, path: str, size: int, mtime_ns: int) -> bool:
        """Whether this version of the file (by path, size and mtime) is queued or shipped already."""
        return (path, size, mtime_ns) in await self.known_versions([(path, size, mtime_ns)])

    async def known_versions(self, versions: list[tuple[str, int, int]]) -> set[tuple[str, int, int]]:
        """Which of these ``(path, size, mtime_ns)`` versions are queued or shipped already."""

        def run(conn: sqlite3.Connection) -> set[tuple[str, int, int]]:
            found: set[tuple[str, int, int]] = set()
            for i in range(0, len(versions), KNOWN_PAGE):
                paths = [stored(p) for p in {p for p, _, _ in versions[i : i + KNOWN_PAGE]}]
                rows = conn.execute(
                    f"SELECT path, size, mtime_ns FROM files WHERE state != ? AND path IN "
                    f"({', '.join('?' * len(paths))})",
                    (int(FileState.REFUSED), *paths),
                )
                found.update((loaded(p), int(n), int(m)) for p, n, m in rows)
            return found & set(versions)

        return await self._db.read(run)

    async def add(self, path: str, size: int, mtime_ns: int, sha256: bytes) -> int | None:
        """Queue a complete file; its seq, or None when this exact version is queued already."""
        return (await self.add_many([(path, size, mtime_ns, sha256)]))[0]

    async def add_many(
        self, files: list[tuple[str, int, int, bytes]], contents: Sequence[bytes | None] = ()
    ) -> list[int | None]:
        """Queue complete files ``(path, size, mtime_ns, sha256)`` in one transaction; each one's seq, or
        None for a version queued already. ``contents``, where given, are what was hashed (small files):
        the sender sends them from memory while they fit in ``RECENT_BYTES``."""

        def run(conn: sqlite3.Connection) -> list[int | None]:
            (seq,) = conn.execute("SELECT next_seq FROM meta").fetchone()
            out: list[int | None] = []
            now = time.time_ns()
            for name, size, mtime_ns, sha256 in files:
                path = stored(name)
                dup = conn.execute(
                    "SELECT seq FROM files WHERE path = ? AND size = ? AND mtime_ns = ? AND sha256 = ? "
                    "AND state != ?",
                    (path, size, mtime_ns, sha256, int(FileState.REFUSED)),
                ).fetchone()
                if dup is not None:
                    out.append(None)
                    continue
                conn.execute(
                    "INSERT INTO files(seq, path, size, mtime_ns, sha256, state, queued_ns) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (seq, path, size, mtime_ns, sha256, int(FileState.PENDING), now),
                )
                out.append(int(seq))
                seq += 1
            conn.execute("UPDATE meta SET next_seq = ?", (seq,))
            return out

        added = await self._db.write(run)
        if contents:
            self._remember([(q, d) for q, d in zip(added, contents, strict=True) if q is not None and d])
        return added

    def _remember(self, contents: list[tuple[int, bytes]]) -> None:
        with self._recent_lock:
            for seq, data in contents:
                self._recent[seq] = data
                self._recent_bytes += len(data)
            while self._recent_bytes > RECENT_BYTES:
                self._recent_bytes -= len(self._recent.popitem(last=False)[1])

    def _take(self, seq: int) -> bytes | None:
        """A queued file's content read when it was hashed (once), or None: read the file."""
        with self._recent_lock:
            data = self._recent.pop(seq, None)
            if data is not None:
                self._recent_bytes -= len(data)
            return data

    def _forget(self, seqs: list[int]) -> None:
        for seq in seqs:
            self._take(seq)

    async def next_files(self, limit: int, busy: Collection[Key] = frozenset()) -> list[OutgoingFile]:
        """Up to ``limit`` pending files, oldest first, leaving out the seqs in ``busy`` (in flight)."""
        source = self.source

        def run(c: sqlite3.Connection) -> list[tuple[int, str | bytes, int, int, bytes]]:
            rows = c.execute(
                "SELECT seq, path, size, mtime_ns, sha256 FROM files WHERE state = ? ORDER BY seq LIMIT ?",
                (int(FileState.PENDING), limit + len(busy)),
            )
            # Leave out the busy ones before anything is built: the sender asks again at every refill.
            return list(itertools.islice((r for r in rows if (source, r[0]) not in busy), limit))

        rows = await self._db.read(run)
        recent = self._recent
        return [
            OutgoingFile(source, s, shown(p), n, m, bytes(h), p,
                         checked=functools.partial(self._take, s) if s in recent else None)
            for s, p, n, m, h in ((s, loaded(v), n, m, h) for s, v, n, m, h in rows)
        ]  # fmt: skip

    async def settle(self, seq: int, state: FileState) -> None:
        await self.settle_many([seq], state)

    async def settle_many(self, seqs: list[int], state: FileState) -> None:
        self._forget(seqs)
        now = time.time_ns()
        await self._db.write(
            lambda c: c.executemany(
                "UPDATE files SET state = ?, settled_ns = ? WHERE seq = ? AND state = ?",
                [(int(state), now, seq, int(FileState.PENDING)) for seq in seqs],
            )
        )

    async def counts(self) -> dict[FileState, int]:
        sql = "SELECT state, COUNT(*) FROM files GROUP BY state"
        rows = await self._db.read(lambda c: c.execute(sql).fetchall())
        return {FileState(s): int(n) for s, n in rows}
