"""Whole files on disk, content-addressed: ``<root>/<ab>/<sha256 hex>``, plus the partial files of
transfers in progress under ``<root>/partial/`` and, optionally, a table of small contents.

One level of 256 directories: a second level (``<ab>/<cd>/``, the layout before ``LAYOUT`` 2) made almost
every file of a young store create a directory too, which doubled the kernel's cost per small file. A store
in the old layout is moved over when opened (renames within one filesystem; resumable after a crash, since
the ``LAYOUT`` file is written last).

A file arrives in chunks into a partial file named after its id and its sha256 (so another version of the same
id never continues the wrong partial). When the last chunk is written the partial is fsynced, its sha256 is
checked against the offer, and it is renamed to its content address and the directory fsynced: a crash at
any moment leaves either no file at the address or the complete, verified one, never a partial one. Content
already stored is not stored twice (the partial is simply removed). A partial survives a restart: its size is
the resume offset, and its prefix is hashed again from disk before more bytes are appended. Pieces of at least
``DIRECT_MIN_BYTES`` at aligned offsets are written around the page cache (O_DIRECT, where the filesystem
allows it): filling the page cache with a large file cost several times the CPU of writing it. Small
files that arrive whole are stored in groups (``put_many``): written under temporary names in
``<root>/incoming/`` (new inodes made in one directory stay close on disk: creating them cost ~1.8x less than
in their 256 directories), made durable with one flush for the group, renamed, and the renames made durable
with one more.

The small table (``small_max_bytes`` > 0, the relay): creating a file costs the kernel far more than the bytes
in it, so content of at most ``small_max_bytes`` stored by ``put_many`` becomes a row of the SQLite database
``<root>/small.sqlite`` instead (``store/small_content.py``: WAL, ``synchronous=FULL``), every row of one call
in one transaction committed before the call returns. The caller journals an item only after that (as after a
file's rename), so after a crash an item never names absent content: a row is either committed, complete and
verified, or absent. Chunked transfers and larger content stay files; so does content stored as files before
the table existed, and every method looks in both places (a file first, then a row). Removing a row is not
flushed at once (nor is unlinking a file): a removal lost in a crash leaves content nobody names.

Memory is bounded: hashing and copying read ``READ_BYTES`` at a time, never a whole file (a row, at most
``small_max_bytes``, is read whole). The methods block (disk I/O): callers run them in worker threads, so
one connection serves the table behind a lock; disk trouble in the table is raised as OSError, like the
files'. This module must never rename an unverified file to a content address or commit an unverified row,
never overwrite stored content, and never delete content it was not told to.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import itertools
import mmap
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast
from urllib.parse import quote

from logferry.store.small_content import SmallTable

READ_BYTES = 1 << 20
RECENT_BYTES = 32 << 20  # small contents just stored, kept in memory for the sender that forwards them
WRITTEN_KEPT = 8192  # fingerprints of files just written, kept until the manifests take them
SMALL_DB = "small.sqlite"


def _syncfs() -> Callable[[int], int] | None:
    """libc's syncfs(2) (Linux): makes everything written on one filesystem durable in one call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return cast(Callable[[int], int], fn)


_SYNCFS = _syncfs()


def sha256_of(path: Path, limit: int | None = None) -> hashlib._Hash:
    """The sha256 state after the first ``limit`` bytes of ``path`` (all of it when None), read in pieces."""
    h = hashlib.sha256()
    left = limit
    with open(path, "rb", buffering=0) as f:  # unbuffered: pieces go straight to the hash
        while left is None or left > 0:
            piece = f.read(READ_BYTES if left is None else min(READ_BYTES, left))
            if not piece:
                break
            h.update(piece)
            if left is not None:
                left -= len(piece)
    return h


def fsync_dir(path: Path) -> None:
    """Make a rename or creation in ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # Windows: directory entries are durable with the file
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ContentMismatch(Exception):
    """The bytes received do not hash to the offered sha256."""


DIRECT_ALIGN = 4096  # offsets and lengths of direct writes: a multiple of any disk's logical block
DIRECT_MIN_BYTES = 1 << 20  # smaller pieces go through the page cache (staging them costs more than it saves)


HASH_BESIDE_BYTES = 1 << 20  # a piece this large is hashed beside its write (``Partial.write``)


@functools.cache
def _hasher() -> ThreadPoolExecutor:
    """The threads that hash large pieces while they are written, made on first use (each write waits for
    its own hash, so a partial's pieces are hashed in order)."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="logferry-hash")


def _open_direct(path: Path) -> int:
    """A second descriptor on ``path`` for direct writes, or -1 where there is none (not Linux, tmpfs)."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return -1
    try:
        return os.open(path, os.O_WRONLY | flag)
    except OSError:
        return -1


class Partial:
    """One transfer's partial file, open for appending; its sha256 state covers every byte written so far.

    ``synced`` is how many bytes are known durable (fdatasync'd): a relay forwards only those while the
    file is still arriving. Writes, syncs and close may run in different worker threads: a lock keeps a
    sync or write from touching a descriptor that was closed (and maybe reused) meanwhile.
    """

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self._hash = sha256_of(path, size) if size else hashlib.sha256()
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o640)
        os.ftruncate(self._fd, size)  # a torn last write beyond what we hashed is cut off
        if size:
            _fdatasync(self._fd)  # what a restart kept may still be only in the page cache
        self.synced = size
        self._direct = _open_direct(path)  # -1: this system or filesystem has no direct I/O
        self._buffer: mmap.mmap | None = None  # page-aligned staging for direct writes

    def write(self, offset: int, data: bytes) -> None:
        """Append ``data`` at ``offset`` (the current size). A large piece is hashed in another thread while
        it is written, since both let go of the GIL: a chunk costs the longer of the two, not their sum."""
        hashing = _hasher().submit(self._hash.update, data) if len(data) >= HASH_BESIDE_BYTES else None
        try:
            with self._lock:
                if self._fd < 0:
                    raise ValueError(f"partial {self.path.name} is closed")
                if offset != self.size:
                    raise ValueError(f"write at {offset}, partial {self.path.name} has {self.size} bytes")
                if not self._write_direct(offset, data):
                    view = memoryview(data)
                    while view:
                        n = os.pwrite(self._fd, view, offset)
                        view, offset = view[n:], offset + n
                self.size += len(data)
        except BaseException:
            if hashing is not None:
                hashing.result()
                self._hash = sha256_of(self.path, self.size)  # it took bytes that were not written
            raise
        if hashing is None:
            self._hash.update(data)  # outside the lock: a sync need not wait for hashing
        else:
            hashing.result()

    def _write_direct(self, offset: int, data: bytes) -> bool:
        """Write a large aligned piece around the page cache (O_DIRECT); False if it must go through it.

        Filling the page cache is what large files cost here: on this project's VMs writing 1 GiB through
        it took 0.75-4.3 CPU-seconds, directly about 0.1 (docs/BENCHMARKS.md, "Whole files").
        Durability is unchanged: the fdatasync that makes a partial durable covers both kinds of write.
        A filesystem that refuses a direct write gets every later piece through the page cache.
        """
        if (
            self._direct < 0
            or len(data) < DIRECT_MIN_BYTES
            or offset % DIRECT_ALIGN
            or len(data) % DIRECT_ALIGN
        ):
            return False
        if self._buffer is None or len(self._buffer) < len(data):
            if self._buffer is not None:
                self._buffer.close()
            self._buffer = mmap.mmap(-1, len(data))  # anonymous: page-aligned, as O_DIRECT needs
        n = len(data)
        view = memoryview(self._buffer)[:n]
        done = 0
        try:
            view[:] = data
            while done < n:
                done += os.pwrite(self._direct, view[done:], offset + done)
        except OSError as exc:
            if exc.errno != errno.EINVAL or done:
                raise
            os.close(self._direct)  # this filesystem wants other alignment, or no direct I/O at all
            self._direct = -1
            return False
        finally:
            view.release()
        return True

    @property
    def sha256(self) -> bytes:
        return self._hash.digest()

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._direct >= 0:
                os.close(self._direct)
                self._direct = -1
            if self._buffer is not None:
                self._buffer.close()
                self._buffer = None

    def sync(self) -> None:
        with self._lock:
            os.fsync(self._fd)
            self.synced = self.size

    def sync_data(self) -> int:
        """Make the bytes written so far durable (blocks); the new ``synced``. A closed partial: no-op."""
        with self._lock:
            if self._fd < 0:
                return self.synced
            upto, fd = self.size, os.dup(self._fd)
        try:
            _fdatasync(fd)  # outside the lock: appends go on while the disk catches up
        finally:
            os.close(fd)
        self.synced = max(self.synced, upto)
        return self.synced


LAYOUT_FILE = "LAYOUT"  # holds "2": content at <ab>/<hex>; absent: maybe the old <ab>/<cd>/<hex>
_HEX = frozenset("0123456789abcdef")


def _is_hex(name: str, length: int) -> bool:
    return len(name) == length and set(name) <= _HEX


def _move_to_layout_2(root: Path) -> None:
    """Move content from ``<ab>/<cd>/<hex>`` to ``<ab>/<hex>`` (temporary files are dropped), then write
    ``LAYOUT``. Safe to run again after a crash: what was moved is not found under ``<cd>/`` any more."""
    for top in root.iterdir():
        if not (top.is_dir() and _is_hex(top.name, 2)):
            continue
        for sub in top.iterdir():
            if not (sub.is_dir() and _is_hex(sub.name, 2)):
                continue
            for f in sub.iterdir():
                if _is_hex(f.name, 64):
                    os.replace(f, top / f.name)
                else:
                    f.unlink()  # a temporary name of a put that never finished
            sub.rmdir()
        fsync_dir(top)
    marker = root / LAYOUT_FILE
    marker.write_text("2\n")
    fsync_dir(root)


PARALLEL_WRITES_MIN = 32  # files of one put_many written by two threads from this many on
_WRITERS = ThreadPoolExecutor(2, thread_name_prefix="content-write")  # its threads start on first use


_TEMP_IDS = itertools.count()  # temporary names are unique in the process, whatever runs at once


def _write_temps(writes: list[tuple[str, bytes]]) -> list[tuple[int, int]]:
    """Write each content to its temporary name; fsync each only where there is no syncfs to flush them
    all at once. Returns each file's size and mtime as written (a rename keeps them)."""
    prints: list[tuple[int, int]] = []
    for temp, data in writes:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if not _SYNCFS:
                os.fsync(fd)
            st = os.fstat(fd)
            prints.append((st.st_size, st.st_mtime_ns))
        finally:
            os.close(fd)
    return prints


def _fdatasync(fd: int) -> None:
    getattr(os, "fdatasync", os.fsync)(fd)  # Windows and macOS have no fdatasync


class ContentStore:
    """A content-addressed directory of whole files, with small contents as rows when ``small_max_bytes``
    is above 0 (see the module docstring). ``close()`` when done."""

    def __init__(self, root: Path, small_max_bytes: int = 0) -> None:
        self.root = root
        self._root_str = str(root)
        self.partials = root / "partial"
        self.partials.mkdir(parents=True, exist_ok=True)
        # Small files are written here, then renamed to their address: new inodes made in one directory
        # stay close together on disk, which made creating them ~1.8x cheaper than in 256 directories.
        self.incoming = root / "incoming"
        self._incoming_str = (str(self.incoming / "0"), str(self.incoming / "1"))
        for lane in ("0", "1"):
            (self.incoming / lane).mkdir(parents=True, exist_ok=True)
            for left in (self.incoming / lane).iterdir():
                left.unlink(missing_ok=True)  # a put_many a crash interrupted: nothing names it
        if not (root / LAYOUT_FILE).exists():
            _move_to_layout_2(root)
        self.small_max_bytes = small_max_bytes
        # A table written before stays readable even if rows are no longer made (small_max_bytes 0).
        db = root / SMALL_DB
        self.small = SmallTable(db) if small_max_bytes > 0 or db.exists() else None
        # Rows stored by put_many, until the sender takes them (a relay forwards what it just received);
        # bounded, oldest dropped first: a row not found here is read from the table.
        self._recent: OrderedDict[bytes, bytes] = OrderedDict()
        self._recent_bytes = 0
        self._recent_lock = threading.Lock()
        # Size and mtime of files put_many has just written, until the manifests record them (take_written).
        self._written: OrderedDict[bytes, tuple[int, int]] = OrderedDict()

    def close(self) -> None:
        if self.small is not None:
            self.small.close()

    def path_for(self, sha256: bytes) -> Path:
        """The file address of the content (there is no file there when it is a row: see ``is_small``)."""
        hex_ = sha256.hex()
        return self.root / hex_[:2] / hex_

    def address(self, sha256: bytes) -> str:
        """``path_for`` as a string (no Path built: asked for every file of a group)."""
        hex_ = sha256.hex()
        return f"{self._root_str}{os.sep}{hex_[:2]}{os.sep}{hex_}"

    def has(self, sha256: bytes) -> bool:
        return self.path_for(sha256).is_file() or self.is_small(sha256)

    def is_small(self, sha256: bytes) -> bool:
        """Whether the content is a row of the small table."""
        return self.small is not None and self.small.has(sha256)

    def load_small(self, sha256: bytes) -> bytes | None:
        """The content if it is a row of the small table, else None (read from the table)."""
        return None if self.small is None else self.small.load(sha256)

    def take_recent(self, sha256: bytes) -> bytes | None:
        """For a sender: the content of a row stored moments ago, from memory (once), as ``put_many``
        verified it; None if it is not held there any more (``load_small`` reads the table). Checks of what
        is on disk (``verify``) never use this."""
        with self._recent_lock:
            data = self._recent.pop(sha256, None)
            if data is not None:
                self._recent_bytes -= len(data)
            return data

    def take_written(self, sha256: bytes) -> tuple[int, int] | None:
        """The size and mtime of the file ``put_many`` wrote for this content, taken from the write (once);
        None if it wrote none (held already, a row) or let it go: stat the address then."""
        with self._recent_lock:
            return self._written.pop(sha256, None)

    def _remember(self, rows: dict[bytes, bytes]) -> None:
        with self._recent_lock:
            for sha256, data in rows.items():
                if sha256 not in self._recent:
                    self._recent[sha256] = data
                    self._recent_bytes += len(data)
            while self._recent_bytes > RECENT_BYTES:
                self._recent_bytes -= len(self._recent.popitem(last=False)[1])

    def _forget(self, sha256: bytes) -> None:
        with self._recent_lock:
            data = self._recent.pop(sha256, None)
            if data is not None:
                self._recent_bytes -= len(data)

    def partial_path(self, source: str, seq: int, sha256: bytes) -> Path:
        return self.partials / f"{quote(source, safe='')}.{seq}.{sha256.hex()[:16]}.part"

    def open_partial(self, source: str, seq: int, sha256: bytes, size: int) -> Partial:
        """The partial of this file version, created empty or continued where it stopped.

        A partial longer than the offered size cannot be this version's: it starts over.
        """
        path = self.partial_path(source, seq, sha256)
        have = path.stat().st_size if path.exists() else 0
        return Partial(path, have if have <= size else 0)

    def commit(self, partial: Partial, sha256: bytes) -> Path:
        """Fsync, verify and move the partial to its content address; raises ContentMismatch. If the
        content is held already (a file, or a row: then no file is at the address returned), the partial
        is removed."""
        try:
            partial.sync()
            got = partial.sha256
        finally:
            partial.close()
        if got != sha256:
            partial.path.unlink(missing_ok=True)  # a mix of versions or a damaged partial: start over
            raise ContentMismatch(
                f"received content hashes to {got.hex()[:16]}…, offered {sha256.hex()[:16]}…"
            )
        target = self.path_for(sha256)
        if self.has(sha256):
            partial.path.unlink(missing_ok=True)  # identical content is stored once
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial.path, target)
        fsync_dir(target.parent)
        fsync_dir(self.partials)
        return target

    def put_many(self, items: list[tuple[bytes, bytes]]) -> list[ContentMismatch | None]:
        """Store small files received in one piece, ``(data, sha256)`` each, with amortized durability.

        Each is verified first. Content of at most ``small_max_bytes`` becomes a row: all of them in one
        transaction, committed before this returns. Any other is written under a temporary name in
        ``incoming/``, all are made durable at once, then renamed to their addresses, and the renames made
        durable at once. A crash at any moment leaves no address or row holding anything but its complete,
        verified content. Returns, per item, None (stored, or held already) or the ContentMismatch that
        refused it. Identical content is kept once.
        """
        verdicts: list[ContentMismatch | None] = []
        moves: list[tuple[str, str]] = []  # (temporary name, address): strings, one pair per file
        moving: dict[bytes, None] = {}  # content of this call written under a temporary name, in order
        writes: list[tuple[str, bytes]] = []
        rows: dict[bytes, bytes] = {}
        for data, sha256 in items:
            if hashlib.sha256(data).digest() != sha256:
                verdicts.append(ContentMismatch(f"received content does not hash to {sha256.hex()[:16]}…"))
                continue
            verdicts.append(None)
            target = self.address(sha256)
            if sha256 in rows or sha256 in moving or os.path.isfile(target):
                continue
            if self.small is not None and len(data) <= self.small_max_bytes:
                rows[sha256] = data  # a row held already is kept (INSERT OR IGNORE)
                continue
            # Two writers on a large group, each in a directory of its own (a directory's entries are
            # created one at a time): creating files is the kernel's slowest part here.
            lane = len(moves) % 2 if len(items) >= PARALLEL_WRITES_MIN else 0
            temp = f"{self._incoming_str[lane]}{os.sep}{sha256.hex()}.{next(_TEMP_IDS)}.tmp"
            writes.append((temp, data))
            moves.append((temp, target))
            moving[sha256] = None
        if len(writes) >= PARALLEL_WRITES_MIN:
            evens, odds = _WRITERS.map(_write_temps, [writes[0::2], writes[1::2]])
            prints: list[tuple[int, int]] = [(0, 0)] * len(writes)
            prints[0::2], prints[1::2] = evens, odds
        else:
            prints = _write_temps(writes)
        if rows:
            assert self.small is not None
            self.small.insert(list(rows.items()))
            self._remember(rows)
        if not moves:
            return verdicts
        self._sync_all()  # the content is durable before any address names it
        for temp, target in moves:
            try:
                os.replace(temp, target)
            except FileNotFoundError:  # the first content under its prefix (or its directory was removed)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(temp, target)
        if _SYNCFS:
            self._sync_all()
        else:
            for directory in {os.path.dirname(t) for _, t in moves}:
                fsync_dir(Path(directory))
        with self._recent_lock:
            written = self._written
            written.update(zip(moving, prints, strict=True))  # ``moving`` is in the order of ``writes``
            while len(written) > WRITTEN_KEPT:
                written.popitem(last=False)
        return verdicts

    def _sync_all(self) -> None:
        """One flush for a whole group of small files: syncfs(2) where it exists (Linux)."""
        if not _SYNCFS:
            return
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _SYNCFS(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs of {self.root} failed: {os.strerror(err)}")
        finally:
            os.close(fd)

    def put_file(self, source: Path, sha256: bytes) -> Path:
        """Copy a local file in (through a partial: temp name, fsync, verify, rename); for tools and tests."""
        size = source.stat().st_size
        partial = Partial(self.partials / f"put.{sha256.hex()[:16]}.part", 0)
        with source.open("rb") as f:
            while piece := f.read(READ_BYTES):
                partial.write(partial.size, piece)
        if partial.size != size:
            partial.close()
            raise ContentMismatch(f"{source} changed while it was copied")
        return self.commit(partial, sha256)

    def verify(self, sha256: bytes) -> bool:
        """True if the stored content exists and still hashes to its address."""
        path = self.path_for(sha256)
        if path.is_file():
            return sha256_of(path).digest() == sha256
        data = self.load_small(sha256)
        return data is not None and hashlib.sha256(data).digest() == sha256

    def quarantine(self, sha256: bytes) -> None:
        """Move damaged content aside (``<root>/damaged/``) so a good copy can take its address."""
        self._forget(sha256)
        path = self.path_for(sha256)
        aside = self.root / "damaged"
        if path.exists():
            aside.mkdir(exist_ok=True)
            os.replace(path, aside / path.name)
        data = self.load_small(sha256)
        if data is not None:
            assert self.small is not None
            aside.mkdir(exist_ok=True)
            (aside / path.name).write_bytes(data)  # kept for a look, before the row goes
            self.small.delete(sha256)

    def remove(self, sha256: bytes) -> None:
        self._forget(sha256)
        self.path_for(sha256).unlink(missing_ok=True)
        if self.small is not None:
            self.small.delete(sha256)

    def read(self, sha256: bytes, offset: int = 0, chunk_bytes: int = READ_BYTES) -> Iterator[bytes]:
        """The stored content from ``offset``, in pieces of at most ``chunk_bytes``; raises
        FileNotFoundError if it is not stored."""
        path = self.path_for(sha256)
        try:
            f = path.open("rb")
        except FileNotFoundError:
            data = self.load_small(sha256)
            if data is None:
                raise
            view = memoryview(data)
            for start in range(offset, len(data), max(1, chunk_bytes)):
                yield bytes(view[start : start + chunk_bytes])
            return
        with f:
            f.seek(offset)
            while piece := f.read(chunk_bytes):
                yield piece
