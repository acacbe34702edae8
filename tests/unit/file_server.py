"""A real file server for sender tests: the serving loop, FileIntake and a ContentStore on 127.0.0.1:0,
with an in-memory ledger and queue (what the relay's journal and the agent's queue do, kept simple)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from logferry.protocol.connection import Authenticated
from logferry.protocol.messages import Batch, FileNack, FileOffer
from logferry.roles.server import FileIntakeSink
from logferry.store.content import ContentStore
from logferry.store.file_intake import FileIntake
from logferry.transport.file_sender import FileSender, Key, OutgoingFile
from logferry.transport.serve import ServerLimits, SessionCounters, serve_connection


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


@dataclass
class FileServer:
    port: int
    ledger: Ledger
    content: ContentStore


@asynccontextmanager
async def file_server(store: Path, port: int = 0) -> AsyncIterator[FileServer]:
    """Serve files into ``store`` until the block ends (on ``port``; 0: one the OS picks)."""
    ledger = Ledger()
    sink = Sink()
    content = ContentStore(store)
    sink.files = FileIntake(content, ledger)
    stopping = asyncio.Event()
    limits = ServerLimits(credit=8, max_frame_bytes=8 << 20, heartbeat_ms=5000, handshake_timeout_s=5)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(reader, writer, sink=sink, limits=limits, token_for=lambda s: None,
                               allow_unknown=True, stopping=stopping, counters=SessionCounters(),
                               role_name="test")  # fmt: skip

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield FileServer(server.sockets[0].getsockname()[1], ledger, content)
    finally:
        stopping.set()
        server.close()
        await server.wait_closed()
        content.close()


async def ship_all(sender: FileSender, queue: Queue, timeout_s: float = 30.0) -> None:
    """Run ``sender`` until ``queue`` heard an answer for every file, then stop it."""
    stopping = asyncio.Event()
    running = asyncio.create_task(sender.run(stopping))
    try:
        await asyncio.wait_for(queue.done.wait(), timeout_s)
    finally:
        stopping.set()
        await asyncio.wait_for(running, 10)
