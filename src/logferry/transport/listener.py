"""Listening sockets that restart at once, and a server that owns every connection task it starts.

Bind rules: on POSIX ``SO_REUSEADDR`` lets a restarted server bind while old connections sit in TIME_WAIT
(the seed prototype could not restart for ~13 s without it); on Windows ``SO_REUSEADDR`` would let another
process steal the port, so ``SO_EXCLUSIVEADDRUSE`` is used instead. Shutdown is ordered: stop accepting,
wait for connection tasks up to a deadline, then cancel the rest (``Server.wait_closed`` does not wait for
connections before Python 3.12, so tasks are tracked here).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Awaitable, Callable

from logferry.errors import TransportError

log = logging.getLogger("logferry.transport")

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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

    def __init__(self, name: str, handler: Handler) -> None:
        self.name = name
        self._handler = handler
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.address = ""

    async def start(self, host: str, port: int) -> str:
        sock = bind_socket(host, port)
        self._server = await asyncio.start_server(self._accept, sock=sock, limit=1 << 20)
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
