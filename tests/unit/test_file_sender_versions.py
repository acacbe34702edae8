"""The file sender over a real loopback socket against the real server loop and intake: small files go in
bundles when the server speaks protocol version 2, one FileWhole each when it speaks only version 1, a file
that changed since it was queued is refused locally either way, and every other file is acknowledged once."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Collection
from pathlib import Path

import pytest

from logferry.protocol import server as server_module
from logferry.protocol.connection import Authenticated
from logferry.protocol.messages import Batch, FileNack, FileOffer, PeerRole
from logferry.roles.server import FileIntakeSink
from logferry.store.content import ContentStore
from logferry.store.file_intake import FileIntake
from logferry.transport.file_sender import FileSender, Key, OutgoingFile
from logferry.transport.sender import SenderConfig
from logferry.transport.serve import ServerLimits, SessionCounters, serve_connection

SOURCE = "dev"
COUNT = 300


class Ledger:
    def __init__(self) -> None:
        self.held: dict[tuple[str, int], bytes] = {}

    async def files_known(self, files: list[tuple[str, int, bytes]]) -> set[tuple[str, int]]:
        return {(source, seq) for source, seq, _ in files if (source, seq) in self.held}

    async def file_commit_many(self, peer: Authenticated, offers: list[FileOffer]) -> None:
        for o in offers:
            self.held[(o.source, o.seq)] = o.sha256


class Sink(FileIntakeSink):
    role = "test server"

    async def opened(self, peer: Authenticated, address: str) -> int:
        return 0

    async def commit(self, peer: Authenticated, batch: Batch) -> list[tuple[int, int]]:
        raise AssertionError("no batches on a file session")

    def closed(self, peer: Authenticated | None, address: str, reason: str) -> None:
        pass


class Queue:
    def __init__(self, files: list[OutgoingFile]) -> None:
        self.pending = {(f.source, f.seq): f for f in files}
        self.acknowledged: list[int] = []
        self.refusals: list[int] = []
        self.done = asyncio.Event()

    async def next_files(self, limit: int, busy: Collection[Key] = frozenset()) -> list[OutgoingFile]:
        return [f for key, f in self.pending.items() if key not in busy][:limit]

    async def acked_many(self, items: list[OutgoingFile]) -> None:
        for item in items:
            self.acknowledged.append(item.seq)
            del self.pending[(item.source, item.seq)]
        if not self.pending:
            self.done.set()

    async def acked(self, item: OutgoingFile) -> None:
        await self.acked_many([item])

    async def refused(self, item: OutgoingFile, nack: FileNack) -> None:
        self.refusals.append(item.seq)
        del self.pending[(item.source, item.seq)]
        if not self.pending:
            self.done.set()


@pytest.mark.parametrize("versions", [(1, 2), (1,)], ids=["v2-bundles", "v1-one-frame-each"])
async def test_small_files_travel_by_what_the_server_speaks(
    versions: tuple[int, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "SUPPORTED_VERSIONS", versions)
    ledger = Ledger()
    sink = Sink()
    sink.files = FileIntake(ContentStore(tmp_path / "store"), ledger)
    stopping = asyncio.Event()
    limits = ServerLimits(credit=8, max_frame_bytes=8 << 20, heartbeat_ms=5000, handshake_timeout_s=5)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(reader, writer, sink=sink, limits=limits, token_for=lambda s: None,
                               allow_unknown=True, stopping=stopping, counters=SessionCounters(),
                               role_name="test")  # fmt: skip

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    folder = tmp_path / "out"
    folder.mkdir()
    files = []
    for seq in range(1, COUNT + 1):
        data = hashlib.sha256(str(seq).encode()).digest() * (seq % 40 + 1)
        path = folder / f"f{seq}"
        path.write_bytes(data)
        sha = hashlib.sha256(data).digest()
        files.append(OutgoingFile(f"{SOURCE}/files", seq, str(path), len(data), 5, sha, path))
    (folder / "f7").write_bytes(b"changed after it was queued")
    queue = Queue(files)
    sender = FileSender(SenderConfig("127.0.0.1", port, SOURCE, PeerRole.AGENT, None), queue)
    running = asyncio.create_task(sender.run(stopping))
    try:
        await asyncio.wait_for(queue.done.wait(), 30)
    finally:
        stopping.set()
        await asyncio.wait_for(running, 10)
        server.close()
        await server.wait_closed()
        sink.files.content.close()
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
            assert sink.files.content.path_for(f.sha256).read_bytes() == f.local.read_bytes()
