"""Cut a syslog TCP stream into messages: RFC 6587 octet counting or LF/NUL framing, detected per connection.

The framer is sans-IO: :meth:`SyslogFramer.feed` takes the bytes that arrived and returns the complete
messages they finish; :meth:`SyslogFramer.close` is called when the peer closed and returns what was left.
The result depends only on the bytes, never on how they were split into reads (a property test checks it).

Detection (RFC 6587 §3.4): the first byte of a connection decides. A digit means octet counting
(``MSG-LEN SP SYSLOG-MSG``, §3.4.1); anything else means non-transparent framing, where a message ends at
LF or NUL (§3.4.2; a trailing CR is removed). A sender that starts with a digit but then writes something
that is not a length header (a bare timestamp line, say) is not octet counting after all: the framer
switches the connection to LF framing from that point, so its bytes are still delivered as messages.
Whitespace between octet-counted frames (some senders add a LF after each frame) is skipped.

Bounds: a message longer than ``max_message_bytes`` is cut to its first ``max_message_bytes`` bytes and
delivered with ``size`` telling how long it was; the rest is skipped while it arrives, so memory stays bounded
by one message plus one read, and the connection's other messages are unaffected.

This module must never do I/O, decode text, or lose a message: every byte sequence between two terminators
(or one declared length) comes out as exactly one :class:`Frame`, possibly cut.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

MAX_LENGTH_DIGITS = 10
"""A MSG-LEN longer than this is not a length header (no sender means 10 GB); the stream is LF framed."""

_SEPARATORS = b"\r\n\x00 \t"


class Mode(enum.Enum):
    """How a connection frames its messages; decided by its first byte."""

    UNKNOWN = 0
    OCTET_COUNTING = 1
    NON_TRANSPARENT = 2  # LF or NUL terminated


@dataclass(slots=True, frozen=True)
class Frame:
    """One message as sent.

    ``data`` is the message (without length header or terminator), at most ``max_message_bytes`` long.
    ``size`` is how long the sender made it: larger than ``len(data)`` when the message was cut.
    ``complete`` is False only for a message the peer abandoned mid-way (an octet-counted frame that
    ended before its declared length), delivered by :meth:`SyslogFramer.close`.
    """

    data: bytes
    size: int
    complete: bool = True

    @property
    def cut(self) -> bool:
        return self.size > len(self.data)


class SyslogFramer:
    """Splits one connection's bytes into bounded :class:`Frame` objects; see the module docstring."""

    __slots__ = ("_buf", "_cut_head", "_cut_size", "_skip", "max_message_bytes", "mode")

    def __init__(self, max_message_bytes: int, mode: Mode = Mode.UNKNOWN) -> None:
        if max_message_bytes < 16:
            raise ValueError(f"max_message_bytes must be at least 16, got {max_message_bytes}")
        self.max_message_bytes = max_message_bytes
        self.mode = mode
        self._buf = bytearray()
        # An over-long message being skipped: its head (kept), its size so far, and (octet counting)
        # how many of its bytes are still to come.
        self._cut_head: bytes | None = None
        self._cut_size = 0
        self._skip = 0

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished message held or being skipped (0: between messages)."""
        return len(self._buf) + (self._cut_size if self._cut_head is not None else 0)

    def feed(self, data: bytes) -> list[Frame]:
        """The messages that ``data`` completes, in order."""
        if not data:
            return []
        if self.mode is Mode.UNKNOWN:
            self.mode = Mode.OCTET_COUNTING if data[:1].isdigit() else Mode.NON_TRANSPARENT
        out: list[Frame] = []
        if self.mode is Mode.OCTET_COUNTING:
            self._buf += data
            self._octets(out)
        else:
            self._lines(data, out)
        return out

    def close(self) -> list[Frame]:
        """The peer closed, or paused and is taken to have finished (the line input's rule): whatever it
        left unfinished, as messages (never silently discarded). Framing may go on afterwards."""
        out: list[Frame] = []
        if self._cut_head is not None:
            # An over-long message: octet counted and short of its length, or a final line without LF.
            complete = self.mode is Mode.NON_TRANSPARENT
            out.append(Frame(self._cut_head, self._cut_size, complete))
            self._cut_head, self._cut_size, self._skip = None, 0, 0
        rest = bytes(self._buf).strip(_SEPARATORS) if self.mode is Mode.OCTET_COUNTING else bytes(self._buf)
        self._buf.clear()
        if self.mode is Mode.NON_TRANSPARENT:
            rest = rest.removesuffix(b"\r")
            if rest:
                out.append(Frame(rest, len(rest)))
        elif rest:
            # An octet-counted frame shorter than its header said: deliver its text, header included, so
            # the message and how it broke are both visible.
            limit = self.max_message_bytes
            out.append(Frame(rest[:limit], len(rest), complete=False))
        return out

    # --------------------------------------------------------------------------------- octet counting

    def _octets(self, out: list[Frame]) -> None:
        buf, limit = self._buf, self.max_message_bytes
        pos, end = 0, len(buf)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                pos += step
                self._skip -= step
                if self._skip:
                    break
                assert self._cut_head is not None
                out.append(Frame(self._cut_head, self._cut_size))
                self._cut_head, self._cut_size = None, 0
                continue
            if buf[pos] in _SEPARATORS:
                pos += 1
                continue
            space = buf.find(b" ", pos, pos + MAX_LENGTH_DIGITS + 1)
            header = bytes(buf[pos:space]) if space >= 0 else bytes(buf[pos : pos + MAX_LENGTH_DIGITS + 1])
            if space < 0 and header.isdigit() and len(header) <= MAX_LENGTH_DIGITS:
                break  # the length header is still arriving
            if space < 0 or not header.isdigit() or header[0] == 0x30:  # no length, or a leading zero
                # Not octet counting after all: the rest of this connection is LF framed.
                self.mode = Mode.NON_TRANSPARENT
                rest = bytes(buf[pos:])
                buf.clear()
                self._lines(rest, out)
                return
            size = int(header)
            start = space + 1
            if size <= limit:
                if end - start < size:
                    break
                out.append(Frame(bytes(buf[start : start + size]), size))
                pos = start + size
            else:
                if end - start < limit:
                    break  # keep the header until the head of the long message is here
                self._cut_head = bytes(buf[start : start + limit])
                self._cut_size = size
                self._skip = size - limit
                pos = start + limit
        del buf[:pos]

    # ---------------------------------------------------------------------------------- LF / NUL framing

    def _lines(self, data: bytes, out: list[Frame]) -> None:
        limit = self.max_message_bytes
        if self._cut_head is not None:
            # Skipping the rest of an over-long line until its terminator.
            ends = [i for i in (data.find(b"\n"), data.find(b"\x00")) if i >= 0]
            if not ends:
                self._cut_size += len(data)
                return
            first = min(ends)
            out.append(Frame(self._cut_head, self._cut_size + first))
            self._cut_head, self._cut_size = None, 0
            data = data[first + 1 :]
        buf = self._buf
        if buf:
            buf += data
            text = bytes(buf)
            buf.clear()
        else:
            text = data
        if b"\x00" in text:
            text = text.replace(b"\x00", b"\n")
        pieces = text.split(b"\n")
        rest = pieces.pop()
        for piece in pieces:
            # The cut is decided on the raw length (CR included) so that it cannot depend on whether the
            # terminator arrived in the same read as the line.
            if len(piece) > limit:
                out.append(Frame(piece[:limit], len(piece)))
            elif piece:
                line = piece[:-1] if piece[-1] == 0x0D else piece
                if line:
                    out.append(Frame(line, len(line)))
        if len(rest) > limit:
            self._cut_head = rest[:limit]
            self._cut_size = len(rest)
        else:
            buf += rest
