"""The relay's line input: the seed prototype's ``name&&message`` protocol, answered with one reply each.

The prototype client connects, sends ``tester&&Hello, World!`` with no newline, waits for one reply of up
to 1024 bytes, prints it and closes. Such a client cannot signal the end of its message, so a message ends
at the first of:

- a newline (``\\n``, a ``\\r`` before it is removed; NUL also ends a message);
- a pause: nothing more arrives for ``idle_s`` (default 50 ms) after some bytes — the client is waiting for
  its reply, so what it sent is complete;
- the end of the stream (the peer half-closed or closed).

A pause inside a message (a sender slower than ``idle_s`` between two halves) therefore splits it in two;
senders that can end their messages with a newline should.

``name&&message``: the name (stripped; printable, at most 128 characters) becomes the source and the message
the record (level guessed from words such as ERROR, host = the peer's address). Anything else — no ``&&``,
an empty or unprintable name — is kept as a raw record of the peer's address with a ``parse_error`` field,
and answered with the invalid-request reply. A message longer than ``max_message_bytes`` is cut and gets a
``truncated`` field.

Replies mirror the message's ending: a newline-terminated message gets its reply with a newline; one ended
by a pause or the end of the stream gets the bare reply, exactly what the prototype's server sent
(``어서와! tester``). Replies are written only after the messages are journaled (ack means durable), and a
peer that leaves them unread for ``write_timeout_s`` is disconnected.

This module must never reply before the journal commit, and never drop a message it received.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from logferry.errors import StoreError
from logferry.inputs.levels import detect_level
from logferry.inputs.syslog.feed import InputServer, JournalFeed, ServedInput
from logferry.inputs.syslog.framing import Frame, Mode, SyslogFramer
from logferry.model import Entry, Level

log = logging.getLogger("logferry.line")

DEFAULT_REPLY = "어서와! {name}"
DEFAULT_INVALID_REPLY = "invalid request"
MAX_NAME_CHARS = 128
SEPARATOR = "&&"
WRITE_BUFFER_BYTES = 64 * 1024  # beyond this, replies wait for the peer to read (drain blocks)


def parse_line(data: bytes, peer: str, received_ns: int) -> tuple[str, Entry, bool]:
    """``(source, entry, valid)`` for one message; never raises. An invalid one is kept raw."""
    text = data.decode("utf-8", "replace")
    name, sep, message = text.partition(SEPARATOR)
    name = name.strip()
    if sep and name and len(name) <= MAX_NAME_CHARS and name.isprintable():
        return name, Entry(received_ns, detect_level(message), peer, "", message), True
    if not sep:
        why = f"no '{SEPARATOR}' between name and message"
    elif not name:
        why = f"empty name before '{SEPARATOR}'"
    else:
        why = f"name longer than {MAX_NAME_CHARS} characters or not printable"
    return peer, Entry(received_ns, int(Level.INFO), peer, "", text, {"parse_error": why}), False


class LineInput(ServedInput):
    """``line_listen``: the prototype's line protocol; see the module docstring."""

    name = "line"

    def __init__(
        self,
        feed: JournalFeed,
        listen: str,
        *,
        max_message_bytes: int = 64 * 1024,
        idle_s: float = 0.05,
        reply: str = DEFAULT_REPLY,
        invalid_reply: str = DEFAULT_INVALID_REPLY,
        write_timeout_s: float = 30.0,
    ) -> None:
        self.feed = feed
        self.max_message_bytes = max_message_bytes
        self.idle_s = idle_s
        self.reply = reply
        self.invalid_reply = invalid_reply
        self.write_timeout_s = write_timeout_s
        self.server = InputServer("relay line", "line_listen", listen, self._connection)

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        # The LF/NUL half of the syslog framer: bounded messages, cut and flagged when too long.
        framer = SyslogFramer(self.max_message_bytes, Mode.NON_TRANSPARENT)
        writer.transport.set_write_buffer_limits(high=WRITE_BUFFER_BYTES)
        try:
            while True:
                try:
                    data = await self.server.read(reader, self.idle_s if framer.buffered else None)
                except TimeoutError:
                    # The peer paused after part of a line: it is waiting for a reply, so that was a message.
                    if not await self._answer(framer.close(), peer, writer, newline=False):
                        return
                    continue
                except OSError as exc:
                    log.info("line sender %s: connection lost (%s); keeping what arrived", peer, exc)
                    await self._commit(framer.close(), peer)
                    return
                if not data:
                    await self._answer(framer.close(), peer, writer, newline=False)
                    return
                frames = framer.feed(data)
                if frames and not await self._answer(frames, peer, writer, newline=True):
                    return
        except StoreError as exc:
            self.server.counters.cut_off += 1
            log.error("line sender %s disconnected: the journal refused a commit: %s", peer, exc)

    async def _commit(self, frames: Sequence[Frame], peer: str) -> list[tuple[str, Entry, bool]]:
        received_ns = time.time_ns()
        parsed: list[tuple[str, Entry, bool]] = []
        counters = self.server.counters
        for frame in frames:
            source, entry, valid = parse_line(frame.data, peer, received_ns)
            if frame.cut:
                counters.truncated += 1
                log.warning(
                    "line sender %s: a %d-byte message was cut to %d bytes (line_max_message_bytes)",
                    peer,
                    frame.size,
                    len(frame.data),
                )
                entry = Entry(
                    entry.ts_ns,
                    entry.level,
                    entry.host,
                    "",
                    entry.msg,
                    entry.fields | {"truncated": str(frame.size)},
                )
            if not valid:
                counters.parse_errors += 1
            parsed.append((source, entry, valid))
        counters.messages += len(parsed)
        if parsed:
            await self.feed.commit((source, entry) for source, entry, _ in parsed)
        return parsed

    async def _answer(
        self, frames: Sequence[Frame], peer: str, writer: asyncio.StreamWriter, *, newline: bool
    ) -> bool:
        """Journal the messages, then reply to each; False when the peer is gone or was cut off."""
        parsed = await self._commit(frames, peer)
        if not parsed:
            return True
        end = "\n" if newline else ""
        replies = "".join(
            (self.reply.replace("{name}", source) if valid else self.invalid_reply) + end
            for source, _, valid in parsed
        )
        try:
            writer.write(replies.encode("utf-8"))
            await asyncio.wait_for(writer.drain(), self.write_timeout_s)
        except TimeoutError:
            self.server.counters.cut_off += 1
            writer.transport.abort()  # close() would wait, forever, to flush replies nobody reads
            log.warning(
                "line sender %s left its replies unread for %.1fs: disconnected (its messages are journaled)",
                peer,
                self.write_timeout_s,
            )
            return False
        except OSError as exc:
            log.info("line sender %s is gone before its reply (%s); its messages are journaled", peer, exc)
            return False
        return True
