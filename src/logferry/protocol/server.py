"""The server side of logferry/1: a relay accepting agents, or a collector accepting relays.

Sans-IO like the rest of the core: ``welcome``, ``ack``, ``nack``, ``answer`` … return the frames to write;
the Challenge and Pongs are queued for ``data_to_send``. Never touches a socket, clock or randomness.
"""

from __future__ import annotations

from collections.abc import Callable

from logferry.errors import LocalProtocolError
from logferry.protocol import auth
from logferry.protocol.base import KNOWN_ROLES, MAX_OPEN_QUERIES, BaseConnection, ranges_ok, remote_error
from logferry.protocol.files import IncomingFiles, files_source
from logferry.protocol.framing import encode_frame
from logferry.protocol.messages import (
    BUNDLES_VERSION,
    MAC_BYTES,
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
    Authenticated,
    BatchReceived,
    BundleReceived,
    ChunkReceived,
    Dir,
    FileCancelled,
    FileFinished,
    FileOffered,
    QueryReceived,
    ServerEvent,
    Side,
    State,
    UnavailableReported,
    WholeReceived,
)


class ServerConnection(BaseConnection[ServerEvent]):
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
        self.spool = ""
        self.role = PeerRole.AGENT
        self.version = 0
        self._client_nonce = b""
        self._token: bytes | None = None
        self._in_flight: set[int] = set()
        self._queries: set[int] = set()  # reconciliation queries received and not yet answered
        self._files = IncomingFiles()  # the files in transfer (docs/PROTOCOL.md §13)

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
                raise remote_error(
                    f"agent {self.source!r} sent batch {msg.batch_id} for source {msg.source!r}",
                    Code.SOURCE_MISMATCH,
                )
            if msg.batch_id in self._in_flight:
                raise remote_error(f"batch id {msg.batch_id} reused while still in flight", Code.PROTOCOL)
            if len(self._in_flight) >= self._enforced_credit:
                raise remote_error(
                    f"batch {msg.batch_id} exceeds the credit window of {self._enforced_credit}",
                    Code.CREDIT_EXCEEDED,
                )
            self._in_flight.add(msg.batch_id)
            return BatchReceived(msg)
        if isinstance(msg, ReconcileQuery | ItemsQuery):
            if self.role is not PeerRole.RELAY:
                raise remote_error(f"a {self.role.name.lower()} may not ask to reconcile", Code.PROTOCOL)
            if msg.query_id in self._queries or len(self._queries) >= MAX_OPEN_QUERIES:
                raise remote_error(
                    f"query {msg.query_id}: reused id or over {MAX_OPEN_QUERIES} unanswered", Code.PROTOCOL
                )
            self._queries.add(msg.query_id)
            return QueryReceived(msg)
        if isinstance(msg, FileOffer | FileWhole):
            # An agent offers its own files only; a relay forwards any source's.
            self._files.offered(msg, files_source(self.source) if self.role is PeerRole.AGENT else None)
            return FileOffered(msg) if isinstance(msg, FileOffer) else WholeReceived(msg)
        if isinstance(msg, FileBundle):
            if self.version < BUNDLES_VERSION:
                raise remote_error(
                    f"FileBundle needs protocol version {BUNDLES_VERSION}; this session is {self.version}",
                    Code.PROTOCOL,
                )
            self._files.bundled(msg, files_source(self.source) if self.role is PeerRole.AGENT else None)
            return BundleReceived(msg)
        if isinstance(msg, FileChunk):
            return ChunkReceived(msg) if self._files.chunk(msg) else None
        if isinstance(msg, FileDone):
            return FileFinished(msg) if self._files.done(msg) else None
        if isinstance(msg, FileCancel):
            return FileCancelled(msg) if self._files.cancel(msg) else None
        if isinstance(msg, Unavailable):
            if self.role is not PeerRole.AGENT or msg.source != self.source or not ranges_ok(msg.ranges):
                raise remote_error(
                    f"Unavailable for {msg.source!r} {msg.ranges[:4]} is not valid here", Code.PROTOCOL
                )
            return UnavailableReported(msg)
        return self._handle_common(msg)

    def _on_hello(self, msg: Hello) -> None:
        if msg.role not in KNOWN_ROLES:
            raise remote_error(f"Hello names unknown role {msg.role}", Code.MALFORMED)
        if not msg.source or len(msg.nonce) != NONCE_BYTES:
            raise remote_error(f"Hello needs a source and a {NONCE_BYTES}-byte nonce", Code.MALFORMED)
        common = set(msg.versions) & set(SUPPORTED_VERSIONS)
        if not common:
            raise remote_error(
                f"no common protocol version: the client offers {msg.versions}, this server speaks "
                f"{list(SUPPORTED_VERSIONS)}; upgrade the older side",
                Code.VERSION,
            )
        self.source, self.role, self.version = msg.source, PeerRole(msg.role), max(common)
        self.spool = msg.spool[:64]
        self._client_nonce = msg.nonce
        self._queue(Challenge(self.version, self._server_nonce))

    def _on_auth(self, msg: Auth) -> Authenticated:
        token = self._token_for(self.source) or None
        if token is None:
            if not self._allow_unknown:
                raise remote_error(
                    f"unknown source {self.source!r}: no token is configured for it", Code.UNAUTHORIZED
                )
        else:
            expected = auth.client_mac(
                token, self.version, self.source, self._server_nonce, self._client_nonce
            )
            if len(msg.mac) != MAC_BYTES or not auth.verify(expected, msg.mac):
                raise remote_error(
                    f"source {self.source!r} failed the token check (wrong token)", Code.UNAUTHORIZED
                )
        self._token = token
        return Authenticated(self.source, self.role, self.version, self.spool)

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
        if self.role is not PeerRole.AGENT or not ranges or not ranges_ok(ranges):
            raise LocalProtocolError(f"cannot ask a {self.role.name.lower()} to resend {ranges[:4]}")
        return self._send(ResendRequest(request_id, self.source, ranges))

    def file_resume(self, source: str, seq: int, offset: int) -> bytes:
        """Answer a ``FileOffered``: send from ``offset`` (the bytes this server already holds)."""
        self._next_state(Dir.SEND, FileResume)
        return self._send(self._files.resume(source, seq, offset))

    def file_progress(self, source: str, seq: int) -> bytes:
        """After a ``ChunkReceived`` is written to disk: the client may send one more chunk of the file."""
        self._next_state(Dir.SEND, FileProgress)
        return self._send(self._files.progress(source, seq))

    def file_ack(self, source: str, seq: int) -> bytes:
        """The file is durably stored and verified (or was held complete already): ack means durable."""
        self._next_state(Dir.SEND, FileAck)
        return self._send(self._files.ack(source, seq))

    def file_nack(self, source: str, seq: int, code: Code, reason: str, retry: bool) -> bytes:
        """Refuse a file in transfer; chunks of it still on the wire are dropped silently."""
        self._next_state(Dir.SEND, FileNack)
        return self._send(self._files.nack(source, seq, code, reason, retry))

    def file_bundle_ack(self, bundle_id: int, refused: list[FileNack]) -> bytes:
        """Every file of the bundle is durably stored (or was held already), but those ``refused``."""
        self._next_state(Dir.SEND, FileBundleAck)
        return self._send(self._files.bundle_ack(bundle_id, refused))

    def file_open(self, source: str, seq: int) -> bool:
        """Whether this file is still in transfer here (not answered, refused or cancelled)."""
        return self._files.open(source, seq)

    def set_credit(self, credit: int) -> bytes:
        """The Credit frame announcing a new window (0 pauses the client)."""
        self._next_state(Dir.SEND, Credit)
        if credit < 0:
            raise LocalProtocolError(f"credit must be >= 0, got {credit}")
        self.credit = credit
        self._enforced_credit = max(self._enforced_credit, credit)
        return self._send(Credit(credit))
