"""What both logferry/1 connection sides share: the transition table lookups, framing, the outgoing queue,
closing and the heartbeat timers. ``client.py`` and ``server.py`` build the two sides on it;
``connection.py`` is the public face.

This module must never touch a socket, asyncio, a clock or a random source: time is passed in.
"""

from __future__ import annotations

import abc
from typing import Generic, NoReturn

from logferry.errors import LocalProtocolError, RemoteProtocolError
from logferry.protocol.framing import FrameDecoder, encode_frame
from logferry.protocol.messages import (
    Code,
    Goodbye,
    Message,
    PeerRole,
    Ping,
    Pong,
)
from logferry.protocol.state import (
    TRANSITIONS,
    Dir,
    E,
    PeerClosed,
    Side,
    State,
)

MISSED_HEARTBEATS = 3  # silence for this many heartbeat intervals means the peer is gone
MAX_REASON_CHARS = 200  # a Goodbye reason we generate is cut here: it explains, it does not dump
KNOWN_ROLES = frozenset(int(r) for r in PeerRole)
MAX_OPEN_QUERIES = 16  # unanswered reconciliation queries a server buffers per connection


def ranges_ok(ranges: list[tuple[int, int]]) -> bool:
    return all(1 <= lo <= hi for lo, hi in ranges)


def remote_error(message: str, code: Code) -> RemoteProtocolError:
    return RemoteProtocolError(message, code=code)


class BaseConnection(abc.ABC, Generic[E]):
    """What both sides share: the transition table, framing, outgoing queue and heartbeat timers."""

    def __init__(self, side: Side, state: State, max_frame_bytes: int, handshake_timeout_s: float) -> None:
        if handshake_timeout_s <= 0:
            raise LocalProtocolError(f"handshake_timeout_s must be positive, got {handshake_timeout_s}")
        self._side = side
        self._state = state
        self._decoder = FrameDecoder(max_frame_bytes)
        self._out = bytearray()
        self._handshake_timeout_s = handshake_timeout_s
        self._handshake_deadline: float | None = None
        self._heartbeat_s: float | None = None
        self._last_recv = 0.0
        self._last_send = 0.0
        self._ping_nonce = 0

    @property
    def state(self) -> State:
        return self._state

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet decoded: a partial frame the transport may time out."""
        return self._decoder.buffered

    def _next_state(self, direction: Dir, kind: type[Message]) -> State:
        """The state after this move, or raise; never commits (callers validate first, then assign)."""
        new = TRANSITIONS.get((self._side, self._state, direction, kind))
        if new is not None:
            return new
        if direction is Dir.RECV:
            raise remote_error(
                f"{self._side.value} received {kind.__name__} in state {self._state.value}; "
                "the peer does not follow logferry/1",
                Code.PROTOCOL,
            )
        raise LocalProtocolError(
            f"cannot send {kind.__name__} in state {self._state.value}", code=Code.PROTOCOL
        )

    def _send(self, msg: Message) -> bytes:
        self._state = self._next_state(Dir.SEND, type(msg))
        return encode_frame(msg)

    def _queue(self, msg: Message) -> None:
        self._out += self._send(msg)

    def _abort(self, exc: RemoteProtocolError) -> None:
        """Queue the error frame for ``exc`` (once) and end the connection."""
        if self._state is State.CLOSED:
            return
        # The peer learns the code; for UNAUTHORIZED it does not learn whether the source or the token was
        # wrong (that would let it probe for known sources). Our own log gets the full message.
        reason = "authentication failed" if exc.code == Code.UNAUTHORIZED else str(exc)
        self._queue(Goodbye(exc.code, reason[:MAX_REASON_CHARS]))

    def _fail_now(self, message: str, code: Code) -> NoReturn:
        exc = remote_error(message, code)
        self._abort(exc)
        raise exc

    # ---- bytes in, events out ---------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Buffer bytes read from the peer. Bytes arriving after the connection closed are dropped."""
        if self._state is State.CLOSED:
            return
        # Any byte proves the peer alive, so a large frame arriving slowly does not count as silence.
        self._last_recv = now
        try:
            self._decoder.feed(data)
        except RemoteProtocolError as exc:
            self._abort(exc)
            raise

    def next_event(self) -> E | None:
        """The next event, or None when more data is needed (or the connection is closed)."""
        try:
            while self._state is not State.CLOSED:
                msg = self._decoder.next_message()
                if msg is None:
                    return None
                self._state = self._next_state(Dir.RECV, type(msg))
                event = self._handle(msg)
                if event is not None:
                    return event
        except RemoteProtocolError as exc:
            self._abort(exc)
            raise
        return None

    @abc.abstractmethod
    def _handle(self, msg: Message) -> E | None:
        """One decoded message → the side's event, or None; each side defines what it accepts."""

    def _handle_common(self, msg: Message) -> PeerClosed | None:
        """Ping, Pong and Goodbye mean the same on both sides."""
        if isinstance(msg, Ping):
            self._queue(Pong(msg.nonce))
        elif isinstance(msg, Goodbye):
            return PeerClosed(msg.code, msg.reason)
        # A Pong needs nothing more: receive_data already recorded that the peer is alive.
        return None

    def data_to_send(self) -> bytes:
        """Bytes queued by automatic replies; write them to the peer, in order, before anything later."""
        out = bytes(self._out)
        self._out.clear()
        return out

    # ---- closing ----------------------------------------------------------------------------------------

    def close(self, code: Code = Code.NORMAL, reason: str = "") -> bytes:
        """A Goodbye frame; the connection is CLOSED. Closing a closed connection sends nothing."""
        if self._state is State.CLOSED:
            return b""
        return self._send(Goodbye(int(code), reason))

    def fail(self, code: Code, reason: str) -> bytes:
        """An error Goodbye (the application's own verdict, e.g. SHUTTING_DOWN or INTERNAL)."""
        return self.close(code, reason)

    # ---- timers -----------------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must next be called (same clock as ``now``); None: no timer needed."""
        if self._state is State.CLOSED:
            return None
        if self._state is not State.OPEN or self._heartbeat_s is None:
            return self._handshake_deadline
        hb = self._heartbeat_s
        ping_at = max(self._last_recv, self._last_send) + hb
        return min(ping_at, self._last_recv + MISSED_HEARTBEATS * hb)

    def handle_timer(self, now: float) -> None:
        """Queue a Ping when idle; raise ``RemoteProtocolError(TIMEOUT)`` if the peer is too slow or gone."""
        if self._state is State.CLOSED:
            return
        if self._state is not State.OPEN:
            if self._handshake_deadline is not None and now >= self._handshake_deadline:
                self._fail_now(
                    f"the handshake did not finish within {self._handshake_timeout_s} s", Code.TIMEOUT
                )
            return
        hb = self._heartbeat_s
        if hb is None:
            return
        silent = now - self._last_recv
        if silent >= MISSED_HEARTBEATS * hb:
            self._fail_now(f"nothing received for {silent:.1f} s (heartbeat every {hb} s)", Code.TIMEOUT)
        if now >= max(self._last_recv, self._last_send) + hb:
            self._ping_nonce += 1
            self._queue(Ping(self._ping_nonce))
            self._last_send = now

    def _opened(self, heartbeat_ms: int) -> None:
        self._handshake_deadline = None
        self._heartbeat_s = heartbeat_ms / 1000.0
