"""The logferry/1 state machines: ``ClientConnection`` (agent or relay side) and ``ServerConnection``.

Bytes in → events out, calls in → bytes out, in the manner of h11. ``receive_data(data, now)`` buffers what
the socket read; ``next_event()`` returns the next typed event or None (more data needed); automatic replies
(Auth after Challenge, Pong after Ping, Ping on an idle heartbeat, Goodbye after an error) pile up in
``data_to_send()``; methods the application calls (``send_batch``, ``welcome``, ``ack`` …) return the frame
to write. Every legal move is one row of ``TRANSITIONS``; anything else raises ``RemoteProtocolError``
(the peer's fault: a Goodbye with its code is queued and the connection is CLOSED) or
``LocalProtocolError`` (the caller's fault: nothing is sent, the state is unchanged).

Authentication failures are reported as ``RemoteProtocolError(code=Code.UNAUTHORIZED)`` rather than
``AuthError``: the transport handles every peer fault the same way (flush the Goodbye, drop the socket).

This module must never touch a socket, asyncio, a clock or a random source: time (``now``, monotonic
seconds) and nonces are passed in, and only the transport arms timers (``next_deadline``/``handle_timer``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, NoReturn

from logferry.errors import LocalProtocolError, RemoteProtocolError
from logferry.protocol import auth
from logferry.protocol.framing import HEADER_BYTES, FrameDecoder, encode_frame
from logferry.protocol.messages import (
    MAC_BYTES,
    NONCE_BYTES,
    SUPPORTED_VERSIONS,
    Ack,
    Auth,
    Batch,
    Challenge,
    Code,
    Credit,
    Goodbye,
    Hello,
    ItemsAnswer,
    ItemsQuery,
    Message,
    Nack,
    PeerRole,
    Ping,
    Pong,
    ReconcileAnswer,
    ReconcileQuery,
    ResendRequest,
    Unavailable,
    Welcome,
)
from logferry.protocol.state import (
    TRANSITIONS,
    Acked,
    Answered,
    Authenticated,
    BatchReceived,
    ClientEvent,
    CreditChanged,
    Dir,
    E,
    Nacked,
    Opened,
    PeerClosed,
    QueryReceived,
    ResendRequested,
    ServerEvent,
    Side,
    State,
    UnavailableReported,
)

__all__ = [
    "Acked",
    "Answered",
    "Authenticated",
    "BatchReceived",
    "ClientConnection",
    "ClientEvent",
    "CreditChanged",
    "Nacked",
    "Opened",
    "PeerClosed",
    "QueryReceived",
    "ResendRequested",
    "ServerConnection",
    "ServerEvent",
    "State",
    "UnavailableReported",
]

MISSED_HEARTBEATS = 3  # silence for this many heartbeat intervals means the peer is gone
MAX_REASON_CHARS = 200  # a Goodbye reason we generate is cut here: it explains, it does not dump
_ROLES = frozenset(int(r) for r in PeerRole)
MAX_OPEN_QUERIES = 16  # unanswered reconciliation queries a server buffers per connection


def _ranges_ok(ranges: list[tuple[int, int]]) -> bool:
    return all(1 <= lo <= hi for lo, hi in ranges)


def _remote(message: str, code: Code) -> RemoteProtocolError:
    return RemoteProtocolError(message, code=code)


class _Connection(Generic[E]):
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
            raise _remote(
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
        exc = _remote(message, code)
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

    def _handle(self, msg: Message) -> E | None:
        raise NotImplementedError

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


class ClientConnection(_Connection[ClientEvent]):
    """The side that dials: an agent talking to a relay, or a relay talking to a collector."""

    def __init__(
        self,
        *,
        source: str,
        role: PeerRole,
        token: bytes | None,
        client_nonce: bytes,
        max_frame_bytes: int,
        software: str = "",
        handshake_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(Side.CLIENT, State.IDLE, max_frame_bytes, handshake_timeout_s)
        if len(client_nonce) != NONCE_BYTES:
            raise LocalProtocolError(f"client_nonce must be {NONCE_BYTES} fresh random bytes")
        if not source:
            raise LocalProtocolError("source must not be empty")
        self.source = source
        self.role = role
        self._token = token or None  # an empty token means "no token", never an empty HMAC key
        self._client_nonce = client_nonce
        self._software = software
        self.version = 0
        self._server_nonce = b""
        self.credit = 0
        self.peer_max_frame_bytes = 0
        self._in_flight: dict[int, str] = {}  # batch_id -> source, for matching Ack/Nack
        self._queries: set[int] = set()  # reconciliation queries awaiting their answer

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def send_query(self, query: ReconcileQuery | ItemsQuery, now: float) -> bytes:
        """A reconciliation query frame (relays only); its answer arrives as an ``Answered`` event."""
        new_state = self._next_state(Dir.SEND, type(query))
        if self.role is not PeerRole.RELAY:
            raise LocalProtocolError("only a relay asks a collector to reconcile", code=Code.PROTOCOL)
        if query.query_id in self._queries:
            raise LocalProtocolError(f"query {query.query_id} is already awaiting its answer")
        frame = encode_frame(query)
        if len(frame) - HEADER_BYTES > self.peer_max_frame_bytes:
            raise LocalProtocolError(
                f"query {query.query_id} is {len(frame) - HEADER_BYTES} bytes, over the server's limit; "
                "ask about fewer ranges at once",
                code=Code.TOO_LARGE,
            )
        self._state = new_state
        self._queries.add(query.query_id)
        self._last_send = now
        return frame

    def unavailable(self, request_id: int, ranges: list[tuple[int, int]], now: float) -> bytes:
        """Tell the relay which seqs of a ResendRequest this agent no longer has."""
        new_state = self._next_state(Dir.SEND, Unavailable)
        if not _ranges_ok(ranges):
            raise LocalProtocolError(f"invalid seq ranges {ranges}")
        frame = encode_frame(Unavailable(request_id, self.source, ranges))
        self._state = new_state
        self._last_send = now
        return frame

    def start(self, now: float) -> bytes:
        """The Hello frame; starts the handshake timer."""
        hello = Hello(
            list(SUPPORTED_VERSIONS), int(self.role), self.source, self._client_nonce, self._software
        )
        frame = self._send(hello)
        self._last_send = self._last_recv = now
        self._handshake_deadline = now + self._handshake_timeout_s
        return frame

    def send_batch(self, batch: Batch, now: float) -> bytes:
        """The Batch frame; only when open and the credit window has room."""
        new_state = self._next_state(Dir.SEND, Batch)
        if len(self._in_flight) >= self.credit:
            raise LocalProtocolError(
                f"the credit window is full ({len(self._in_flight)} of {self.credit} batches in flight); "
                "wait for an Ack, Nack or Credit",
                code=Code.CREDIT_EXCEEDED,
            )
        if batch.batch_id in self._in_flight:
            raise LocalProtocolError(f"batch id {batch.batch_id} is already in flight", code=Code.PROTOCOL)
        frame = encode_frame(batch)
        if len(frame) - HEADER_BYTES > self.peer_max_frame_bytes:
            raise LocalProtocolError(
                f"batch {batch.batch_id} is {len(frame) - HEADER_BYTES} bytes, over the server's limit of "
                f"{self.peer_max_frame_bytes}; send fewer records per batch",
                code=Code.TOO_LARGE,
            )
        self._state = new_state
        self._in_flight[batch.batch_id] = batch.source
        self._last_send = now
        return frame

    def _handle(self, msg: Message) -> ClientEvent | None:
        if isinstance(msg, Challenge):
            self._on_challenge(msg)
            return None
        if isinstance(msg, Welcome):
            return self._on_welcome(msg)
        if isinstance(msg, Ack | Nack):
            source = self._in_flight.pop(msg.batch_id, None)
            if source is None:
                raise _remote(
                    f"{type(msg).__name__} for batch {msg.batch_id}, which is not in flight", Code.PROTOCOL
                )
            if isinstance(msg, Nack):
                return Nacked(msg)
            if msg.source != source:
                raise _remote(
                    f"Ack for batch {msg.batch_id} names source {msg.source!r}, not {source!r}", Code.PROTOCOL
                )
            if any(lo < 1 or lo > hi for lo, hi in msg.ranges):
                raise _remote(
                    f"Ack for batch {msg.batch_id} has an invalid range in {msg.ranges}", Code.MALFORMED
                )
            return Acked(msg)
        if isinstance(msg, ReconcileAnswer | ItemsAnswer):
            if msg.query_id not in self._queries:
                raise _remote(f"answer to query {msg.query_id}, which was never asked", Code.PROTOCOL)
            self._queries.discard(msg.query_id)
            return Answered(msg)
        if isinstance(msg, ResendRequest):
            if msg.source != self.source or not _ranges_ok(msg.ranges):
                raise _remote(
                    f"ResendRequest for source {msg.source!r} ranges {msg.ranges[:4]} is not ours or invalid",
                    Code.PROTOCOL,
                )
            return ResendRequested(msg)
        if isinstance(msg, Credit):
            if msg.credit < 0:
                raise _remote(f"Credit of {msg.credit} is negative", Code.MALFORMED)
            self.credit = msg.credit
            return CreditChanged(msg.credit)
        return self._handle_common(msg)

    def _on_challenge(self, msg: Challenge) -> None:
        if msg.version not in SUPPORTED_VERSIONS:
            raise _remote(f"the server chose version {msg.version}, which we did not offer", Code.VERSION)
        if len(msg.nonce) != NONCE_BYTES:
            raise _remote(f"the server nonce is {len(msg.nonce)} bytes, not {NONCE_BYTES}", Code.MALFORMED)
        self.version, self._server_nonce = msg.version, msg.nonce
        mac = b""
        if self._token is not None:
            mac = auth.client_mac(self._token, msg.version, self.source, msg.nonce, self._client_nonce)
        self._queue(Auth(mac))

    def _on_welcome(self, msg: Welcome) -> Opened:
        if msg.credit < 0 or msg.max_frame_bytes < 1 or msg.heartbeat_ms < 1 or msg.acked_through < 0:
            raise _remote(f"the Welcome carries impossible values: {msg}", Code.MALFORMED)
        # A server without tokens (allow_unknown, or relying on mutual TLS) sends an empty mac: accepted, so a
        # token does not by itself authenticate the server. A mac that is present must be right.
        if self._token is not None and msg.mac:
            expected = auth.server_mac(
                self._token, self.version, self.source, self._server_nonce, self._client_nonce
            )
            if not auth.verify(expected, msg.mac):
                raise _remote(
                    "the server's Welcome mac is wrong: it does not hold our token; check the token on both "
                    "sides, or whether this is the right server",
                    Code.UNAUTHORIZED,
                )
        self.credit = msg.credit
        self.peer_max_frame_bytes = msg.max_frame_bytes
        self._opened(msg.heartbeat_ms)
        return Opened(msg)


class ServerConnection(_Connection[ServerEvent]):
    """The side that accepts: a relay accepting agents, or a collector accepting relays."""

    def __init__(
        self,
        *,
        token_for: Callable[[str], bytes | None],
        allow_unknown: bool,
        credit: int,
        max_frame_bytes: int,
        heartbeat_ms: int,
        server_nonce: bytes,
        handshake_timeout_s: float,
        now: float,
    ) -> None:
        super().__init__(Side.SERVER, State.AWAIT_HELLO, max_frame_bytes, handshake_timeout_s)
        if len(server_nonce) != NONCE_BYTES:
            raise LocalProtocolError(f"server_nonce must be {NONCE_BYTES} fresh random bytes")
        if credit < 0 or heartbeat_ms < 1:
            raise LocalProtocolError(
                f"need credit >= 0 and heartbeat_ms >= 1, got {credit} and {heartbeat_ms}"
            )
        self._token_for = token_for
        self._allow_unknown = allow_unknown
        self.credit = credit
        # Batches the client sent under a larger window may still be on the way when the window shrinks,
        # so a shrink is only a request: the server enforces the largest window it ever granted.
        self._enforced_credit = credit
        self._max_frame_bytes = max_frame_bytes
        self._heartbeat_ms = heartbeat_ms
        self._server_nonce = server_nonce
        # The handshake clock starts when the connection is accepted, so a peer that never speaks times out.
        self._last_send = self._last_recv = now
        self._handshake_deadline = now + handshake_timeout_s
        self.source = ""
        self.role = PeerRole.AGENT
        self.version = 0
        self._client_nonce = b""
        self._token: bytes | None = None
        self._in_flight: set[int] = set()
        self._queries: set[int] = set()  # reconciliation queries received and not yet answered

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def _handle(self, msg: Message) -> ServerEvent | None:
        if isinstance(msg, Hello):
            self._on_hello(msg)
            return None
        if isinstance(msg, Auth):
            return self._on_auth(msg)
        if isinstance(msg, Batch):
            if self.role is PeerRole.AGENT and msg.source != self.source:
                # Only a relay forwards other sources; an agent speaks for itself alone.
                raise _remote(
                    f"agent {self.source!r} sent batch {msg.batch_id} for source {msg.source!r}",
                    Code.SOURCE_MISMATCH,
                )
            if msg.batch_id in self._in_flight:
                raise _remote(f"batch id {msg.batch_id} reused while still in flight", Code.PROTOCOL)
            if len(self._in_flight) >= self._enforced_credit:
                raise _remote(
                    f"batch {msg.batch_id} exceeds the credit window of {self._enforced_credit}",
                    Code.CREDIT_EXCEEDED,
                )
            self._in_flight.add(msg.batch_id)
            return BatchReceived(msg)
        if isinstance(msg, ReconcileQuery | ItemsQuery):
            if self.role is not PeerRole.RELAY:
                raise _remote(f"a {self.role.name.lower()} may not ask to reconcile", Code.PROTOCOL)
            if msg.query_id in self._queries or len(self._queries) >= MAX_OPEN_QUERIES:
                raise _remote(
                    f"query {msg.query_id}: reused id or over {MAX_OPEN_QUERIES} unanswered", Code.PROTOCOL
                )
            self._queries.add(msg.query_id)
            return QueryReceived(msg)
        if isinstance(msg, Unavailable):
            if self.role is not PeerRole.AGENT or msg.source != self.source or not _ranges_ok(msg.ranges):
                raise _remote(
                    f"Unavailable for {msg.source!r} {msg.ranges[:4]} is not valid here", Code.PROTOCOL
                )
            return UnavailableReported(msg)
        return self._handle_common(msg)

    def _on_hello(self, msg: Hello) -> None:
        if msg.role not in _ROLES:
            raise _remote(f"Hello names unknown role {msg.role}", Code.MALFORMED)
        if not msg.source or len(msg.nonce) != NONCE_BYTES:
            raise _remote(f"Hello needs a source and a {NONCE_BYTES}-byte nonce", Code.MALFORMED)
        common = set(msg.versions) & set(SUPPORTED_VERSIONS)
        if not common:
            raise _remote(
                f"no common protocol version: the client offers {msg.versions}, this server speaks "
                f"{list(SUPPORTED_VERSIONS)}; upgrade the older side",
                Code.VERSION,
            )
        self.source, self.role, self.version = msg.source, PeerRole(msg.role), max(common)
        self._client_nonce = msg.nonce
        self._queue(Challenge(self.version, self._server_nonce))

    def _on_auth(self, msg: Auth) -> Authenticated:
        token = self._token_for(self.source) or None
        if token is None:
            if not self._allow_unknown:
                raise _remote(
                    f"unknown source {self.source!r}: no token is configured for it", Code.UNAUTHORIZED
                )
        else:
            expected = auth.client_mac(
                token, self.version, self.source, self._server_nonce, self._client_nonce
            )
            if len(msg.mac) != MAC_BYTES or not auth.verify(expected, msg.mac):
                raise _remote(
                    f"source {self.source!r} failed the token check (wrong token)", Code.UNAUTHORIZED
                )
        self._token = token
        return Authenticated(self.source, self.role, self.version)

    def welcome(self, acked_through: int) -> bytes:
        """The Welcome frame, after ``Authenticated``; ``acked_through`` comes from the app's store."""
        new_state = self._next_state(Dir.SEND, Welcome)
        if acked_through < 0:
            raise LocalProtocolError(f"acked_through must be >= 0, got {acked_through}")
        mac = b""
        if self._token is not None:
            mac = auth.server_mac(
                self._token, self.version, self.source, self._server_nonce, self._client_nonce
            )
        frame = encode_frame(
            Welcome(self.credit, self._max_frame_bytes, self._heartbeat_ms, acked_through, mac)
        )
        self._state = new_state
        self._opened(self._heartbeat_ms)
        return frame

    def _settle(self, kind: type[Message], batch_id: int) -> None:
        self._next_state(Dir.SEND, kind)
        if batch_id not in self._in_flight:
            raise LocalProtocolError(
                f"batch {batch_id} is not in flight; it was never received or already answered"
            )
        self._in_flight.discard(batch_id)

    def ack(self, batch_id: int, source: str, ranges: list[tuple[int, int]]) -> bytes:
        """The Ack frame: call only once the batch is durably committed (ack means durable)."""
        self._settle(Ack, batch_id)
        return self._send(Ack(batch_id, source, ranges))

    def nack(self, batch_id: int, code: Code, reason: str, retry: bool) -> bytes:
        """The Nack frame; ``retry`` tells the client whether sending the batch again can succeed."""
        self._settle(Nack, batch_id)
        return self._send(Nack(batch_id, int(code), reason, retry))

    def answer(self, answer: ReconcileAnswer | ItemsAnswer) -> bytes:
        """The answer frame to a ``QueryReceived``."""
        self._next_state(Dir.SEND, type(answer))
        if answer.query_id not in self._queries:
            raise LocalProtocolError(f"query {answer.query_id} was never received or already answered")
        self._queries.discard(answer.query_id)
        return self._send(answer)

    def request_resend(self, request_id: int, ranges: list[tuple[int, int]]) -> bytes:
        """Ask the agent on this connection to send its seqs in ``ranges`` again."""
        self._next_state(Dir.SEND, ResendRequest)
        if self.role is not PeerRole.AGENT or not ranges or not _ranges_ok(ranges):
            raise LocalProtocolError(f"cannot ask a {self.role.name.lower()} to resend {ranges[:4]}")
        return self._send(ResendRequest(request_id, self.source, ranges))

    def set_credit(self, credit: int) -> bytes:
        """The Credit frame announcing a new window (0 pauses the client)."""
        self._next_state(Dir.SEND, Credit)
        if credit < 0:
            raise LocalProtocolError(f"credit must be >= 0, got {credit}")
        self.credit = credit
        self._enforced_credit = max(self._enforced_credit, credit)
        return self._send(Credit(credit))
