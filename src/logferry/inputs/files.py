"""Watch folders and queue every complete file, whole, for shipping (``[[agent.inputs]] type = "files"``).

Change events come from watchfiles (inotify, FSEvents, ReadDirectoryChangesW through the Rust ``notify``
crate) so a new file is seen at once; a full listing every ``rescan_s`` catches what events miss (network
mounts, an overflowed event queue). Each folder the patterns match is watched itself, not its subfolders:
the scan lists only a folder's own files, and a watch over a tree walks all of it first. While a scan
reads a large group of files nothing is watched (inotify reports every open: our own reads would wake the
watcher once per file); a folder whose mtime changed since it was listed is scanned again once watched.

A file is *complete* when its size and mtime stayed the same for ``stable_s``; a file whose mtime is
already older than that when it appears was renamed (or copied with its times) into the folder and counts
as complete at once. A complete file is hashed (sha256, read in pieces: bounded memory, in a worker
thread) and queued with its manifest in the agent's file queue, which gives it its seq; the queue skips a
version it has already.

A file of at most ``WHOLE_MAX_BYTES`` (one frame on the wire) is read whole to hash it, and what was hashed
is given to the queue, which hands it to the sender while it fits in memory: the version shipped is the
version queued, even if the file changes on disk meanwhile (the new version is queued as a new item).

This module must never queue a file that is still growing as complete, never read a larger file into
memory, and never touch a file's content except to hash it (shipping reads it again, chunk by chunk).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import glob
import hashlib
import logging
import os
import re
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from logferry.config.schema import FilesInput
from logferry.errors import StoreError
from logferry.store.content import sha256_of
from logferry.store.file_queue import FileQueueStore
from logferry.transport.file_sender import WHOLE_MAX_BYTES

log = logging.getLogger("logferry.inputs.files")

QUEUE_BATCH = 512  # complete files hashed and queued per transaction
PAUSE_WATCH_READS = 64  # a scan that reads at least this many files in a group stops watching meanwhile
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows would translate line ends without it


@dataclass(slots=True)
class _Seen:
    size: int
    mtime_ns: int
    since: float  # monotonic time when this (size, mtime) was first seen


class FolderWatch:
    """One ``files`` input: folders → complete files → the file queue."""

    def __init__(self, spec: FilesInput, queue: FileQueueStore, notify: Callable[[], None]) -> None:
        self.spec = spec
        self.queue = queue
        self.notify = notify  # called when a file was queued: the sender wakes
        self._seen: dict[str, _Seen] = {}
        self._dirty = asyncio.Event()
        self.queued = 0
        self._unreadable: dict[str, tuple[int, int]] = {}  # path -> the version we warned about
        self._wanted = _name_filter(spec.pattern, spec.exclude)
        self._said_missing = False
        self._watcher: asyncio.Task[None] | None = None
        self._watching: tuple[str, ...] = ()  # the folders self._watcher watches
        self._stop_watch = asyncio.Event()
        self._paused: dict[str, int | None] | None = None  # folder -> mtime when listed, while not watched

    def folders(self) -> list[str]:
        found: set[str] = set()
        for pattern in self.spec.paths:
            matches = glob.glob(os.path.expanduser(pattern), recursive=True)
            found.update(p for p in matches if os.path.isdir(p))
        return sorted(found)

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self._scan()
                except StoreError as exc:
                    # The queue cannot take files now (its disk is full, say): the files stay where they
                    # are, and the next scan finds them again as new. Records keep flowing meanwhile.
                    log.error("cannot queue files from %s: %s; trying again in %.0f s",
                              ", ".join(self.spec.paths), exc, self.spec.rescan_s)  # fmt: skip
                    await self._resume_watching()
                    self._dirty.clear()
                    await asyncio.sleep(self.spec.rescan_s)
                    continue
                await self._resume_watching()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dirty.wait(), self._tick())
                self._dirty.clear()
        finally:
            await self._stop_watching()

    def _tick(self) -> float:
        # While a file waits to become stable, look again soon; otherwise rely on events and the rescan.
        if self._seen:
            return max(0.05, min(self.spec.stable_s / 4, self.spec.rescan_s))
        return self.spec.rescan_s

    def _say_folders(self, folders: list[str]) -> None:
        """Say once that no folder matches the patterns yet (they may come later: a mount, a USB disk),
        and once when some do again."""
        if not folders and not self._said_missing:
            log.warning("files input: no folder matches %s yet; looking again every %g s",
                        ", ".join(self.spec.paths), self.spec.rescan_s)  # fmt: skip
            self._said_missing = True
        elif folders and self._said_missing:
            log.info("files input: now watching %s", ", ".join(folders))
            self._said_missing = False

    async def _watch_folders(self, folders: list[str]) -> None:
        """Watch these folders (from now on a change in them wakes the next scan): start the watcher, or
        start it again if it watches others or ended."""
        wanted = tuple(folders)
        if self._watcher is not None and not self._watcher.done() and wanted == self._watching:
            return
        await self._stop_watching()
        if not wanted:
            return
        stop = asyncio.Event()
        self._watcher = asyncio.create_task(self._watch(wanted, stop))
        self._watching, self._stop_watch = wanted, stop
        await asyncio.sleep(0)  # the watcher adds its inotify watches before this returns

    def _pause_watching(self, listed: dict[str, int | None]) -> None:
        """Stop watching while this scan reads many files: each of our own opens would wake the watcher
        (inotify reports opens, and watchfiles asks for them): ~8 µs of CPU per file, ~15 % of the agent's
        work on small files. ``listed``: each folder's mtime when it was listed (see ``_resume_watching``)."""
        if self._watcher is not None and not self._watcher.done():
            self._stop_watch.set()  # its thread returns within a step (20 ms); nothing waits for it
            self._watcher, self._watching = None, ()
            self._paused = listed

    async def _resume_watching(self) -> None:
        """Watch again after a paused scan. A folder whose mtime changed since it was listed had files
        added, removed or renamed in it meanwhile: the next scan comes at once. A file changed in place
        while nothing watched is found by the next full listing (``rescan_s``)."""
        listed, self._paused = self._paused, None
        if listed is None:
            return
        await self._watch_folders(list(listed))
        now = await asyncio.to_thread(lambda: {f: _mtime_ns(f) for f in listed})
        if now != listed:
            self._dirty.set()

    async def _stop_watching(self) -> None:
        watcher, self._watcher, self._watching = self._watcher, None, ()
        if watcher is None:
            return
        self._stop_watch.set()  # ends the watch loop within a step, so the cancel below does not wait long
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    async def _watch(self, folders: tuple[str, ...], stop: asyncio.Event) -> None:
        """Mark the folders dirty on any change event in them; the scan decides what it means. Each folder
        the patterns match is watched itself, not its subfolders: the scan looks only at the files directly
        in a folder, and a watch over a whole tree walks it first (a stat per entry)."""
        try:
            async for _changes in watchfiles.awatch(
                *folders, debounce=50, step=20, recursive=False, stop_event=stop
            ):
                self._dirty.set()
        except (OSError, RuntimeError) as exc:
            log.warning("watching %s failed (%s); listing every %.0f s instead", ", ".join(folders), exc,
                        self.spec.rescan_s)  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.spec.rescan_s)  # then the next scan tries again

    async def _scan(self) -> None:
        now = time.monotonic()
        folders = self.folders()
        self._say_folders(folders)
        await self._watch_folders(folders)  # before the listing: what changes after it wakes the next scan
        names: list[str] = []
        listed: dict[str, int | None] = {}
        for folder in folders:
            listed[folder], found = await asyncio.to_thread(_files_in, folder, self._wanted)
            names += found
        present = set(names)
        for gone in set(self._seen) - present:
            del self._seen[gone]
        for gone in set(self._unreadable) - present:
            del self._unreadable[gone]
        # A group at a time: stat, then one query for the versions the queue has already (not one per
        # file), then hash; the first group is queued before the rest is even looked at. The next group
        # is looked at and hashed while the previous one commits (its flush): seqs still go in order.
        adding: asyncio.Task[None] | None = None
        try:
            for i in range(0, len(names), QUEUE_BATCH):
                listing = await asyncio.to_thread(_regular_files, names[i : i + QUEUE_BATCH])
                fresh = [
                    v
                    for v in listing
                    if (seen := self._seen.get(v[0])) is None or (seen.size, seen.mtime_ns) != v[1:]
                ]
                known = await self.queue.known_versions(fresh) if fresh else set()
                group = [v for v in listing if self._consider(*v, now, known)]
                if not group:
                    continue
                if len(group) >= PAUSE_WATCH_READS:
                    self._pause_watching(listed)
                failed: dict[str, OSError] = {}
                hashed, contents = await asyncio.to_thread(_hash_unchanged, group, failed)
                self._said_unreadable(group, failed)
                if adding is not None:
                    await adding
                adding = asyncio.create_task(self._add(hashed, contents)) if hashed else None
            if adding is not None:
                await adding
        finally:
            if adding is not None and not adding.done():
                adding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await adding

    def _said_unreadable(self, group: list[tuple[str, int, int]], failed: dict[str, OSError]) -> None:
        """Warn once per version of a file that cannot be read (no permission, say): every scan tries it
        again, quietly, until it is read or changes."""
        for path, size, mtime_ns in group:
            exc = failed.get(path)
            if exc is None:
                self._unreadable.pop(path, None)
            elif self._unreadable.get(path) != (size, mtime_ns):
                self._unreadable[path] = (size, mtime_ns)
                log.warning("cannot read %s to queue it (%s); trying again at every scan (said once)", path,
                            exc.strerror or exc)  # fmt: skip
            else:
                log.debug("still cannot read %s (%s)", path, exc.strerror or exc)

    def _consider(
        self, path: str, size: int, mtime_ns: int, now: float, known: set[tuple[str, int, int]]
    ) -> bool:
        """Whether the file is complete now (and not queued already)."""
        seen = self._seen.get(path)
        if seen is None or (seen.size, seen.mtime_ns) != (size, mtime_ns):
            if (path, size, mtime_ns) in known:
                self._seen.pop(path, None)
                return False
            renamed_in = seen is None and time.time_ns() - mtime_ns >= self.spec.stable_s * 1e9
            if not renamed_in:
                self._seen[path] = _Seen(size, mtime_ns, now)
                return False
        elif now - seen.since < self.spec.stable_s:
            return False
        self._seen.pop(path, None)
        return True

    async def _add(self, hashed: list[tuple[str, int, int, bytes]], contents: list[bytes | None]) -> None:
        """Queue hashed complete files in one transaction (with what was hashed, for the small ones)."""
        added = await self.queue.add_many(hashed, contents)
        if not added:
            return
        self.queued += len(added)
        self.notify()
        for (path, size, _m, digest), seq in zip(hashed, added, strict=True):
            if seq is not None:
                log.debug("queued file %s (%d bytes, sha256 %s…) as %s:%d", path, size, digest.hex()[:16],
                          self.queue.source, seq)  # fmt: skip
        n = sum(1 for seq in added if seq is not None)
        log.info("queued %d complete file%s (%s%s)", n, "" if n == 1 else "s", hashed[0][0],
                 f" and {len(hashed) - 1} more" if len(hashed) > 1 else "")  # fmt: skip


def _name_filter(pattern: str, exclude: list[str]) -> Callable[[str], bool]:
    """Whether a file name is wanted: it matches ``pattern`` and none of ``exclude`` (globs, compared as
    ``fnmatch`` does: case-insensitively where the platform is). Compiled once: every name of every scan
    goes through it."""
    want = re.compile(fnmatch.translate(os.path.normcase(pattern))).match
    skip = re.compile("|".join(fnmatch.translate(os.path.normcase(x)) for x in exclude) or "(?!)").match

    def wanted(name: str) -> bool:
        name = os.path.normcase(name)
        return want(name) is not None and skip(name) is None

    return wanted


def _regular_files(paths: list[str]) -> list[tuple[str, int, int]]:
    """``(path, size, mtime_ns)`` of those of ``paths`` that are regular files now (blocks)."""
    out: list[tuple[str, int, int]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.append((path, st.st_size, st.st_mtime_ns))
    return out


def _hash_unchanged(
    files: list[tuple[str, int, int]], unreadable: dict[str, OSError] | None = None
) -> tuple[list[tuple[str, int, int, bytes]], list[bytes | None]]:
    """Each file's sha256, leaving out those that changed or vanished meanwhile, and beside it the content
    that was hashed for a file of at most ``WHOLE_MAX_BYTES`` (larger ones are read in pieces) (blocks).
    Files that could not be read are left out too, with why, in ``unreadable``."""
    out: list[tuple[str, int, int, bytes]] = []
    contents: list[bytes | None] = []
    for path, size, mtime_ns in files:
        data: bytes | None = None
        try:
            if size <= WHOLE_MAX_BYTES:  # one read, and the version read is the one checked below
                fd = os.open(path, os.O_RDONLY | _O_BINARY)
                try:
                    data = os.read(fd, size + 1)
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
                digest = hashlib.sha256(data).digest()
            else:
                digest = sha256_of(Path(path)).digest()
                st = os.stat(path)
        except OSError as exc:
            if unreadable is not None:
                unreadable[path] = exc
            continue
        if (st.st_size, st.st_mtime_ns) == (size, mtime_ns) and (data is None or len(data) == size):
            out.append((path, size, mtime_ns, digest))
            contents.append(data)
        # else it changed while we hashed it: the next scan sees the new version
    return out, contents


def _files_in(folder: str, wanted: Callable[[str], bool]) -> tuple[int | None, list[str]]:
    """The folder's mtime (None if it is gone), then the paths of the wanted files directly in it, symlinks
    left out (blocks; no stat where the directory entry says what it is)."""
    mtime = _mtime_ns(folder)
    out: list[str] = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        out.extend(e.path for e in entries if e.is_file(follow_symlinks=False) and wanted(e.name))
    return mtime, out


def _mtime_ns(folder: str) -> int | None:
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return None


def free_name(folder: Path, name: str) -> Path:
    """``folder / name``, or, if that exists, the first of ``stem.1.suffix``, ``stem.2.suffix``, … that does
    not: a device that writes ``report.csv`` every hour keeps every shipped one."""
    candidate = folder / name
    stem, dot, suffix = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
    n = 0
    while os.path.lexists(candidate):
        n += 1
        candidate = folder / f"{stem}.{n}{dot}{suffix}"
    return candidate


def after_ack(spec: FilesInput, path: Path) -> None:
    """What the input does with a file the relay acknowledged: keep it, delete it, or move it (beside, never
    over, a file of the same name moved there before: ``report.csv``, then ``report.1.csv``, …)."""
    try:
        if spec.move_to:
            target = Path(spec.move_to)
            target.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(free_name(target, path.name)))
        elif spec.delete_after:
            path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("shipped %s but could not %s it: %s", path, "move" if spec.move_to else "delete", exc)
