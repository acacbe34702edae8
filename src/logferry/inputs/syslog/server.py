"""The relay's syslog input over TCP (RFC 6587): frames, parses and journals each connection's messages.

Per connection: bytes go through a ``SyslogFramer`` (octet counting or LF/NUL, chosen by the first byte),
each frame becomes an entry (``parse.frame_entry``: RFC 5424, RFC 3164 and variations, or raw with
``parse_error``), and each read's entries are committed through the ``JournalFeed``, grouped by sending
host, which is the source, so each host's seqs come from the journal's counter. The next read waits for
that commit, so a fast sender is slowed by TCP itself and memory stays bounded by one read plus one
message per connection.

Bad peers: a message longer than the limit is cut and flagged; a peer that starts a message and stalls for
``frame_timeout_s`` has what it sent kept (flagged) and is disconnected; a reset connection keeps what
arrived. Each case is logged and counted, and other connections never notice.

With a TLS context (RFC 5425) the listener does the handshake and this input sees the decrypted stream;
RFC 5425 mandates octet counting, and LF framing is still accepted, as on the plain port.

Plain syslog over TCP has no acknowledgement: a sender cannot know what the relay committed. This input
must never drop a message it received, never decide fates itself, and never let one peer stall another.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Sequence

from logferry.errors import StoreError
from logferry.inputs.syslog.feed import InputServer, JournalFeed, ServedInput
from logferry.inputs.syslog.framing import Frame, SyslogFramer
from logferry.inputs.syslog.parse import frame_entry
from logferry.model import Entry

COMMITS_IN_FLIGHT = 4  # commits a connection may have queued while it reads on (bounded memory)

log = logging.getLogger("logferry.syslog")

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024


class SyslogInput(ServedInput):
    """``syslog_listen``: RFC 5424 / RFC 3164 messages over TCP, octet counted or LF/NUL framed; with a TLS
    context, ``syslog_tls_listen``: the same over TLS (RFC 5425), named ``syslog_tls`` in READY."""

    name = "syslog"

    def __init__(
        self,
        feed: JournalFeed,
        listen: str,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        frame_timeout_s: float = 30.0,
        tls: ssl.SSLContext | None = None,
        tls_handshake_timeout_s: float = 10.0,
    ) -> None:
        self.feed = feed
        self.max_message_bytes = max_message_bytes
        self.frame_timeout_s = frame_timeout_s
        if tls is not None:  # RFC 5425: the same octet-counted stream, inside TLS, on its own port
            self.name = "syslog_tls"
        option = f"{self.name}_listen"
        self.server = InputServer(f"relay {self.name}", option, listen, self._connection, tls=tls,
                                  tls_handshake_timeout_s=tls_handshake_timeout_s)  # fmt: skip

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        framer = SyslogFramer(self.max_message_bytes)
        in_flight: list[asyncio.Future[None]] = []
        log.debug("syslog sender %s connected", peer)
        try:
            await self._serve(reader, framer, peer, in_flight)
        finally:
            for outcome in await asyncio.gather(*in_flight, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    self.server.counters.cut_off += 1
                    log.error(
                        "syslog sender %s: a commit failed after the connection ended: %s", peer, outcome
                    )

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        framer: SyslogFramer,
        peer: str,
        in_flight: list[asyncio.Future[None]],
    ) -> None:
        counters = self.server.counters
        try:
            while True:
                # Idle between messages is normal for syslog (senders keep connections open for days);
                # only a message left half-sent is bounded in time.
                timeout = self.frame_timeout_s if framer.buffered else None
                try:
                    data = await self.server.read(reader, timeout)
                except TimeoutError:
                    counters.cut_off += 1
                    log.warning(
                        "syslog sender %s sent part of a message (%d bytes) and nothing more for %.1fs: "
                        "kept what arrived, flagged, and disconnected",
                        peer,
                        framer.buffered,
                        self.frame_timeout_s,
                    )
                    await self._commit(framer.close(), peer)
                    return
                except OSError as exc:
                    log.info("syslog sender %s: connection lost (%s); keeping what arrived", peer, exc)
                    await self._commit(framer.close(), peer)
                    return
                if not data:
                    await self._commit(framer.close(), peer)
                    return
                frames = framer.feed(data)
                if frames:
                    # Read on while earlier commits finish: the journal's writer queue keeps their order.
                    in_flight.append(asyncio.ensure_future(self._commit(frames, peer)))
                    if len(in_flight) >= COMMITS_IN_FLIGHT:
                        await in_flight.pop(0)
        except StoreError as exc:
            counters.cut_off += 1
            log.error("syslog sender %s disconnected: the journal refused a commit: %s", peer, exc)

    async def _commit(self, frames: Sequence[Frame], peer: str) -> None:
        if not frames:
            return
        received_ns = time.time_ns()
        entries = [frame_entry(f, peer, received_ns) for f in frames]
        self._count(entries, frames, peer)
        await self.feed.commit((e.host, e) for e in entries)

    def _count(self, entries: Sequence[Entry], frames: Sequence[Frame], peer: str) -> None:
        counters = self.server.counters
        counters.messages += len(entries)
        for entry, frame in zip(entries, frames, strict=True):
            if "parse_error" in entry.fields:
                counters.parse_errors += 1
                if counters.parse_errors <= 10 or counters.parse_errors % 1000 == 0:
                    # Kept raw, so nothing is lost; the log only has to show that it happens, not flood.
                    log.warning(
                        "syslog sender %s: message kept raw (%s); %d so far",
                        peer,
                        entry.fields["parse_error"],
                        counters.parse_errors,
                    )
            if frame.cut:
                counters.truncated += 1
                log.warning(
                    "syslog sender %s: a %d-byte message was cut to %d bytes (syslog_max_message_bytes)",
                    peer,
                    frame.size,
                    len(frame.data),
                )
