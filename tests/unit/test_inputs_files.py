"""The files input's hashing step on real files: a small file is read whole and what was hashed goes with
it (the sender ships that version from memory), a larger one is hashed in pieces, and a file that changed
or vanished while it was hashed is left for the next scan. A queue that cannot take files (a full disk)
is logged and tried again; the watch goes on. A file it may not read is said once per version."""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logferry.config.schema import FilesInput
from logferry.errors import StoreError
from logferry.inputs.files import (
    PAUSE_WATCH_READS,
    QUEUE_BATCH,
    FolderWatch,
    _hash_unchanged,
    _name_filter,
    free_name,
)
from logferry.store.file_queue import FileQueueStore, FileState
from logferry.transport.file_sender import WHOLE_MAX_BYTES


def _version(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


def test_small_files_come_with_what_was_hashed_and_large_ones_without(tmp_path: Path) -> None:
    small, large, empty = tmp_path / "small", tmp_path / "large", tmp_path / "empty"
    small.write_bytes(b"s" * 4096)
    large.write_bytes(os.urandom(WHOLE_MAX_BYTES + 1))
    empty.write_bytes(b"")
    hashed, contents = _hash_unchanged([_version(small), _version(large), _version(empty)])
    assert [h[0] for h in hashed] == [str(small), str(large), str(empty)]
    for (path, size, _mtime, digest), data in zip(hashed, contents, strict=True):
        content = Path(path).read_bytes()
        assert size == len(content) and digest == hashlib.sha256(content).digest()
        assert data == (None if path == str(large) else content)


def test_a_file_that_changed_or_vanished_is_left_for_the_next_scan(tmp_path: Path) -> None:
    grew, gone, kept = tmp_path / "grew", tmp_path / "gone", tmp_path / "kept"
    for p in (grew, gone, kept):
        p.write_bytes(b"1234")
    listed = [_version(grew), _version(gone), _version(kept)]
    with grew.open("ab") as f:
        f.write(b"5678")  # longer than listed: read whole, it is not the listed version
    gone.unlink()
    hashed, contents = _hash_unchanged(listed)
    assert [h[0] for h in hashed] == [str(kept)] and contents == [b"1234"]


class FullOnce(FileQueueStore):
    """The real queue, whose first ``add_many`` fails as a full disk would."""

    failed = False

    async def add_many(
        self, files: list[tuple[str, int, int, bytes]], contents: Sequence[bytes | None] = ()
    ) -> list[int | None]:
        if not self.failed:
            self.failed = True
            raise StoreError("files store queue.db: database or disk is full")
        return await super().add_many(files, contents)


async def test_a_queue_that_cannot_take_files_is_logged_and_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    for name in ("a.log", "b.log"):
        (folder / name).write_bytes(name.encode() * 100)
        os.utime(folder / name, (time.time() - 3600, time.time() - 3600))  # complete at once
    queue = await FullOnce.open(tmp_path / "queue.db", "dev/files")
    spec = FilesInput(paths=[str(folder)], stable_s=0.1, rescan_s=0.1)
    watch = FolderWatch(spec, queue, lambda: None)
    running = asyncio.create_task(watch.run())
    try:
        for _ in range(100):
            if (await queue.counts()).get(FileState.PENDING, 0) == 2:
                break
            await asyncio.sleep(0.05)
        assert running.done() is False, "the watch must keep going"
        assert (await queue.counts()).get(FileState.PENDING, 0) == 2 and watch.queued == 2
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await queue.close()
    [record] = [r for r in caplog.records if "cannot queue files" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert (
        f"cannot queue files from {folder}: files store queue.db: database or disk is full"
        in record.getMessage()
    )


async def test_folders_that_do_not_exist_yet_are_said_once_and_watched_once_they_come(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="logferry.inputs.files")
    pattern = str(tmp_path / "mnt" / "*" / "out")
    queue = await FileQueueStore.open(tmp_path / "queue.db", "dev/files")
    watch = FolderWatch(FilesInput(paths=[pattern], stable_s=0.1, rescan_s=0.05), queue, lambda: None)
    running = asyncio.create_task(watch.run())
    try:
        await asyncio.sleep(0.5)  # ten rescans find nothing
        folder = tmp_path / "mnt" / "usb" / "out"
        folder.mkdir(parents=True)
        (folder / "a.log").write_bytes(b"a" * 100)
        os.utime(folder / "a.log", (time.time() - 3600, time.time() - 3600))
        for _ in range(100):
            if watch.queued:
                break
            await asyncio.sleep(0.05)
        assert watch.queued == 1 and not running.done()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await queue.close()
    said = [r.getMessage() for r in caplog.records if r.name == "logferry.inputs.files"]
    missing = [m for m in said if "no folder matches" in m]
    assert missing == [f"files input: no folder matches {pattern} yet; looking again every 0.05 s"]
    assert f"files input: now watching {folder}" in said


_UNREADABLE_WATCH = """
import asyncio, logging, sys
from logferry.config.schema import FilesInput
from logferry.inputs.files import FolderWatch
from logferry.store.file_queue import FileQueueStore

async def main(folder, db, seconds):
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(levelname)s %(message)s")
    queue = await FileQueueStore.open(db, "dev/files")
    watch = FolderWatch(FilesInput(paths=[folder], stable_s=0.05, rescan_s=0.05), queue, lambda: None)
    task = asyncio.create_task(watch.run())
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    print("QUEUED", watch.queued)
    await queue.close()

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


def test_a_file_it_may_not_read_is_warned_about_once_per_version(tmp_path: Path) -> None:
    """A real permission error: the watch runs in a process that may not read a file in its folder (as root:
    without the capabilities that bypass file permissions, util-linux ``setpriv``; the file belongs to
    another user, mode 0600). ~30 scans in 1.5 s say so once, and once more after the file changed; the
    readable file beside it is queued."""
    folder = tmp_path / "out"
    folder.mkdir()
    secret, fine = folder / "secret.log", folder / "ok.log"
    for path in (secret, fine):
        path.write_bytes(b"x" * 100)
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "this test needs util-linux's setpriv when run as root (apt-get install util-linux)"
        os.chown(secret, 65534, 65534)
        secret.chmod(0o600)
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    else:
        secret.chmod(0o000)  # ours: unreadable to us too
    child = subprocess.Popen(
        [*prefix, sys.executable, "-c", _UNREADABLE_WATCH, str(folder), str(tmp_path / "queue.db"), "1.5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    time.sleep(0.8)
    secret.write_bytes(b"y" * 200)  # a new version, as unreadable as the first
    os.utime(secret, (time.time() - 3600, time.time() - 3500))
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0, out
    warnings = [line for line in out.splitlines() if line.startswith("WARNING cannot read")]
    assert len(warnings) == 2, out
    assert all(f"cannot read {secret} to queue it (Permission denied)" in w for w in warnings)
    assert "QUEUED 1" in out


class Recording(FileQueueStore):
    """The real queue, noting when the watch asks which versions it has and when it queues a group."""

    events: list[tuple[str, int]]

    async def known_versions(self, versions: list[tuple[str, int, int]]) -> set[tuple[str, int, int]]:
        self.events.append(("known", len(versions)))
        return await super().known_versions(versions)

    async def add_many(
        self, files: list[tuple[str, int, int, bytes]], contents: Sequence[bytes | None] = ()
    ) -> list[int | None]:
        self.events.append(("add", len(files)))
        return await super().add_many(files, contents)


async def test_a_large_folder_ships_its_first_files_before_the_rest_is_looked_at(tmp_path: Path) -> None:
    # A folder of a million files must not wait for a million stats before its first file leaves.
    folder = tmp_path / "big"
    folder.mkdir()
    old = time.time() - 3600
    count = 3 * QUEUE_BATCH + 7
    for i in range(count):
        path = folder / f"f{i:05d}.log"
        path.write_bytes(b"%d" % i)
        os.utime(path, (old, old))
    queue = await Recording.open(tmp_path / "queue.db", "dev/files")
    queue.events = []
    watch = FolderWatch(FilesInput(paths=[str(folder)], stable_s=0.1, rescan_s=60), queue, lambda: None)
    running = asyncio.create_task(watch.run())
    try:
        for _ in range(200):
            if (await queue.counts()).get(FileState.PENDING, 0) == count:
                break
            await asyncio.sleep(0.05)
        assert (await queue.counts()).get(FileState.PENDING, 0) == count
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await queue.close()
    asked = [n for kind, n in queue.events if kind == "known"]
    assert asked == [QUEUE_BATCH, QUEUE_BATCH, QUEUE_BATCH, 7]  # a group at a time, never all at once
    first_add = queue.events.index(("add", QUEUE_BATCH))
    assert first_add < len(queue.events) - 1 - queue.events[::-1].index(("known", QUEUE_BATCH))


@given(
    name=st.text(alphabet="ab.*?[]!-Z", max_size=6),
    pattern=st.text(alphabet="ab.*?[]!-Z", min_size=1, max_size=5),
    exclude=st.lists(st.text(alphabet="ab.*?[]!-Z", min_size=1, max_size=4), max_size=3),
)
def test_the_compiled_name_filter_answers_as_fnmatch(name: str, pattern: str, exclude: list[str]) -> None:
    expected = fnmatch.fnmatch(name, pattern) and not any(fnmatch.fnmatch(name, x) for x in exclude)
    assert _name_filter(pattern, exclude)(name) == expected


def _old_files(folder: Path, count: int, prefix: str = "f") -> None:
    old = time.time() - 3600
    for i in range(count):
        path = folder / f"{prefix}{i:05d}.log"
        path.write_bytes(b"%d" % i)
        os.utime(path, (old, old))  # complete at once


async def _queued(queue: FileQueueStore, count: int, within_s: float) -> int:
    deadline = time.monotonic() + within_s
    while True:
        pending = (await queue.counts()).get(FileState.PENDING, 0)
        if pending >= count or time.monotonic() > deadline:
            return pending
        await asyncio.sleep(0.02)


class ArrivesWhileRead(FileQueueStore):
    """The real queue; while the watch queues its first group (not watching: it reads many files), a
    file arrives in the folder."""

    arrive: Path

    async def add_many(
        self, files: list[tuple[str, int, int, bytes]], contents: Sequence[bytes | None] = ()
    ) -> list[int | None]:
        if not self.arrive.exists():
            _old_files(self.arrive.parent, 1, prefix=self.arrive.stem)
            self.arrive = self.arrive.parent / f"{self.arrive.stem}00000.log"
        return await super().add_many(files, contents)


async def test_what_arrives_while_a_large_group_is_read_is_queued_at_once(tmp_path: Path) -> None:
    """A scan stops watching while it reads a group of PAUSE_WATCH_READS files or more (its own opens would
    wake the watcher for each file); a file that arrived meanwhile is queued at once all the same (the
    folder's mtime changed since it was listed), not at the next full listing a minute later."""
    folder = tmp_path / "big"
    folder.mkdir()
    _old_files(folder, PAUSE_WATCH_READS)
    queue = await ArrivesWhileRead.open(tmp_path / "queue.db", "dev/files")
    queue.arrive = folder / "late"
    watch = FolderWatch(FilesInput(paths=[str(folder)], stable_s=0.1, rescan_s=60), queue, lambda: None)
    running = asyncio.create_task(watch.run())
    try:
        assert await _queued(queue, PAUSE_WATCH_READS + 1, within_s=5) == PAUSE_WATCH_READS + 1
        # Watched again: a file that comes now is queued by its change events.
        _old_files(folder, 1, prefix="later")
        assert await _queued(queue, PAUSE_WATCH_READS + 2, within_s=5) == PAUSE_WATCH_READS + 2
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await queue.close()


async def test_a_folder_that_comes_to_match_is_watched_from_the_scan_that_finds_it(tmp_path: Path) -> None:
    """The watch covers the folders the patterns match, each itself (the scan lists only a folder's own
    files); a new folder that matches, made in a watched one, is watched from the scan its creation woke:
    a file written into it then is queued at once, not at the next full listing a minute later."""
    root = tmp_path / "sites"
    (root / "a").mkdir(parents=True)
    queue = await FileQueueStore.open(tmp_path / "queue.db", "dev/files")
    spec = FilesInput(paths=[str(root / "**")], stable_s=0.1, rescan_s=60)
    watch = FolderWatch(spec, queue, lambda: None)
    running = asyncio.create_task(watch.run())
    try:
        await asyncio.sleep(0.3)
        _old_files(root / "a", 1)
        assert await _queued(queue, 1, within_s=5) == 1
        (root / "b").mkdir()
        await asyncio.sleep(0.5)  # its creation, an event in the watched sites/, woke a scan
        _old_files(root / "b", 1, prefix="g")
        assert await _queued(queue, 2, within_s=5) == 2
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await queue.close()


def test_a_moved_file_never_replaces_one_moved_before(tmp_path: Path) -> None:
    names = ["report.csv", "report.csv", "report.csv", "noext", "noext", ".hidden", ".hidden", "a.tar.gz",
             "a.tar.gz"]  # fmt: skip
    got = []
    for name in names:
        path = free_name(tmp_path, name)
        path.write_bytes(b"x")
        got.append(path.name)
    assert got == ["report.csv", "report.1.csv", "report.2.csv", "noext", "noext.1", ".hidden", ".hidden.1",
                   "a.tar.gz", "a.tar.1.gz"]  # fmt: skip
