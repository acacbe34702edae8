"""What the two logferry/1 servers (relay and collector) share: accepting peers and an ordered shutdown.

A ``ListeningRole`` binds its logferry/1 port (restartable at once after kill -9), serves connections with
``serve_connection``, announces READY, and on stop: stops accepting, lets connections finish committing what
they received within ``shutdown_timeout_s``, then returns so the role can close its stores.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from logferry.config import CollectorConfig, RelayConfig, parse_address
from logferry.config.schema import Durability as ConfigDurability
from logferry.protocol.connection import Authenticated
from logferry.protocol.messages import (
    Code,
    FileBundle,
    FileCancel,
    FileChunk,
    FileDone,
    FileNack,
    FileOffer,
    FileWhole,
)
from logferry.store.file_intake import FileIntake
from logferry.store.sqlite import Durability
from logferry.transport.listener import TrackedServer
from logferry.transport.serve import BatchRefused, BatchSink, ServerLimits, SessionCounters, serve_connection

log = logging.getLogger("logferry")


class FileIntakeSink:
    """The whole-file half of a server role's sink (``transport.serve.FileSink``): every file message goes to
    the role's :class:`FileIntake` (``files``), set once its stores are open; until then, or in a role that
    takes no files, a file is refused with a protocol error that says so."""

    role = "server"  # named in the refusal
    files: FileIntake | None = None

    async def file_offered(self, peer: Authenticated, offer: FileOffer) -> int | None:
        return await self._files().file_offered(peer, offer)

    async def file_chunk(self, peer: Authenticated, chunk: FileChunk) -> None:
        await self._files().file_chunk(peer, chunk)

    async def file_finished(self, peer: Authenticated, done: FileDone) -> None:
        await self._files().file_finished(peer, done)

    async def file_whole(self, peer: Authenticated, whole: FileWhole) -> None:
        await self._files().file_whole(peer, whole)

    async def file_cancelled(self, peer: Authenticated, cancel: FileCancel) -> None:
        await self._files().file_cancelled(peer, cancel)

    async def file_bundle(self, peer: Authenticated, bundle: FileBundle) -> list[FileNack]:
        return await self._files().file_bundle(peer, bundle)

    def _files(self) -> FileIntake:
        if self.files is None:
            raise BatchRefused(Code.PROTOCOL, f"this {self.role} does not take files", retry=False)
        return self.files


def store_durability(value: ConfigDurability) -> Durability:
    return Durability.FULL if value is ConfigDurability.FULL else Durability.NORMAL


def server_limits(cfg: RelayConfig | CollectorConfig) -> ServerLimits:
    """The bounds a server puts on each peer, from its config."""
    return ServerLimits(
        credit=cfg.credit,
        max_frame_bytes=cfg.max_frame_bytes,
        heartbeat_ms=int(cfg.heartbeat_s * 1000),
        handshake_timeout_s=cfg.handshake_timeout_s,
        write_timeout_s=cfg.write_timeout_s,
        frame_timeout_s=cfg.idle_timeout_s,
    )


@dataclass
class PeerStats:
    """One peer (a device at the relay, a relay at the collector) as the API shows it."""

    source: str
    address: str
    connected: bool
    connected_ns: int
    last_seen_ns: int
    batches: int = 0
    records: int = 0


class PeerTable:
    """Peers by source name: connected ones, and the most recent disconnected ones up to a bound."""

    def __init__(self, keep_disconnected: int = 1000) -> None:
        self.peers: dict[str, PeerStats] = {}
        self.total_batches = 0  # since start, for metrics
        self.total_records = 0
        self._keep = keep_disconnected

    def opened(self, source: str, address: str) -> None:
        now = time.time_ns()
        self.peers.pop(source, None)  # re-insert: dict order is "least recently connected first"
        self.peers[source] = PeerStats(source, address, True, now, now)

    def received(self, source: str, records: int) -> None:
        self.total_batches += 1
        self.total_records += records
        stats = self.peers.get(source)
        if stats is not None:
            stats.batches += 1
            stats.records += records
            stats.last_seen_ns = time.time_ns()

    def closed(self, source: str, address: str) -> None:
        stats = self.peers.get(source)
        if stats is None or stats.address != address:
            return  # an older connection of a peer that has already reconnected
        stats.connected = False
        stats.last_seen_ns = time.time_ns()
        gone = [s for s, p in self.peers.items() if not p.connected]
        for old in gone[: max(0, len(gone) - self._keep)]:  # a bound: unknown devices cannot grow this
            del self.peers[old]

    @property
    def connected(self) -> int:
        return sum(1 for p in self.peers.values() if p.connected)


def token_lookup(tokens: dict[str, str]) -> Callable[[str], bytes | None]:
    encoded = {name: token.encode() for name, token in tokens.items() if token}
    return encoded.get


class LogferryListener:
    """The logferry/1 port of a server role."""

    def __init__(
        self,
        role_name: str,
        listen: str,
        sink: BatchSink,
        limits: ServerLimits,
        tokens: dict[str, str],
        allow_unknown: bool,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.role_name = role_name
        self.listen = listen
        self.counters = SessionCounters()
        self.stopping = asyncio.Event()
        self._sink = sink
        self._limits = limits
        self._token_for = token_lookup(tokens)
        self._allow_unknown = allow_unknown
        self._server = TrackedServer(
            f"{role_name} logferry/1" + (" over TLS" if tls else ""), self._handle, tls=tls,
            tls_handshake_timeout_s=limits.handshake_timeout_s, on_tls_failure=self.counters.tls_failed,
        )  # fmt: skip

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(
            reader,
            writer,
            sink=self._sink,
            limits=self._limits,
            token_for=self._token_for,
            allow_unknown=self._allow_unknown,
            stopping=self.stopping,
            counters=self.counters,
            role_name=self.role_name,
        )

    async def start(self) -> str:
        host, port = parse_address(self.listen)
        return await self._server.start(host, port)

    @property
    def connections(self) -> int:
        return self._server.connections

    async def shutdown(self, deadline_s: float) -> None:
        self.stopping.set()
        await self._server.shutdown(deadline_s)
