"""The server side of logferry/1 over asyncio: one task per connection, batches committed concurrently.

A role (relay, collector) supplies a ``BatchSink``: it says how far a source is durably stored (for the
Welcome) and commits batches. Each batch is committed in its own task, up to the credit window, so commits
of one connection overlap and the store can group them into one transaction; acks go out as each commit
finishes. A batch is acknowledged only after the sink returned, i.e. after its commit (ack means durable).
Any protocol violation ends only this connection, with an error frame; everyone else goes on.

Sinks may do more, each by implementing one more protocol: a ``QueryAnswerer`` (the collector) answers a
relay's reconciliation queries, each in its own task; a ``GapWatcher`` (the relay) is asked after every
committed batch whether the agent's seqs now have holes, which are then requested with ``ResendRequest``,
and hears the agent's ``Unavailable``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from logferry.errors import AuthError, ProtocolError, RemoteProtocolError, StoreError, TransportError
from logferry.protocol.connection import (
    Authenticated,
    BatchReceived,
    BundleReceived,
    ChunkReceived,
    FileCancelled,
    FileFinished,
    FileOffered,
    PeerClosed,
    QueryReceived,
    ServerConnection,
    State,
    UnavailableReported,
    WholeReceived,
)
from logferry.protocol.messages import (
    NONCE_BYTES,
    Batch,
    Code,
    FileBundle,
    FileCancel,
    FileChunk,
    FileDone,
    FileNack,
    FileOffer,
    FileWhole,
    ItemsAnswer,
    ItemsQuery,
    ReconcileAnswer,
    ReconcileQuery,
)
from logferry.transport.listener import peer_identities
from logferry.transport.wire import Wire

log = logging.getLogger("logferry.transport")


MAX_PENDING_CHUNKS = 4  # file chunks received but not yet written, per connection (bounded memory)


class BatchRefused(Exception):
    """Raised by a sink to answer a batch with a Nack instead of an Ack."""

    def __init__(self, code: Code, reason: str, retry: bool) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.retry = retry


class QueryRefused(Exception):
    """Raised by a QueryAnswerer for a query it cannot answer as asked: the peer erred; it is cut off."""


@runtime_checkable
class QueryAnswerer(Protocol):
    async def answer_query(
        self, peer: Authenticated, query: ReconcileQuery | ItemsQuery
    ) -> ReconcileAnswer | ItemsAnswer:
        """Answer a reconciliation query (raise QueryRefused for one that makes no sense)."""
        ...


@runtime_checkable
class GapWatcher(Protocol):
    async def holes_after(self, peer: Authenticated, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """After a commit of ``ranges``: the seq ranges to ask the agent for again now (usually none)."""
        ...

    async def unavailable(self, peer: Authenticated, ranges: list[tuple[int, int]]) -> None:
        """The agent no longer has these seqs."""
        ...


@runtime_checkable
class ResendAsker(Protocol):
    def attach_asker(
        self, peer: Authenticated, address: str, ask: Callable[[list[tuple[int, int]]], Awaitable[None]]
    ) -> None:
        """``ask(ranges)`` sends this agent a ResendRequest now (an operator's "ask the device")."""
        ...


@runtime_checkable
class FileSink(Protocol):
    """A server that takes whole files (docs/PROTOCOL.md §13); raise BatchRefused to answer FileNack."""

    async def file_offered(self, peer: Authenticated, offer: FileOffer) -> int | None:
        """The resume offset (bytes already held of this version), or None: held complete, ack at once."""
        ...

    async def file_chunk(self, peer: Authenticated, chunk: FileChunk) -> None:
        """Write the next bytes of the file in transfer."""
        ...

    async def file_finished(self, peer: Authenticated, done: FileDone) -> None:
        """Verify, make durable and journal the file; return only then (ack means durable)."""
        ...

    async def file_whole(self, peer: Authenticated, whole: FileWhole) -> None:
        """A small file in one frame: verify, make durable and journal it; return only then."""
        ...

    async def file_cancelled(self, peer: Authenticated, cancel: FileCancel) -> None:
        """The client stopped sending the file: keep its partial for a resume, or delete it (``discard``)."""
        ...

    async def file_bundle(self, peer: Authenticated, bundle: FileBundle) -> list[FileNack]:
        """Many small files: verify, make durable and journal each; return only then, with the refusals
        (raising BatchRefused refuses them all)."""
        ...


class BatchSink(Protocol):
    async def opened(self, peer: Authenticated, address: str) -> int:
        """A peer authenticated; return the highest seq of its source held without gaps (0: none)."""
        ...

    async def commit(self, peer: Authenticated, batch: Batch) -> list[tuple[int, int]]:
        """Durably commit a batch; return the inclusive seq ranges now held. Raise BatchRefused to Nack."""
        ...

    def closed(self, peer: Authenticated | None, address: str, reason: str) -> None:
        """The connection ended (for counters and status)."""
        ...


@dataclass(frozen=True, slots=True)
class ServerLimits:
    credit: int
    max_frame_bytes: int
    heartbeat_ms: int
    handshake_timeout_s: float
    write_timeout_s: float = 30.0
    frame_timeout_s: float = 60.0


class SessionCounters:
    """What went wrong with peers, for logs and metrics."""

    def __init__(self) -> None:
        self.accepted = 0
        self.refused: dict[str, int] = {}

    def refuse(self, code: Code) -> None:
        self.refused[code.name] = self.refused.get(code.name, 0) + 1

    def tls_failed(self) -> None:
        """A TLS handshake failed, before any logferry/1 byte: counted beside the protocol's codes."""
        self.refused["TLS_HANDSHAKE"] = self.refused.get("TLS_HANDSHAKE", 0) + 1


def _refuse_all(bundle: FileBundle, code: Code, reason: str, retry: bool) -> list[FileNack]:
    return [FileNack(f.source, f.seq, int(code), reason[:200], retry) for f in bundle.files]


def _file_message(
    event: FileOffered | ChunkReceived | FileCancelled | FileFinished | WholeReceived,
) -> FileOffer | FileChunk | FileCancel | FileDone | FileWhole:
    if isinstance(event, FileOffered):
        return event.offer
    if isinstance(event, ChunkReceived):
        return event.chunk
    if isinstance(event, FileCancelled):
        return event.cancel
    return event.done if isinstance(event, FileFinished) else event.whole


class SinkRefused(RemoteProtocolError):
    """The sink would not open a session for this authenticated peer (``BatchSink.opened`` refused it)."""


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    sink: BatchSink,
    limits: ServerLimits,
    token_for: Callable[[str], bytes | None],
    allow_unknown: bool,
    stopping: asyncio.Event,
    counters: SessionCounters,
    role_name: str,
) -> None:
    """Run one accepted connection until the peer leaves, misbehaves, or the server stops."""
    peername = writer.get_extra_info("peername")
    address = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
    counters.accepted += 1
    # Mutual TLS: a verified client certificate authenticates the sources it names, so such a source needs
    # no token (a configured token must still verify); _Session refuses any other source (docs/TLS.md).
    identities = peer_identities(writer.get_extra_info("peercert"))
    conn = ServerConnection(
        token_for=token_for,
        allow_unknown=allow_unknown or bool(identities),
        credit=limits.credit,
        max_frame_bytes=limits.max_frame_bytes,
        heartbeat_ms=limits.heartbeat_ms,
        server_nonce=os.urandom(NONCE_BYTES),
        handshake_timeout_s=limits.handshake_timeout_s,
        now=Wire.now(),
    )
    wire = Wire(
        reader,
        writer,
        conn,
        peer=address,
        write_timeout_s=limits.write_timeout_s,
        frame_timeout_s=limits.frame_timeout_s,
    )
    session = _Session(wire, sink, address)
    session.identities = identities
    reason = "closed by peer"
    try:
        reason = await session.run(stopping)
    except (ProtocolError, AuthError) as exc:
        code = (
            Code(exc.code) if isinstance(exc, ProtocolError) and exc.code in Code._value2member_map_ else None
        )
        counters.refuse(code or Code.PROTOCOL)
        reason = str(exc)
        who = session.peer.source if session.peer else "unauthenticated peer"
        # A sink that refused a peer has said why itself, once (it retries with its back-off).
        log.log(logging.DEBUG if isinstance(exc, SinkRefused) else logging.WARNING,
                "%s: dropped %s (%s): %s", role_name, address, who, exc)  # fmt: skip
    except TransportError as exc:
        reason = str(exc)
        log.info("%s: connection from %s lost: %s", role_name, address, exc)
    finally:
        await session.finish()
        await wire.close(conn.data_to_send())
        sink.closed(session.peer, address, reason)


class _Session:
    def __init__(self, wire: Wire[ServerConnection], sink: BatchSink, address: str) -> None:
        self.wire = wire
        self.sink = sink
        self.address = address
        self.peer: Authenticated | None = None
        self._commits: set[asyncio.Task[None]] = set()
        self._file_chains: dict[tuple[str, int], asyncio.Task[None]] = {}  # each file's latest event
        self._chunks: set[asyncio.Task[None]] = set()  # chunk writes not done yet
        self._failure: BaseException | None = None
        self._requests = 0  # ResendRequest ids on this connection
        self.identities: frozenset[str] = frozenset()  # names of the peer's verified client certificate

    async def run(self, stopping: asyncio.Event) -> str:
        stop_wait = asyncio.ensure_future(stopping.wait())
        try:
            while True:
                read = asyncio.ensure_future(self.wire.next_event())
                done, _ = await asyncio.wait({read, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if self._failure is not None:
                    read.cancel()
                    raise self._failure
                if read not in done:
                    read.cancel()
                    await self._drain_commits()
                    await self.wire.write(self.wire.conn.fail(Code.SHUTTING_DOWN, "server is stopping"))
                    return "server stopping"
                event = read.result()
                if event is None:
                    return "peer closed the connection"
                if isinstance(event, Authenticated):
                    self._check_identity(event)
                    self.peer = event
                    try:
                        acked_through = await self.sink.opened(event, self.address)
                    except BatchRefused as exc:  # the sink will not have this peer: say why, then close
                        self.wire.writer.write(self.wire.conn.fail(exc.code, exc.reason[:500]))
                        raise SinkRefused(exc.reason, exc.code) from None
                    await self.wire.write(self.wire.conn.welcome(acked_through))
                    if isinstance(self.sink, ResendAsker):
                        self.sink.attach_asker(event, self.address, self.request_resend)
                elif isinstance(event, BatchReceived):
                    task = asyncio.create_task(self._commit(event.batch))
                    self._commits.add(task)
                    task.add_done_callback(self._commits.discard)
                elif isinstance(event, QueryReceived):
                    task = asyncio.create_task(self._answer(event.query))
                    self._commits.add(task)
                    task.add_done_callback(self._commits.discard)
                elif isinstance(event, BundleReceived):
                    task = asyncio.create_task(self._bundle(event.bundle))
                    self._commits.add(task)
                    task.add_done_callback(self._commits.discard)
                elif isinstance(event, FileOffered):
                    await self._file_event(event)  # inline: the next frames of this file need its state
                elif isinstance(event, ChunkReceived | FileCancelled | FileFinished | WholeReceived):
                    # Each file's events run in order in a chain of tasks, beside the read loop: the next
                    # chunk is read from the network while this one is written, and commits (fsyncs,
                    # journal) of several files group; each is answered when done.
                    await self._file_in_order(event)
                elif isinstance(event, UnavailableReported) and isinstance(self.sink, GapWatcher):
                    assert self.peer is not None
                    await self.sink.unavailable(self.peer, event.report.ranges)
                elif isinstance(event, PeerClosed):
                    await self._drain_commits()
                    return f"peer said goodbye: {event.reason or Code(event.code).name}"
        finally:
            stop_wait.cancel()

    async def request_resend(self, ranges: list[tuple[int, int]]) -> None:
        """Ask the agent on this connection for ``ranges`` now; TransportError once the session is ending."""
        conn = self.wire.conn
        if conn.state is not State.OPEN:
            raise TransportError(f"the connection from {self.address} is closing")
        self._requests += 1
        await self.wire.write(conn.request_resend(self._requests, ranges))

    def _check_identity(self, peer: Authenticated) -> None:
        if self.identities and peer.source not in self.identities:
            # Said like a failed token check, so a stranger cannot probe which sources exist.
            self.wire.writer.write(self.wire.conn.fail(Code.UNAUTHORIZED, "authentication failed"))
            raise RemoteProtocolError(
                f"Hello says source {peer.source!r} but the client certificate names "
                f"{', '.join(sorted(self.identities))}: a certificate speaks only for the source it names",
                Code.UNAUTHORIZED,
            )

    async def _commit(self, batch: Batch) -> None:
        assert self.peer is not None
        conn = self.wire.conn
        try:
            ranges = await self.sink.commit(self.peer, batch)
        except BatchRefused as exc:
            code, reason, retry = exc.code, exc.reason, exc.retry
            log.warning(
                "refused batch %d of %s from %s: %s", batch.batch_id, batch.source, self.address, reason
            )
        except StoreError as exc:
            log.error("cannot commit batch %d of %s: %s", batch.batch_id, batch.source, exc)
            code, reason, retry = Code.STORE_FAILED, "the receiver could not commit; retry later", True
        else:
            code, reason, retry = Code.NORMAL, "", False
        if conn.state is State.CLOSED:
            return  # committed, but the peer is gone: it resends and the receiver dedupes
        try:
            if code is Code.NORMAL:
                frame = conn.ack(batch.batch_id, batch.source, ranges)
            else:
                frame = conn.nack(batch.batch_id, code, reason, retry)
            await self.wire.write(frame)
            if code is Code.NORMAL and isinstance(self.sink, GapWatcher):
                holes = await self.sink.holes_after(self.peer, ranges)
                if holes and conn.state is State.OPEN:
                    self._requests += 1
                    await self.wire.write(conn.request_resend(self._requests, holes))
        except (ProtocolError, TransportError, StoreError) as exc:
            self._failure = exc
            self.wire.reader.feed_eof()  # wake the read loop so the session ends

    async def _answer(self, query: ReconcileQuery | ItemsQuery) -> None:
        assert self.peer is not None
        conn = self.wire.conn
        try:
            if not isinstance(self.sink, QueryAnswerer):
                raise QueryRefused(f"this server does not answer {type(query).__name__}")
            answer = await self.sink.answer_query(self.peer, query)
            if conn.state is not State.CLOSED:
                await self.wire.write(conn.answer(answer))
        except QueryRefused as exc:
            log.warning("refused a reconciliation query from %s: %s", self.address, exc)
            self._failure = ProtocolError(str(exc), Code.PROTOCOL)
            await self.wire.write(conn.fail(Code.PROTOCOL, str(exc)[:200]))
            self.wire.reader.feed_eof()
        except (ProtocolError, TransportError, StoreError) as exc:
            log.error("cannot answer a reconciliation query from %s: %s", self.address, exc)
            self._failure = exc
            self.wire.reader.feed_eof()

    async def _bundle(self, bundle: FileBundle) -> None:
        assert self.peer is not None
        conn = self.wire.conn
        try:
            if not isinstance(self.sink, FileSink):
                raise BatchRefused(Code.PROTOCOL, "this server does not take files", retry=False)
            refused = await self.sink.file_bundle(self.peer, bundle)
        except BatchRefused as exc:
            log.warning("refused file bundle %d from %s: %s", bundle.bundle_id, self.address, exc.reason)
            refused = _refuse_all(bundle, exc.code, exc.reason, exc.retry)
        except (StoreError, OSError) as exc:
            log.error("cannot store file bundle %d from %s: %s", bundle.bundle_id, self.address, exc)
            reason = "the receiver could not store the file; retry later"
            refused = _refuse_all(bundle, Code.STORE_FAILED, reason, True)
        if conn.state is State.CLOSED:
            return  # stored, but the peer is gone: it sends them again and they are acknowledged at once
        try:
            await self.wire.write(conn.file_bundle_ack(bundle.bundle_id, refused))
        except (ProtocolError, TransportError) as exc:
            self._failure = exc
            self.wire.reader.feed_eof()  # wake the read loop so the session ends

    async def _file_in_order(
        self, event: ChunkReceived | FileCancelled | FileFinished | WholeReceived
    ) -> None:
        if isinstance(event, ChunkReceived):
            # Chunks not yet written hold their bytes: past a few, stop reading until one is on disk.
            while len(self._chunks) >= MAX_PENDING_CHUNKS:
                await asyncio.wait(set(self._chunks), return_when=asyncio.FIRST_COMPLETED)
        msg = _file_message(event)
        key = (msg.source, msg.seq)
        before = self._file_chains.get(key)
        task = asyncio.create_task(self._file_event(event, after=before))
        self._file_chains[key] = task
        self._commits.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._commits.discard(t)
            if self._file_chains.get(key) is t:
                del self._file_chains[key]

        task.add_done_callback(done)
        if isinstance(event, ChunkReceived):
            self._chunks.add(task)
            task.add_done_callback(self._chunks.discard)

    async def _file_event(
        self,
        event: FileOffered | ChunkReceived | FileCancelled | FileFinished | WholeReceived,
        after: asyncio.Task[None] | None = None,
    ) -> None:
        if after is not None:
            await asyncio.wait({after})  # the file's earlier event first (its errors are its own)
        assert self.peer is not None
        conn = self.wire.conn
        sink = self.sink
        msg = _file_message(event)
        source, seq = msg.source, msg.seq
        try:
            if not isinstance(sink, FileSink):
                raise BatchRefused(Code.PROTOCOL, "this server does not take files", retry=False)
            if isinstance(msg, FileOffer):
                offset = await sink.file_offered(self.peer, msg)
                frame = (
                    conn.file_ack(source, seq) if offset is None else conn.file_resume(source, seq, offset)
                )
            elif isinstance(msg, FileChunk):
                await sink.file_chunk(self.peer, msg)
                frame = conn.file_progress(source, seq)  # on our disk: the client may send one more
            elif isinstance(msg, FileCancel):
                await sink.file_cancelled(self.peer, msg)
                return
            else:
                if isinstance(msg, FileDone):
                    await sink.file_finished(self.peer, msg)
                else:
                    await sink.file_whole(self.peer, msg)
                if conn.state is State.CLOSED:
                    return  # stored, but the peer is gone: it offers again and is acknowledged at once
                frame = conn.file_ack(source, seq)
        except BatchRefused as exc:
            log.warning("refused file %s:%d from %s: %s", source, seq, self.address, exc.reason)
            if conn.state is State.CLOSED or not conn.file_open(source, seq):
                return
            frame = conn.file_nack(source, seq, exc.code, exc.reason[:200], exc.retry)
        except (StoreError, OSError) as exc:
            log.error("cannot store file %s:%d from %s: %s", source, seq, self.address, exc)
            if conn.state is State.CLOSED or not conn.file_open(source, seq):
                return
            frame = conn.file_nack(
                source, seq, Code.STORE_FAILED, "the receiver could not store the file; retry later", True
            )
        try:
            await self.wire.write(frame)
        except (ProtocolError, TransportError) as exc:
            self._failure = exc
            self.wire.reader.feed_eof()  # wake the read loop so the session ends

    async def _drain_commits(self) -> None:
        if self._commits:
            await asyncio.wait(set(self._commits))

    async def finish(self) -> None:
        """Let commits already started finish (their data is being made durable), then stop."""
        await self._drain_commits()
