"""A chunked file the sender trusts to be its manifest's version (same size and mtime as when the queue
hashed it) is sent without being hashed again; the server's check of every byte still catches a rewrite
that kept both: it refuses the file for now, the next attempt hashes it while sending, and it is refused
for good as a changed file. A file whose size or mtime moved is hashed as it goes and refused the same way.
Real loopback socket, real server loop, intake and content store."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import types
from pathlib import Path
from typing import BinaryIO

import pytest

from logferry.protocol.messages import PeerRole
from logferry.store.content import ContentStore
from logferry.transport import file_sender
from logferry.transport.file_sender import FileSender, OutgoingFile
from logferry.transport.sender import SenderConfig
from tests.unit.file_server import Ledger, Queue, file_server, ship_all

SOURCE = "dev"
CHUNK = 64 << 10
SIZE = 5 * CHUNK + 123  # several chunks, the last one short
WHOLE_MAX = 16 << 10  # smaller than the files: each travels in chunks


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _content(seed: int) -> bytes:
    return (hashlib.sha256(str(seed).encode()).digest() * (SIZE // 32 + 1))[:SIZE]


def _queued(folder: Path, seq: int, data: bytes) -> OutgoingFile:
    """Write ``data`` and describe it as the agent's queue does once it hashed it."""
    path = folder / f"f{seq}"
    path.write_bytes(data)
    st = path.stat()
    return OutgoingFile(f"{SOURCE}/files", seq, str(path), st.st_size, st.st_mtime_ns,
                        hashlib.sha256(data).digest(), str(path))  # fmt: skip


async def _ship(tmp_path: Path, files: list[OutgoingFile]) -> tuple[Queue, FileSender, Ledger, ContentStore]:
    queue = Queue(files)
    async with file_server(tmp_path / "store") as server:
        config = SenderConfig("127.0.0.1", server.port, SOURCE, PeerRole.AGENT, None, reconnect_min_s=0.05)
        sender = FileSender(config, queue, chunk_bytes=CHUNK, whole_max_bytes=WHOLE_MAX)
        await ship_all(sender, queue)
    return queue, sender, server.ledger, server.content


async def test_a_file_unchanged_since_it_was_hashed_is_not_hashed_again(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    files = [_queued(folder, seq, _content(seq)) for seq in (1, 2)]
    queue, sender, ledger, content = await _ship(tmp_path, files)
    assert sorted(queue.acknowledged) == [1, 2] and queue.refusals == []
    assert set(ledger.held) == {(f"{SOURCE}/files", 1), (f"{SOURCE}/files", 2)}
    assert sender.file_stats.bytes_hashed == 0
    assert sender.file_stats.bytes_sent == 2 * SIZE
    for f in files:
        assert content.path_for(f.sha256).read_bytes() == _read(f.local)  # the server checked it


@pytest.mark.parametrize("keep_mtime", [True, False], ids=["same-size-and-mtime", "mtime-moved"])
async def test_a_file_rewritten_after_it_was_hashed_is_refused_as_changed(
    tmp_path: Path, keep_mtime: bool
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    good = _queued(folder, 1, _content(1))
    changed = _queued(folder, 2, _content(2))
    st = os.stat(changed.local)
    _write(changed.local, _content(3))  # same size, other bytes
    if keep_mtime:
        os.utime(changed.local, ns=(st.st_atime_ns, st.st_mtime_ns))  # the quick check cannot tell
    else:
        os.utime(changed.local, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    queue, sender, ledger, content = await _ship(tmp_path, [good, changed])
    assert queue.acknowledged == [1] and queue.refusals == [2]
    assert set(ledger.held) == {(f"{SOURCE}/files", 1)}
    assert not content.has(changed.sha256) and not content.has(hashlib.sha256(_content(3)).digest())
    # Trusted at first only when the quick check passed: then one refusal for now, and a hashed resend.
    assert sender.file_stats.bytes_hashed == SIZE
    assert sender.file_stats.bytes_sent == (2 * SIZE if keep_mtime else SIZE) + SIZE


@pytest.mark.parametrize("change", ["appended", "overwritten"])
async def test_a_file_that_changes_while_it_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Appended to mid-transfer (a log written to again): what was sent is still the queued version, so it
    is acknowledged as such, checked by hashing its first bytes once. Overwritten mid-transfer: refused."""
    folder = tmp_path / "out"
    folder.mkdir()
    item = _queued(folder, 1, _content(1))
    reads = 0

    def read_then_change(f: BinaryIO, size: int, digest: hashlib._Hash | None) -> bytes:
        nonlocal reads
        data = real_read(f, size, digest)
        reads += 1
        if reads == 2:  # the first chunk is on its way, the file was trusted
            with open(item.local, "r+b") as w:
                if change == "appended":
                    w.seek(0, os.SEEK_END)
                    w.write(b"more lines\n")
                else:
                    w.write(b"X" * 100)
        return data

    real_read = file_sender._read_piece
    monkeypatch.setattr(file_sender, "_read_piece", read_then_change)
    queue, sender, ledger, content = await _ship(tmp_path, [item])
    if change == "appended":
        assert queue.acknowledged == [1] and queue.refusals == []
        assert content.path_for(item.sha256).read_bytes() == _content(1)
    else:
        assert queue.acknowledged == [] and queue.refusals == [1]
        assert not ledger.held and not content.has(item.sha256)
    assert sender.file_stats.bytes_hashed == SIZE  # only the check at the end read it again


async def test_small_content_kept_since_it_was_hashed_is_sent_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The agent's queue keeps what it hashed for a small file's manifest: that is sent, without reading
    # the file (rewritten since) or hashing it again. Without it (let go, or never kept), the file is read
    # and checked: the rewritten one is refused as changed.
    folder = tmp_path / "out"
    folder.mkdir()
    hashed = [b"kept %d " % seq * 50 for seq in (1, 2, 3)]
    kept, let_go, never = (_queued(folder, seq, data) for seq, data in zip((1, 2, 3), hashed, strict=True))
    kept = dataclasses.replace(kept, checked=lambda: hashed[0])
    let_go = dataclasses.replace(let_go, checked=lambda: None)
    for f in (kept, let_go):
        _write(f.local, b"R" * f.size)  # the file on disk is another version of the same size now
    hashed_here: list[int] = []  # what the sender hashed (the server checks every file it stores)

    def counting(data: bytes = b"") -> hashlib._Hash:
        hashed_here.append(len(data))
        return hashlib.sha256(data)

    monkeypatch.setattr(file_sender, "hashlib", types.SimpleNamespace(sha256=counting))
    queue, _sender, ledger, content = await _ship(tmp_path, [kept, let_go, never])
    assert sorted(queue.acknowledged) == [1, 3] and queue.refusals == [2]
    assert set(ledger.held) == {(f"{SOURCE}/files", 1), (f"{SOURCE}/files", 3)}
    assert content.path_for(kept.sha256).read_bytes() == hashed[0]
    assert len(hashed_here) == 2  # what was read was checked; the kept content was not hashed again
