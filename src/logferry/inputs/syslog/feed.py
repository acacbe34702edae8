"""What the relay's agentless inputs (syslog, line) share: the feed into the journal and the TCP server shell.

:class:`JournalFeed` takes ``(source, entry)`` pairs from one connection, groups them by source in arrival
order and commits each group with ``Journal.commit_entries``, which numbers them from the journal's
per-source counter and gives every record its fate by the relay's :class:`~logferry.pipeline.rules.RuleSet`
in the same transaction — so these records meet exactly the rules, held store and outbox that agents'
records meet. Only after the commit does the caller reply to its peer (ack means durable), and only after
it does it read again (backpressure: a sender faster than the journal waits in its own TCP window).

:class:`InputServer` is the listening side: it binds with ``SO_REUSEADDR`` through
:class:`~logferry.transport.listener.TrackedServer`, counts what happened in :class:`InputCounters`, and on
shutdown wakes every connection blocked in :meth:`InputServer.read`; each then reads what is still
arriving until its peer pauses, commits it and ends — an idle syslog connection never holds shutdown up.

This module must never acknowledge anything before its commit, nor decide a record's fate itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, fields

from logferry.api.rates import Throughput
from logferry.config import parse_address
from logferry.errors import TransportError
from logferry.model import Entry
from logferry.pipeline.rules import RuleSet
from logferry.store.journal import Journal
from logferry.transport.listener import TrackedServer

log = logging.getLogger("logferry.inputs")

READ_BYTES = 256 * 1024
"""One read at most: bounds a connection's memory to one message plus this."""
DRAIN_S = 0.05
"""At shutdown, a connection ends once its peer has sent nothing for this long."""


@dataclass
class InputCounters:
    """What an input did since start; logged at shutdown."""

    connections: int = 0
    messages: int = 0
    parse_errors: int = 0
    truncated: int = 0
    cut_off: int = 0  # connections closed by us: stalled mid-message, not reading replies, or store failure
    tls_failures: int = 0  # TLS handshakes that failed (the connection never reached the input)

    def summary(self) -> str:
        return ", ".join(f"{f.name.replace('_', ' ')} {getattr(self, f.name)}" for f in fields(self))


class JournalFeed:
    """Commits entries of the relay's own inputs through the journal, with the relay's rules."""

    def __init__(
        self,
        journal: Journal,
        rules: RuleSet,
        on_outbox: Callable[[], None],
        throughput: Throughput | None = None,
    ) -> None:
        self.journal = journal
        self.rules = rules
        self.on_outbox = on_outbox
        self.throughput = throughput or Throughput()  # records and message bytes in, for the relay's rates

    async def commit(self, items: Iterable[tuple[str, Entry]]) -> None:
        """Journal every entry under its source; returns once all of them are durable."""
        groups: dict[str, list[Entry]] = {}
        for source, entry in items:
            group = groups.get(source)
            if group is None:
                groups[source] = [entry]
            else:
                group.append(entry)
        for source, entries in groups.items():
            await self.journal.commit_entries(source, entries, functools.partial(self.rules.decide, source))
            self.throughput.came_in(len(entries), sum(len(e.msg) for e in entries))
        if groups:
            self.on_outbox()


def peer_host(writer: asyncio.StreamWriter) -> str:
    """The peer's IP address (no port): what a record from an unnamed sender is attributed to."""
    peername = writer.get_extra_info("peername")
    if isinstance(peername, tuple) and peername:
        return str(peername[0])
    return str(peername or "unknown")


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str], Awaitable[None]]


class InputServer:
    """A listening input whose connections can be told to finish: see the module docstring."""

    def __init__(
        self,
        name: str,
        option: str,
        listen: str,
        handler: Handler,
        *,
        tls: ssl.SSLContext | None = None,
        tls_handshake_timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self.option = option  # the config option that sets ``listen``, for error messages
        self.listen = listen
        self.counters = InputCounters()
        self.address = ""
        self._handler = handler
        self._stop: asyncio.Future[None] | None = None
        self._server = TrackedServer(
            name, self._serve, tls=tls, tls_handshake_timeout_s=tls_handshake_timeout_s,
            on_tls_failure=self._tls_failed,
        )  # fmt: skip

    def _tls_failed(self) -> None:
        self.counters.tls_failures += 1

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    @property
    def connections(self) -> int:
        return self._server.connections

    async def start(self) -> str:
        self._stop = asyncio.get_running_loop().create_future()
        host, port = parse_address(self.listen)
        try:
            self.address = await self._server.start(host, port)
        except TransportError as exc:
            raise TransportError(
                f"{self.name}: cannot listen on {self.listen} ({self.option}): {exc.__cause__ or exc}; "
                f'set {self.option} to a free address, or to "" to turn this input off'
            ) from exc
        return self.address

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counters.connections += 1
        await self._handler(reader, writer, peer_host(writer))

    async def read(self, reader: asyncio.StreamReader, timeout_s: float | None) -> bytes:
        """The next bytes from the peer; b"" at its end of stream, or once the input is stopping and the
        peer has paused for ``DRAIN_S``. Raises TimeoutError when nothing came within ``timeout_s``."""
        stop = self._stop
        if stop is None or stop.done():
            try:
                return await asyncio.wait_for(reader.read(READ_BYTES), DRAIN_S)
            except TimeoutError:
                return b""
        # One shared future wakes every blocked read at shutdown; an idle syslog peer must not hold it up.
        read = asyncio.ensure_future(reader.read(READ_BYTES))
        done, _ = await asyncio.wait((read, stop), timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        if read in done:
            return read.result()
        read.cancel()  # nothing was consumed: a cancelled StreamReader.read leaves its buffer intact
        await asyncio.wait((read,))
        if stop in done:
            return await self.read(reader, None)
        raise TimeoutError

    async def shutdown(self, deadline_s: float) -> None:
        """Stop accepting; let every connection commit what it received (up to the deadline); close."""
        if self._stop is None or self._stop.done():
            return
        self._stop.set_result(None)
        await self._server.shutdown(deadline_s)
        log.info("%s stopped: %s", self.name, self.counters.summary())


class ServedInput:
    """An input that is one ``InputServer``: what the relay starts, names in READY, and stops."""

    name = ""
    server: InputServer

    @property
    def enabled(self) -> bool:
        return self.server.enabled

    async def start(self) -> str:
        return await self.server.start()

    async def shutdown(self, deadline_s: float) -> None:
        await self.server.shutdown(deadline_s)
