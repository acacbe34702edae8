"""The file sender over a real loopback socket against the real server loop and intake: small files go in
bundles when the server speaks protocol version 2, one FileWhole each when it speaks only version 1, a file
that changed since it was queued is refused locally either way, and every other file is acknowledged once."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from logferry.protocol import server as server_module
from logferry.protocol.messages import PeerRole
from logferry.transport import file_sender
from logferry.transport.file_sender import FileSender, OutgoingFile
from logferry.transport.sender import SenderConfig
from tests.unit.file_server import Queue, file_server, ship_all

SOURCE = "dev"
COUNT = 300


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("versions", [(1, 2), (1,)], ids=["v2-bundles", "v1-one-frame-each"])
async def test_small_files_travel_by_what_the_server_speaks(
    versions: tuple[int, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "SUPPORTED_VERSIONS", versions)
    folder = tmp_path / "out"
    folder.mkdir()
    files = []
    for seq in range(1, COUNT + 1):
        data = hashlib.sha256(str(seq).encode()).digest() * (seq % 40 + 1)
        path = folder / f"f{seq}"
        path.write_bytes(data)
        sha = hashlib.sha256(data).digest()
        files.append(OutgoingFile(f"{SOURCE}/files", seq, str(path), len(data), 5, sha, str(path)))
    (folder / "f7").write_bytes(b"changed after it was queued")
    queue = Queue(files)
    async with file_server(tmp_path / "store") as server:
        sender = FileSender(SenderConfig("127.0.0.1", server.port, SOURCE, PeerRole.AGENT, None), queue)
        await ship_all(sender, queue)
        ledger, content = server.ledger, server.content
    assert queue.refusals == [7]
    assert sorted(queue.acknowledged) == [s for s in range(1, COUNT + 1) if s != 7]
    assert set(ledger.held) == {(f"{SOURCE}/files", s) for s in queue.acknowledged}
    stats = sender.file_stats
    assert stats.whole == COUNT - 1 and stats.files == COUNT - 1
    if versions == (1,):
        assert stats.bundles == 0
    else:
        assert 1 <= stats.bundles <= COUNT // 10  # many files per frame
    for f in files:
        if f.seq != 7:
            assert content.path_for(f.sha256).read_bytes() == _read(f.local)


async def test_the_sender_keeps_two_bundles_awaiting_their_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One bundle is stored while the next arrives; more only held memory at every hop (docs/BENCHMARKS.md).
    monkeypatch.setattr(file_sender, "BUNDLE_FILES", 20)
    folder = tmp_path / "out"
    folder.mkdir()
    files = []
    for seq in range(1, 201):
        data = b"%d " % seq * 30
        path = folder / f"f{seq}"
        path.write_bytes(data)
        files.append(OutgoingFile(f"{SOURCE}/files", seq, str(path), len(data), 5,
                                  hashlib.sha256(data).digest(), str(path)))  # fmt: skip
    open_now, most = 0, 0
    ship = FileSender._ship_bundle

    async def counted(self: FileSender, *args: Any) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        try:
            await ship(self, *args)
        finally:
            open_now -= 1

    monkeypatch.setattr(FileSender, "_ship_bundle", counted)
    queue = Queue(files)
    async with file_server(tmp_path / "store") as server:
        sender = FileSender(SenderConfig("127.0.0.1", server.port, SOURCE, PeerRole.AGENT, None), queue)
        await ship_all(sender, queue)
    assert sorted(queue.acknowledged) == list(range(1, 201))
    assert sender.file_stats.bundles >= 10
    assert most == file_sender.BUNDLES_AHEAD == 2
