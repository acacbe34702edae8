"""Moves a sans-IO logferry/1 connection's bytes over an asyncio stream.

The wire reads, feeds the core with the current monotonic time, flushes the core's automatic replies, and
arms the only timer (the core's ``next_deadline``). Two bounds the core cannot see are enforced here: a
frame that is still incomplete after ``frame_timeout_s`` (a peer trickling one byte per second), and a write
that cannot drain within ``write_timeout_s`` (a peer that stopped reading). Either ends the connection with
an error frame. Network errors surface as ``TransportError``; protocol errors as the core raised them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Generic, TypeVar

from logferry.errors import RemoteProtocolError, TransportError
from logferry.protocol.connection import ClientConnection, ClientEvent, ServerConnection, ServerEvent
from logferry.protocol.framing import FramePiece
from logferry.protocol.messages import Code

READ_CHUNK = 1 << 20
# Above this much unsent data, a write waits for the peer to drain it (bounded memory per connection).
WRITE_HIGH_WATER = 1 << 20
# A larger write is handed to the transport in pieces of this size (``Wire.write``).
WRITE_SLICE = 1 << 18

C = TypeVar("C", bound=ClientConnection | ServerConnection)


class Wire(Generic[C]):
    """One connection: a protocol core plus the stream it speaks over."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: C,
        *,
        peer: str,
        write_timeout_s: float = 30.0,
        frame_timeout_s: float = 60.0,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = conn
        self.peer = peer
        self._write_timeout_s = write_timeout_s
        self._frame_timeout_s = frame_timeout_s
        self._partial_since: float | None = None
        self._write_lock = asyncio.Lock()

    @staticmethod
    def now() -> float:
        return time.monotonic()

    async def write(self, data: FramePiece | Sequence[FramePiece]) -> None:
        """Write frames (a buffer, or one frame's pieces in order), waiting (bounded) for the peer to read
        them when the buffer is high.

        Writes queue on one lock, in order, so a frame is never interleaved with another. A large write
        goes in ``WRITE_SLICE`` pieces, each once the transport's buffer drained: asyncio (3.11) copies
        whatever the socket did not take into its buffer and shifts that buffer after every send, megabytes
        per 4 MiB chunk."""
        parts: Sequence[FramePiece] = [data] if isinstance(data, bytes | bytearray | memoryview) else data
        total = sum(map(len, parts))
        if not total:
            return
        if self.writer.is_closing():
            raise TransportError(f"connection to {self.peer} is closed")
        async with self._write_lock:
            transport = self.writer.transport
            if total <= WRITE_SLICE:
                self.writer.writelines(parts)
                if transport.get_write_buffer_size() > WRITE_HIGH_WATER:
                    await self._drain()
                return
            views = [memoryview(part) for part in parts]
            pieces = [
                view[pos : pos + WRITE_SLICE] for view in views for pos in range(0, len(view), WRITE_SLICE)
            ]
            sent = 0
            try:
                for piece in pieces:
                    if transport.get_write_buffer_size() > 0:
                        await self._drain()
                    self.writer.write(piece)
                    sent += 1
            except BaseException:
                # Cancelled or failed halfway: the rest of the frame goes to the buffer, never half a frame.
                if sent < len(pieces) and not self.writer.is_closing():
                    self.writer.writelines(pieces[sent:])
                raise

    async def _drain(self) -> None:
        try:
            await asyncio.wait_for(self.writer.drain(), self._write_timeout_s)
        except TimeoutError as exc:
            raise RemoteProtocolError(
                f"{self.peer} has not read our data for {self._write_timeout_s:.0f} s", code=Code.TIMEOUT
            ) from exc
        except (ConnectionError, OSError) as exc:
            raise TransportError(f"writing to {self.peer} failed: {exc}") from exc

    async def flush(self) -> None:
        await self.write(self.conn.data_to_send())

    async def next_event(self) -> ClientEvent | ServerEvent | None:
        """The next protocol event, or None when the peer closed the stream."""
        conn = self.conn
        while True:
            event = conn.next_event()
            await self.flush()
            if event is not None:
                return event
            now = self.now()
            self._check_partial(now)
            deadline = conn.next_deadline()
            if self._partial_since is not None:
                partial_deadline = self._partial_since + self._frame_timeout_s
                deadline = partial_deadline if deadline is None else min(deadline, partial_deadline)
            timeout = None if deadline is None else max(0.0, deadline - now)
            try:
                # asyncio.timeout, not wait_for: no task is made per read (3.11), and reads are most calls.
                async with asyncio.timeout(timeout):
                    data = await self.reader.read(READ_CHUNK)
            except TimeoutError:
                conn.handle_timer(self.now())
                self._check_partial(self.now())
                await self.flush()
                continue
            except (ConnectionError, OSError) as exc:
                raise TransportError(f"reading from {self.peer} failed: {exc}") from exc
            if not data:
                return None
            conn.receive_data(data, self.now())

    def _check_partial(self, now: float) -> None:
        if self.conn.buffered_bytes == 0:
            self._partial_since = None
            return
        if self._partial_since is None:
            self._partial_since = now
        elif now - self._partial_since >= self._frame_timeout_s:
            frame = self.conn.fail(Code.TIMEOUT, f"a frame took over {self._frame_timeout_s:.0f} s to arrive")
            self.writer.write(frame)
            raise RemoteProtocolError(
                f"{self.peer} sends too slowly: a frame is incomplete after {self._frame_timeout_s:.0f} s",
                code=Code.TIMEOUT,
            )

    async def close(self, frame: bytes = b"") -> None:
        """Send a last frame (if any) and close, without waiting long for a peer that does not read."""
        try:
            if frame and not self.writer.is_closing():
                self.writer.write(frame)
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        except (TimeoutError, ConnectionError, OSError):
            self.writer.transport.abort()
