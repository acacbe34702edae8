"""One SQLite database file: a single writer thread with group commit, a small pool of readers, migrations.

Every write is a callable ``fn(conn) -> T`` queued to the database's one writer thread. The writer takes all
writes that are waiting (up to ``max_group``), runs them in ONE ``BEGIN IMMEDIATE`` transaction with a
SAVEPOINT around each, and commits once: a failing callable rolls back only its own savepoint and fails only
its own future, and no future resolves before the COMMIT that made its work durable (ack means durable).
Reads run on separate read-only connections; WAL mode lets them proceed while the writer commits.

This module must never run SQL on the event loop thread, never let a caller queue unboundedly many writes
(the queue is bounded; callers wait for room), and never resolve a write's future before its commit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from logferry.errors import StoreError

T = TypeVar("T")


class Durability(enum.Enum):
    """How hard a commit tries to reach the disk before it counts as done.

    FULL: ``synchronous=FULL``. Every commit is fsynced; a committed item survives a power loss or an
    operating-system crash. Slower: each group commit waits for the disk.

    NORMAL: ``synchronous=NORMAL``. In WAL mode the log is fsynced only at checkpoints; a committed item
    survives a process crash (``kill -9``, an exception, an OOM kill) but the last commits before a power
    loss or an OS crash may be rolled back. The database itself is never corrupted either way.
    """

    FULL = "FULL"
    NORMAL = "NORMAL"


@dataclass(frozen=True, slots=True)
class _Write:
    fn: Callable[[sqlite3.Connection], Any]
    settle: Callable[[Any, BaseException | None], None]


_STOP: Final = object()
_BUSY_TIMEOUT_MS = 10_000
_WRITER_CACHE_KIB = 32 * 1024


class Database:
    """A SQLite file with one writer thread (group commit, bounded queue) and a pool of reader threads.

    Open with ``await Database.open(...)`` (or ``open_sync`` outside asyncio); the async API belongs to one
    event loop. ``write_sync``/``read_sync`` are an escape hatch for tests and tools running outside a loop.
    """

    def __init__(
        self,
        path: Path,
        name: str,
        durability: Durability,
        *,
        migrations: Sequence[str],
        application_id: int,
        readers: int,
        max_queued_writes: int,
        max_group: int,
    ) -> None:
        self.path = path
        self.name = name
        self.durability = durability
        self._max_group = max_group
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        # The bound on queued-but-unfinished writes; a slot is returned when the write's future settles.
        self._room = asyncio.Semaphore(max_queued_writes)
        self._outstanding = 0
        self._enqueue_lock = threading.Lock()
        self._closing = False
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._writer = threading.Thread(target=self._run_writer, name=f"{name}-writer", daemon=True)
        self._reader_conns: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all_readers: list[sqlite3.Connection] = []
        self._readers = concurrent.futures.ThreadPoolExecutor(readers, thread_name_prefix=f"{name}-reader")
        self._migrations = tuple(migrations)
        self._application_id = application_id

    # ----------------------------------------------------------------------------------------- opening

    @classmethod
    async def open(
        cls,
        path: Path | str,
        migrations: Sequence[str],
        durability: Durability = Durability.FULL,
        name: str = "database",
        *,
        application_id: int = 0,
        readers: int = 2,
        max_queued_writes: int = 64,
        max_group: int = 64,
    ) -> Database:
        """Open (creating parent directories and the file if needed) and migrate; raises StoreError."""
        return await asyncio.to_thread(
            cls.open_sync,
            path,
            migrations,
            durability,
            name,
            application_id=application_id,
            readers=readers,
            max_queued_writes=max_queued_writes,
            max_group=max_group,
        )

    @classmethod
    def open_sync(
        cls,
        path: Path | str,
        migrations: Sequence[str],
        durability: Durability = Durability.FULL,
        name: str = "database",
        *,
        application_id: int = 0,
        readers: int = 2,
        max_queued_writes: int = 64,
        max_group: int = 64,
    ) -> Database:
        """The blocking form of :meth:`open`."""
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"{name} store {p}: cannot create directory {p.parent}: {exc.strerror or exc}; "
                "create it or choose a writable location"
            ) from exc
        db = cls(
            p,
            name,
            durability,
            migrations=migrations,
            application_id=application_id,
            readers=readers,
            max_queued_writes=max_queued_writes,
            max_group=max_group,
        )
        db._writer.start()
        try:
            db._ready.result()
            for _ in range(readers):
                conn = db._connect()
                conn.execute("PRAGMA query_only=ON")
                db._all_readers.append(conn)
                db._reader_conns.put(conn)
        except BaseException:
            db._close_sync()
            raise
        return db

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._open_error(exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            conn.close()
            raise self._open_error(exc) from exc
        return conn

    def _open_error(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            hint = (
                "the file is not a SQLite database or is damaged; move it aside (logferry then starts with "
                "an empty store) or restore it from a backup"
            )
        elif "unable to open" in text or "readonly" in text or "read-only" in text:
            hint = "check that the file and its directory exist and are writable by this user"
        else:
            hint = "check the file, the disk and its permissions"
        return StoreError(f"{self.name} store {self.path}: cannot open: {text}; {hint}")

    def _prepare_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(
                    f"{self.name} store {self.path}: the file system refused WAL mode (got {mode}); "
                    "put the store on a local disk"
                )
            conn.execute(f"PRAGMA synchronous={self.durability.value}")
            conn.execute(f"PRAGMA cache_size=-{_WRITER_CACHE_KIB}")
            self._check_identity(conn)
            self._migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise self._open_error(exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_identity(self, conn: sqlite3.Connection) -> None:
        if not self._application_id:
            return
        found = int(conn.execute("PRAGMA application_id").fetchone()[0])
        if found == 0 and int(conn.execute("PRAGMA user_version").fetchone()[0]) == 0:
            conn.execute(f"PRAGMA application_id={self._application_id}")
        elif found != self._application_id:
            raise StoreError(
                f"{self.name} store {self.path}: this file belongs to another kind of store "
                f"(application_id {found:#x}, expected {self._application_id:#x}); check the configured path"
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        known = len(self._migrations)
        if version > known:
            raise StoreError(
                f"{self.name} store {self.path}: schema version {version} was written by a newer logferry "
                f"(this one knows up to {known}); upgrade logferry or point it at another file"
            )
        for number in range(version + 1, known + 1):
            script = self._migrations[number - 1]
            try:
                # user_version is set in the same transaction: a migration applies wholly or not at all.
                conn.executescript(f"BEGIN IMMEDIATE;\n{script}\n;PRAGMA user_version={number};\nCOMMIT;")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(
                    f"{self.name} store {self.path}: migration {number} failed: {exc}; "
                    f"the file stays at version {number - 1}; report this as a bug"
                ) from exc

    # ------------------------------------------------------------------------------------------ writing

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in the writer thread inside a transaction; returns its result after the commit.

        Waits for room when the queue is full (backpressure). ``fn`` must not touch the event loop. If the
        caller is cancelled after the write was queued, the write still happens; only its result is lost.
        """
        await self._room.acquire()
        self._outstanding += 1
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()

        def settle(result: Any, error: BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(self._settle, fut, result, error)

        try:
            self._enqueue(_Write(fn, settle))
        except BaseException:
            self._outstanding -= 1
            self._room.release()
            raise
        return await fut

    @property
    def pending_writes(self) -> int:
        """Async writes queued or running, at most ``max_queued_writes``: a queue-depth gauge."""
        return self._outstanding

    def _settle(self, fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        self._outstanding -= 1
        self._room.release()
        if fut.cancelled():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)

    def write_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Blocking :meth:`write` for code outside the event loop (tests, tools); not bounded by the queue."""
        cf: concurrent.futures.Future[T] = concurrent.futures.Future()

        def settle(result: Any, error: BaseException | None) -> None:
            if error is not None:
                cf.set_exception(error)
            else:
                cf.set_result(result)

        self._enqueue(_Write(fn, settle))
        return cf.result()

    def _enqueue(self, item: _Write) -> None:
        # The lock orders "check closing, enqueue" against close()'s "set closing, enqueue STOP", so no write
        # can land behind the STOP marker and wait forever.
        with self._enqueue_lock:
            if self._closing:
                raise StoreError(f"{self.name} store {self.path} is closed; no more writes are accepted")
            self._queue.put(item)

    def _run_writer(self) -> None:
        try:
            conn = self._prepare_writer()
        except BaseException as exc:  # noqa: BLE001 - handed to the opener, who raises it
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        try:
            stop = False
            while not stop:
                first = self._queue.get()
                if first is _STOP:
                    break
                group = [first]
                while len(group) < self._max_group:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        stop = True
                        break
                    group.append(more)
                self._commit_group(conn, [g for g in group if isinstance(g, _Write)])
        finally:
            conn.close()

    def _commit_group(self, conn: sqlite3.Connection, group: list[_Write]) -> None:
        outcomes: list[tuple[Any, Exception | None]] = []
        use_savepoints = len(group) > 1
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item in group:
                if use_savepoints:
                    conn.execute("SAVEPOINT w")
                try:
                    result = item.fn(conn)
                except Exception as exc:  # noqa: BLE001 - delivered to the caller's future, never swallowed
                    outcomes.append((None, self._wrap(exc)))
                    if use_savepoints:
                        conn.execute("ROLLBACK TO w")
                        conn.execute("RELEASE w")
                    else:
                        conn.execute("ROLLBACK")
                else:
                    if use_savepoints:
                        conn.execute("RELEASE w")
                    outcomes.append((result, None))
            if conn.in_transaction:  # a lone failed write has rolled back already
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # BEGIN, a savepoint or COMMIT failed (disk full, I/O error): nothing of this group is durable.
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            error = self._wrap(exc)
            for item in group:
                item.settle(None, error)
            return
        for item, (result, failure) in zip(group, outcomes, strict=True):
            item.settle(result, failure)

    def _wrap(self, exc: Exception) -> Exception:
        if isinstance(exc, sqlite3.Error):
            wrapped = StoreError(f"{self.name} store {self.path}: {exc}")
            wrapped.__cause__ = exc
            return wrapped
        return exc

    # ------------------------------------------------------------------------------------------ reading

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on a read-only connection inside one read transaction (a consistent snapshot)."""
        if self._closing:
            raise StoreError(f"{self.name} store {self.path} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    def read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Blocking :meth:`read` for code outside the event loop."""
        return self._readers.submit(self._run_read, fn).result()

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._reader_conns.get()
        try:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.name} store {self.path}: {exc}") from exc
        finally:
            self._reader_conns.put(conn)

    # ------------------------------------------------------------------------------------------ closing

    async def close(self) -> None:
        """Finish every queued write, stop the writer thread and close all connections."""
        await asyncio.to_thread(self._close_sync)

    def close_sync(self) -> None:
        """Blocking :meth:`close`."""
        self._close_sync()

    def _close_sync(self) -> None:
        with self._enqueue_lock:
            if not self._closing:
                self._closing = True
                self._queue.put(_STOP)
        if self._writer.is_alive():
            self._writer.join()
        self._readers.shutdown(wait=True)
        for conn in self._all_readers:
            conn.close()
        self._all_readers.clear()


SEQS_PER_QUERY = 500  # SQLite allows 999 variables in old builds, 32,766 in new ones


def rows_by_id(
    conn: sqlite3.Connection, table: str, columns: str, ids: Iterable[tuple[str, int]]
) -> Iterator[tuple[Any, ...]]:
    """``(source, seq, *columns)`` of the rows of ``table`` (keyed by source and seq) among ``ids``: one
    query per source and 500 seqs instead of one per id (a bundle of small files brings up to 1,024)."""
    by_source: dict[str, dict[int, None]] = {}  # ordered, each seq once
    for source, seq in ids:
        by_source.setdefault(source, {})[seq] = None
    for source, wanted in by_source.items():
        seqs = list(wanted)
        for i in range(0, len(seqs), SEQS_PER_QUERY):
            part = seqs[i : i + SEQS_PER_QUERY]
            marks = ", ".join("?" * len(part))
            sql = f"SELECT source, seq, {columns} FROM {table} WHERE source = ? AND seq IN ({marks})"
            yield from conn.execute(sql, (source, *part))
