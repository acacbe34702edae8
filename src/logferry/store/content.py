"""Whole files on disk, content-addressed: ``<root>/<ab>/<cd>/<sha256 hex>``, plus the partial files of
transfers in progress under ``<root>/partial/``.

A file arrives in chunks into a partial file named after its id and its sha256 (so another version of the same
id never continues the wrong partial). When the last chunk is written the partial is fsynced, its sha256 is
checked against the offer, and it is renamed to its content address and the directory fsynced: a crash at
any moment leaves either no file at the address or the complete, verified one, never a partial one. Content
already stored is not stored twice (the partial is simply removed). A partial survives a restart: its size is
the resume offset, and its prefix is hashed again from disk before more bytes are appended. Small files that
arrive whole are stored in groups (``put_many``): written under temporary names, made durable with one flush
for the group, renamed, and the renames made durable with one more.

Memory is bounded: hashing and copying read ``READ_BYTES`` at a time, never a whole file. The methods block
(disk I/O): callers run them in a worker thread. This module must never rename an unverified file to a
content address, never overwrite stored content, and never delete content it was not told to.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast
from urllib.parse import quote

READ_BYTES = 1 << 20


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
    with path.open("rb") as f:
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

    def write(self, offset: int, data: bytes) -> None:
        with self._lock:
            if self._fd < 0:
                raise ValueError(f"partial {self.path.name} is closed")
            if offset != self.size:
                raise ValueError(f"write at {offset}, partial {self.path.name} has {self.size} bytes")
            view = memoryview(data)
            while view:
                n = os.pwrite(self._fd, view, offset)
                view, offset = view[n:], offset + n
            self.size += len(data)
        self._hash.update(data)  # outside the lock: a sync need not wait for hashing

    @property
    def sha256(self) -> bytes:
        return self._hash.digest()

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

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


def _fdatasync(fd: int) -> None:
    getattr(os, "fdatasync", os.fsync)(fd)  # Windows and macOS have no fdatasync


class ContentStore:
    """A content-addressed directory of whole files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.partials = root / "partial"
        self.partials.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: bytes) -> Path:
        hex_ = sha256.hex()
        return self.root / hex_[:2] / hex_[2:4] / hex_

    def has(self, sha256: bytes) -> bool:
        return self.path_for(sha256).is_file()

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
        """Fsync, verify and move the partial to its content address; raises ContentMismatch."""
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
        if target.is_file():
            partial.path.unlink(missing_ok=True)  # identical content is stored once
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial.path, target)
        fsync_dir(target.parent)
        fsync_dir(self.partials)
        return target

    def put_many(self, items: list[tuple[bytes, bytes]]) -> list[ContentMismatch | None]:
        """Store small files received in one piece, ``(data, sha256)`` each, with amortized durability: each
        is verified and written under a temporary name in its directory, all are made durable at once, then
        renamed to their addresses, and the renames made durable at once. A crash at any moment leaves no
        address holding anything but its complete, verified content. Returns, per item, None (stored, or
        held already) or the ContentMismatch that refused it. Identical content is kept once.
        """
        verdicts: list[ContentMismatch | None] = []
        moves: list[tuple[Path, Path]] = []
        for data, sha256 in items:
            target = self.path_for(sha256)
            if hashlib.sha256(data).digest() != sha256:
                verdicts.append(ContentMismatch(f"received content does not hash to {sha256.hex()[:16]}…"))
                continue
            verdicts.append(None)
            if target.is_file() or any(t == target for _, t in moves):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.parent / f".{target.name}.tmp"  # hidden from content listings
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if not _SYNCFS:
                    os.fsync(fd)
            finally:
                os.close(fd)
            moves.append((temp, target))
        if not moves:
            return verdicts
        self._sync_all()  # the content is durable before any address names it
        for temp, target in moves:
            os.replace(temp, target)
        if _SYNCFS:
            self._sync_all()
        else:
            for directory in {t.parent for _, t in moves}:
                fsync_dir(directory)
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
        return path.is_file() and sha256_of(path).digest() == sha256

    def quarantine(self, sha256: bytes) -> None:
        """Move damaged content aside (``<root>/damaged/``) so a good copy can take its address."""
        path = self.path_for(sha256)
        if path.exists():
            aside = self.root / "damaged"
            aside.mkdir(exist_ok=True)
            os.replace(path, aside / path.name)

    def remove(self, sha256: bytes) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def read(self, sha256: bytes, offset: int = 0, chunk_bytes: int = READ_BYTES) -> Iterator[bytes]:
        """The stored content from ``offset``, in pieces of at most ``chunk_bytes``."""
        with self.path_for(sha256).open("rb") as f:
            f.seek(offset)
            while piece := f.read(chunk_bytes):
                yield piece
