"""The client side of logferry/1: an agent talking to a relay, or a relay talking to a collector.

Sans-IO like the rest of the core: ``start`` and ``send_batch`` return the frames to write; the handshake's
Auth, Pong and heartbeat Pings are queued for ``data_to_send``. Never touches a socket, clock or randomness.
"""

from __future__ import annotations

from logferry.errors import LocalProtocolError
from logferry.protocol import auth
from logferry.protocol.base import BaseConnection, ranges_ok, remote_error
from logferry.protocol.files import CHUNK_OVERHEAD_BYTES, WHOLE_OVERHEAD_BYTES, Named, OutgoingFiles
from logferry.protocol.framing import HEADER_BYTES, FramePiece, encode_chunk_frame, encode_frame
from logferry.protocol.messages import (
    BUNDLES_VERSION,
    NONCE_BYTES,
    SUPPORTED_VERSIONS,
    Ack,
    Auth,
    Batch,
    Challenge,
    Code,
    Credit,
    FileAck,
    FileBundle,
    FileBundleAck,
    FileCancel,
    FileChunk,
    FileDone,
    FileNack,
    FileOffer,
    FileProgress,
    FileResume,
    FileWhole,
    Hello,
    ItemsAnswer,
    ItemsQuery,
    Message,
    Nack,
    PeerRole,
    ReconcileAnswer,
    ReconcileQuery,
    ResendRequest,
    Unavailable,
    Welcome,
)
from logferry.protocol.state import (
    Acked,
    Answered,
    BundleAnswered,
    ClientEvent,
    CreditChanged,
    Dir,
    FileAnswered,
    Nacked,
    Opened,
    ResendRequested,
    Side,
    State,
)


class ClientConnection(BaseConnection[ClientEvent]):
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
        spool: str = "",
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
        self._spool = spool
        self.version = 0
        self._server_nonce = b""
        self.credit = 0
        self.peer_max_frame_bytes = 0
        self._in_flight: dict[int, str] = {}  # batch_id -> source, for matching Ack/Nack
        self._queries: set[int] = set()  # reconciliation queries awaiting their answer
        self._files = OutgoingFiles()  # the files in transfer (docs/PROTOCOL.md §13)

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

    @property
    def max_chunk_bytes(self) -> int:
        """The most file bytes one FileChunk may carry under the server's frame limit."""
        return max(0, self.peer_max_frame_bytes - CHUNK_OVERHEAD_BYTES - len(self.source.encode()) - 256)

    def max_whole_bytes(self, offer: Named) -> int:
        """The most file bytes one FileWhole of this file may carry under the server's frame limit."""
        names = len(offer.source.encode()) + len(offer.path.encode())
        return max(0, self.peer_max_frame_bytes - WHOLE_OVERHEAD_BYTES - names)

    @property
    def files_room(self) -> bool:
        """Whether another file may be offered now (at most ``FILES_IN_FLIGHT`` in transfer)."""
        return self._files.room

    def file_window_open(self, source: str, seq: int) -> bool:
        """Whether this file may take another chunk now (at most two await FileProgress)."""
        return self._files.window_open(source, seq)

    @property
    def bundles(self) -> bool:
        """Whether the session speaks FileBundle (version 2 and later)."""
        return self.version >= BUNDLES_VERSION

    @property
    def bundle_room(self) -> bool:
        """Whether another FileBundle may be sent now (at most ``BUNDLES_IN_FLIGHT`` await their answer)."""
        return self.bundles and self._files.bundle_room

    def send_bundle(self, bundle: FileBundle, now: float) -> bytes:
        """Many small files in one frame; the server answers one ``BundleAnswered`` (FileBundleAck)."""
        new_state = self._next_state(Dir.SEND, FileBundle)
        if not self.bundles:
            raise LocalProtocolError(
                f"FileBundle needs version {BUNDLES_VERSION}; this session is {self.version}"
            )
        frame = encode_frame(bundle)
        self._files.bundle(bundle, len(frame) - HEADER_BYTES, self.peer_max_frame_bytes)
        self._state = new_state
        self._last_send = now
        return frame

    def offer_file(self, offer: FileOffer, now: float) -> bytes:
        """Offer a complete file; the server answers with ``FileAnswered`` (Resume, Ack or Nack)."""
        new_state = self._next_state(Dir.SEND, FileOffer)
        self._files.offer(offer)
        self._state = new_state
        self._last_send = now
        return encode_frame(offer)

    def send_whole(self, whole: FileWhole, now: float) -> bytes:
        """A small file in one frame (offer, content, done); the server answers FileAck or FileNack."""
        new_state = self._next_state(Dir.SEND, FileWhole)
        frame = encode_frame(whole)
        self._files.whole(whole, len(frame) - HEADER_BYTES, self.peer_max_frame_bytes)
        self._state = new_state
        self._last_send = now
        return frame

    def send_chunk(self, chunk: FileChunk, now: float) -> list[FramePiece]:
        """The next bytes of a file in transfer, continuing exactly where its last chunk ended: the frame in
        pieces, to be written in order (``encode_chunk_frame``: a large chunk's data is not copied)."""
        new_state = self._next_state(Dir.SEND, FileChunk)
        frame = encode_chunk_frame(chunk)
        self._files.chunk(chunk, sum(map(len, frame)) - HEADER_BYTES, self.peer_max_frame_bytes)
        self._state = new_state
        self._last_send = now
        return frame

    def file_done(self, done: FileDone, now: float) -> bytes:
        """Every byte was sent; the server verifies and answers FileAck or FileNack."""
        new_state = self._next_state(Dir.SEND, FileDone)
        self._files.done(done)
        self._state = new_state
        self._last_send = now
        return encode_frame(done)

    def cancel_file(self, cancel: FileCancel, now: float) -> bytes:
        """Stop sending a file (after its Resume, before its Done); no answer comes."""
        new_state = self._next_state(Dir.SEND, FileCancel)
        self._files.cancel(cancel)
        self._state = new_state
        self._last_send = now
        return encode_frame(cancel)

    def unavailable(self, request_id: int, ranges: list[tuple[int, int]], now: float) -> bytes:
        """Tell the relay which seqs of a ResendRequest this agent no longer has."""
        new_state = self._next_state(Dir.SEND, Unavailable)
        if not ranges_ok(ranges):
            raise LocalProtocolError(f"invalid seq ranges {ranges}")
        frame = encode_frame(Unavailable(request_id, self.source, ranges))
        self._state = new_state
        self._last_send = now
        return frame

    def start(self, now: float) -> bytes:
        """The Hello frame; starts the handshake timer."""
        hello = Hello(
            list(SUPPORTED_VERSIONS), int(self.role), self.source, self._client_nonce, self._software,
            self._spool,
        )  # fmt: skip
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
                raise remote_error(
                    f"{type(msg).__name__} for batch {msg.batch_id}, which is not in flight", Code.PROTOCOL
                )
            if isinstance(msg, Nack):
                return Nacked(msg)
            if msg.source != source:
                raise remote_error(
                    f"Ack for batch {msg.batch_id} names source {msg.source!r}, not {source!r}", Code.PROTOCOL
                )
            if any(lo < 1 or lo > hi for lo, hi in msg.ranges):
                raise remote_error(
                    f"Ack for batch {msg.batch_id} has an invalid range in {msg.ranges}", Code.MALFORMED
                )
            return Acked(msg)
        if isinstance(msg, ReconcileAnswer | ItemsAnswer):
            if msg.query_id not in self._queries:
                raise remote_error(f"answer to query {msg.query_id}, which was never asked", Code.PROTOCOL)
            self._queries.discard(msg.query_id)
            return Answered(msg)
        if isinstance(msg, ResendRequest):
            if msg.source != self.source or not ranges_ok(msg.ranges):
                raise remote_error(
                    f"ResendRequest for source {msg.source!r} ranges {msg.ranges[:4]} is not ours or invalid",
                    Code.PROTOCOL,
                )
            return ResendRequested(msg)
        if isinstance(msg, FileResume | FileProgress | FileAck | FileNack):
            return FileAnswered(msg) if self._files.received(msg) else None
        if isinstance(msg, FileBundleAck):
            self._files.bundle_answered(msg)
            return BundleAnswered(msg)
        if isinstance(msg, Credit):
            if msg.credit < 0:
                raise remote_error(f"Credit of {msg.credit} is negative", Code.MALFORMED)
            self.credit = msg.credit
            return CreditChanged(msg.credit)
        return self._handle_common(msg)

    def _on_challenge(self, msg: Challenge) -> None:
        if msg.version not in SUPPORTED_VERSIONS:
            raise remote_error(
                f"the server chose version {msg.version}, which we did not offer", Code.VERSION
            )
        if len(msg.nonce) != NONCE_BYTES:
            raise remote_error(
                f"the server nonce is {len(msg.nonce)} bytes, not {NONCE_BYTES}", Code.MALFORMED
            )
        self.version, self._server_nonce = msg.version, msg.nonce
        mac = b""
        if self._token is not None:
            mac = auth.client_mac(self._token, msg.version, self.source, msg.nonce, self._client_nonce)
        self._queue(Auth(mac))

    def _on_welcome(self, msg: Welcome) -> Opened:
        if msg.credit < 0 or msg.max_frame_bytes < 1 or msg.heartbeat_ms < 1 or msg.acked_through < 0:
            raise remote_error(f"the Welcome carries impossible values: {msg}", Code.MALFORMED)
        # A server without tokens (allow_unknown, or relying on mutual TLS) sends an empty mac: accepted, so a
        # token does not by itself authenticate the server. A mac that is present must be right.
        if self._token is not None and msg.mac:
            expected = auth.server_mac(
                self._token, self.version, self.source, self._server_nonce, self._client_nonce
            )
            if not auth.verify(expected, msg.mac):
                raise remote_error(
                    "the server's Welcome mac is wrong: it does not hold our token; check the token on both "
                    "sides, or whether this is the right server",
                    Code.UNAUTHORIZED,
                )
        self.credit = msg.credit
        self.peer_max_frame_bytes = msg.max_frame_bytes
        self._opened(msg.heartbeat_ms)
        return Opened(msg)
