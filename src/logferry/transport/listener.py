"""Listening sockets that restart at once, and a server that owns every connection task it starts.

Bind rules: on POSIX ``SO_REUSEADDR`` lets a restarted server bind while old connections sit in TIME_WAIT
(the seed prototype could not restart for ~13 s without it); on Windows ``SO_REUSEADDR`` would let another
process steal the port, so ``SO_EXCLUSIVEADDRUSE`` is used instead. Shutdown is ordered: stop accepting,
wait for connection tasks up to a deadline, then cancel the rest (``Server.wait_closed`` does not wait for
connections before Python 3.12, so tasks are tracked here).

TLS: with a context, each accepted connection is upgraded here, in a tracked task, before the handler sees
it. asyncio's own ``start_server(ssl=...)`` drops a failed handshake silently (it logs only in debug mode);
an operator needs to see "peer X failed: unknown CA", so the upgrade is done with ``loop.start_tls`` and a
failure is logged with the peer and reason, counted, and closes only that connection.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from logferry.errors import TransportError

log = logging.getLogger("logferry.transport")

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe_tls_error(exc: BaseException) -> str:
    """A TLS failure in words: OpenSSL's verify message or reason, not its error-code tuple."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return f"the peer closed the connection ({type(exc).__name__}; does it trust this certificate?)"
    return str(exc) or type(exc).__name__


def peer_identities(peercert: Any) -> frozenset[str]:
    """The names a verified peer certificate speaks for: its subject CN and its DNS subject-alt-names.

    ``peercert`` is ``SSLObject.getpeercert()`` (``writer.get_extra_info("peercert")``): empty or None when
    no certificate was sent or none was verified, so an unverified certificate never names anyone.
    """
    if not isinstance(peercert, dict) or not peercert:
        return frozenset()
    names: set[str] = set()
    for rdn in peercert.get("subject", ()):
        names.update(value for key, value in rdn if key == "commonName")
    names.update(value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS")
    return frozenset(names)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket that a restarted server can bind again immediately."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise TransportError(f"cannot resolve listen address {host!r}: {exc}") from exc
    family, type_, proto, _, addr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        if sys.platform == "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined,unused-ignore]
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(512)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise TransportError(
            f"cannot listen on {format_address(host, port)}: {exc.strerror or exc}; "
            "is another logferry already running there? pick another port with --listen"
        ) from exc
    return sock


class TrackedServer:
    """An asyncio server whose connection tasks are tracked so shutdown can wait for them."""

    def __init__(
        self,
        name: str,
        handler: Handler,
        *,
        tls: ssl.SSLContext | None = None,
        tls_handshake_timeout_s: float = 10.0,
        on_tls_failure: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._handler = handler
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.address = ""
        self.tls = tls
        self.tls_failures = 0
        self._tls_timeout_s = tls_handshake_timeout_s
        self._on_tls_failure = on_tls_failure

    async def start(self, host: str, port: int) -> str:
        sock = bind_socket(host, port)
        if self.tls is None:
            self._server = await asyncio.start_server(self._accept, sock=sock, limit=1 << 20)
        else:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(lambda: _TlsPending(self), sock=sock)
        bound = sock.getsockname()
        self.address = format_address(bound[0], bound[1])
        log.info("%s listening on %s", self.name, self.address)
        return self.address

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handler(reader, writer)
        finally:
            self._tasks.discard(task)
            writer.close()

    def _upgrade_later(self, transport: asyncio.Transport) -> None:
        task = asyncio.get_running_loop().create_task(self._upgrade(transport))
        self._tasks.add(task)  # tracked from the first byte: shutdown waits for handshakes too
        task.add_done_callback(self._tasks.discard)

    async def _upgrade(self, transport: asyncio.Transport) -> None:
        assert self.tls is not None
        peername = transport.get_extra_info("peername")
        peer = format_address(*peername[:2]) if isinstance(peername, tuple) else str(peername)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            tls_transport = await loop.start_tls(
                transport, protocol, self.tls, server_side=True, ssl_handshake_timeout=self._tls_timeout_s
            )
        except (OSError, TimeoutError, EOFError) as exc:  # ssl.SSLError is an OSError
            self._tls_failed(peer, describe_tls_error(exc))
            transport.abort()
            return
        if tls_transport is None:  # the peer closed during the handshake
            self._tls_failed(peer, "the peer closed the connection during the handshake")
            return
        protocol.connection_made(tls_transport)
        writer = asyncio.StreamWriter(tls_transport, protocol, reader, loop)
        try:
            await self._handler(reader, writer)
        finally:
            writer.close()

    def _tls_failed(self, peer: str, reason: str) -> None:
        self.tls_failures += 1
        if self._on_tls_failure is not None:
            self._on_tls_failure()
        log.warning("%s: TLS handshake with %s failed: %s (%d so far); connection closed",
                    self.name, peer, reason, self.tls_failures)  # fmt: skip

    @property
    def connections(self) -> int:
        return len(self._tasks)

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def shutdown(self, deadline_s: float) -> None:
        """Stop accepting, let connections finish for up to ``deadline_s``, then cancel the rest."""
        self.stop_accepting()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=deadline_s)
            for task in pending:
                task.cancel()
            if pending:
                log.warning(
                    "%s: cancelled %d connections still open after %.1fs", self.name, len(pending), deadline_s
                )
                await asyncio.wait(pending, timeout=1.0)


class _TlsPending(asyncio.Protocol):
    """A just-accepted connection waiting for its TLS upgrade: reads nothing, so the ClientHello stays in
    the socket for the TLS layer."""

    def __init__(self, server: TrackedServer) -> None:
        self._server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()
        self._server._upgrade_later(transport)
