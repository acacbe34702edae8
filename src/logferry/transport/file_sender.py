"""The client side of whole-file transfer over asyncio: ship files from a durable queue, one at a time.

Used by the agent (its file queue → the relay) and by the relay (its file outbox → the collector), each on
a logferry/1 session of its own beside the record batches, so a large file never holds logs back. The
session, handshake, reconnect and backoff are the ``Sender``'s; only the pump differs: offer a file, send
its chunks from the offset the server names (at most two chunks beyond the last ``FileProgress``, so a cut
costs at most two chunks again), ``FileDone``, and wait for ``FileAck`` before the queue may forget it.

The file is read from disk a chunk at a time (bounded memory) and hashed from its first byte, the prefix
the server already holds included, so a file that changed since its manifest was made is never passed off
as the offered version: ``FileDone`` carries the hash of what was read, and the server refuses a mismatch.
This module never decides what to ship, and never marks a file shipped before its FileAck.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from logferry.errors import ProtocolError, TransportError
from logferry.protocol.connection import ClientConnection, FileAnswered, PeerClosed
from logferry.protocol.messages import (
    Ack,
    Code,
    FileAck,
    FileChunk,
    FileDone,
    FileNack,
    FileOffer,
    FileProgress,
    FileResume,
)
from logferry.transport.sender import Outgoing, Sender, SenderConfig
from logferry.transport.wire import Wire

log = logging.getLogger("logferry.files")

READ_BYTES = 1 << 20
POLL_S = 1.0


@dataclass(frozen=True, slots=True)
class OutgoingFile:
    """One file item to ship: its id and manifest, and where its content is on this host."""

    source: str
    seq: int
    path: str  # the manifest's path (as the agent saw it)
    size: int
    mtime_ns: int
    sha256: bytes
    local: Path  # where to read the content from here

    def offer(self) -> FileOffer:
        return FileOffer(self.source, self.seq, self.path, self.size, self.mtime_ns, self.sha256)


class FileQueue(Protocol):
    async def next_files(self, limit: int) -> list[OutgoingFile]:
        """Files not yet acknowledged by the next hop, oldest first."""
        ...

    async def acked(self, item: OutgoingFile) -> None:
        """The next hop durably holds the file."""
        ...

    async def refused(self, item: OutgoingFile, nack: FileNack) -> None:
        """The next hop refused the file for good (``nack.retry`` is false), e.g. it changed while sent."""
        ...


@dataclass
class FileSenderStats:
    files: int = 0
    bytes_sent: int = 0
    bytes_resent: int = 0  # bytes sent again after a cut (the server had not confirmed them)
    resumes: int = 0  # offers answered with a non-zero offset


class _NoBatches:
    """The batch queue of a session that carries files only."""

    async def pending(self, after_key: int, max_batches: int) -> list[Outgoing]:
        return []

    async def acked(self, key: int, ack: Ack) -> None:
        raise ProtocolError("a file session received an Ack for a batch it never sent", Code.PROTOCOL)


class FileChanged(Exception):
    """The local file no longer has the offered size: it changed before it was all sent."""


class FileSender(Sender):
    """Keeps one session to the next hop open and ships the queue's files over it."""

    def __init__(self, config: SenderConfig, files: FileQueue, *, chunk_bytes: int = 1 << 20) -> None:
        super().__init__(config, _NoBatches())
        self.files = files
        self.chunk_bytes = chunk_bytes
        self.file_stats = FileSenderStats()
        self._sent_upto: dict[tuple[str, int], int] = {}  # how far each file got before a cut

    async def _pump(self, wire: Wire[ClientConnection], stopping: asyncio.Event) -> None:
        answers: asyncio.Queue[FileResume | FileProgress | FileAck | FileNack] = asyncio.Queue(8)
        reader = asyncio.ensure_future(self._read_answers(wire, answers))
        stop_wait = asyncio.ensure_future(stopping.wait())
        try:
            while not stopping.is_set():
                self._wake.clear()
                batch = await self.files.next_files(16)
                for item in batch:
                    if stopping.is_set():
                        return
                    await self._ship(wire, item, answers, reader)
                if batch:
                    continue
                wake = asyncio.ensure_future(self._wake.wait())
                # The poll catches files queued by someone who cannot notify us (an operator's release).
                done, _ = await asyncio.wait(
                    {wake, reader, stop_wait}, timeout=POLL_S, return_when=asyncio.FIRST_COMPLETED
                )
                wake.cancel()
                if reader in done:
                    reader.result()
                    return
        finally:
            reader.cancel()
            stop_wait.cancel()

    async def _read_answers(
        self,
        wire: Wire[ClientConnection],
        answers: asyncio.Queue[FileResume | FileProgress | FileAck | FileNack],
    ) -> None:
        while True:
            event = await wire.next_event()
            if event is None:
                raise TransportError(f"{self.target} closed the connection")
            if isinstance(event, FileAnswered):
                await answers.put(event.answer)
            elif isinstance(event, PeerClosed):
                raise ProtocolError(f"{self.target} closed the session: {event.reason}", event.code)

    async def _answer(
        self,
        answers: asyncio.Queue[FileResume | FileProgress | FileAck | FileNack],
        reader: asyncio.Future[None],
    ) -> FileResume | FileProgress | FileAck | FileNack:
        get = asyncio.ensure_future(answers.get())
        waiting: set[asyncio.Future[Any]] = {get, reader}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if get in done:
            return get.result()
        get.cancel()
        reader.result()  # raises what ended the session
        raise TransportError(f"the session with {self.target} ended")

    async def _ship(
        self,
        wire: Wire[ClientConnection],
        item: OutgoingFile,
        answers: asyncio.Queue[FileResume | FileProgress | FileAck | FileNack],
        reader: asyncio.Future[None],
    ) -> None:
        conn, key = wire.conn, (item.source, item.seq)
        await wire.write(conn.offer_file(item.offer(), wire.now()))
        answer = await self._answer(answers, reader)
        if isinstance(answer, FileResume):
            try:
                answer = await self._send_content(wire, item, answer.offset, answers, reader)
            except FileChanged as exc:
                # The transfer cannot be finished as offered: the queue re-reads the file as a new version,
                # and a new session starts clean (this one still has the broken transfer open).
                await self.files.refused(
                    item, FileNack(item.source, item.seq, int(Code.MALFORMED), str(exc), False)
                )
                raise TransportError(
                    f"file {item.source}:{item.seq} changed while it was sent: {exc}"
                ) from exc
        if isinstance(answer, FileAck):
            self._sent_upto.pop(key, None)
            self.file_stats.files += 1
            await self.files.acked(item)
            return
        if isinstance(answer, FileNack):
            self._sent_upto.pop(key, None)
            if not answer.retry:
                log.warning("%s refused file %s:%d (%s): %s", self.target, item.source, item.seq, item.path,
                            answer.reason)  # fmt: skip
                await self.files.refused(item, answer)
                return
            why = f"{self.target} refused file {item.source}:{item.seq} for now: {answer.reason}"
            raise ProtocolError(why, answer.code)
        raise ProtocolError(f"unexpected {type(answer).__name__} for file {item.seq}", Code.PROTOCOL)

    async def _send_content(
        self,
        wire: Wire[ClientConnection],
        item: OutgoingFile,
        offset: int,
        answers: asyncio.Queue[FileResume | FileProgress | FileAck | FileNack],
        reader: asyncio.Future[None],
    ) -> FileResume | FileProgress | FileAck | FileNack:
        conn, key = wire.conn, (item.source, item.seq)
        before = self._sent_upto.get(key, 0)
        if offset:
            self.file_stats.resumes += 1
        resent = max(0, before - offset)
        self.file_stats.bytes_resent += resent
        log.info("sending file %s:%d (%s) to %s from offset %d of %d (%d bytes sent again after a cut)",
                 item.source, item.seq, item.path, self.target, offset, item.size, resent)  # fmt: skip
        chunk_bytes = max(1, min(self.chunk_bytes, conn.max_chunk_bytes))
        try:
            f = await asyncio.to_thread(item.local.open, "rb")
        except OSError as exc:
            raise FileChanged(f"cannot open {item.local}: {exc}") from exc
        try:
            digest = hashlib.sha256()
            await asyncio.to_thread(_hash_prefix, f, digest, offset)
            pos = offset
            while pos < item.size:
                while not conn.file_window_open:
                    answer = await self._answer(answers, reader)
                    if not isinstance(answer, FileProgress):
                        return answer  # a refusal mid-transfer
                data = await asyncio.to_thread(f.read, min(chunk_bytes, item.size - pos))
                if not data:
                    raise FileChanged(f"{item.local} is shorter than its manifest's {item.size} bytes")
                digest.update(data)
                await wire.write(conn.send_chunk(FileChunk(item.source, item.seq, pos, data), wire.now()))
                pos += len(data)
                self._sent_upto[key] = max(self._sent_upto.get(key, 0), pos)
                self.file_stats.bytes_sent += len(data)
        finally:
            f.close()
        await wire.write(conn.file_done(FileDone(item.source, item.seq, digest.digest()), wire.now()))
        while True:
            answer = await self._answer(answers, reader)
            if not isinstance(answer, FileProgress):
                return answer


def _hash_prefix(f: BinaryIO, digest: hashlib._Hash, size: int) -> None:
    """Hash the first ``size`` bytes of the open file ``f`` (leaving it positioned at ``size``)."""
    read = f.read
    left = size
    while left > 0:
        piece = read(min(READ_BYTES, left))
        if not piece:
            raise FileChanged(f"the file is shorter than the {size} bytes the receiver already holds")
        digest.update(piece)
        left -= len(piece)
