"""ClientConnection and ServerConnection joined in memory, with a fake clock: no sockets, no sleeps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from logferry.errors import LocalProtocolError, RemoteProtocolError
from logferry.protocol import auth
from logferry.protocol.connection import (
    Acked,
    Authenticated,
    BatchReceived,
    ClientConnection,
    ClientEvent,
    CreditChanged,
    Nacked,
    Opened,
    PeerClosed,
    ServerConnection,
    ServerEvent,
    State,
)
from logferry.protocol.framing import FrameDecoder, encode_frame
from logferry.protocol.messages import (
    PROTOCOL_VERSION,
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
from logferry.protocol.state import TRANSITIONS, Dir, Side

T = TypeVar("T")
TOKEN = b"agent-1-token"
NONCE_C = bytes(range(16))
NONCE_S = bytes(range(0xA0, 0xB0))
T0 = 1000.0


@dataclass
class ConnectionPair:
    """A client and a server core joined by hand-carried bytes; ``now`` is the fake clock of both."""

    client_token: bytes | None = TOKEN
    server_tokens: dict[str, bytes] = field(default_factory=lambda: {"agent-1": TOKEN})
    allow_unknown: bool = False
    credit: int = 2
    heartbeat_ms: int = 1000
    role: PeerRole = PeerRole.AGENT
    source: str = "agent-1"
    now: float = T0

    def __post_init__(self) -> None:
        self.client = ClientConnection(
            source=self.source,
            role=self.role,
            token=self.client_token,
            client_nonce=NONCE_C,
            max_frame_bytes=1 << 20,
            software="test",
            handshake_timeout_s=5.0,
        )
        self.server = ServerConnection(
            token_for=self.server_tokens.get,
            allow_unknown=self.allow_unknown,
            credit=self.credit,
            max_frame_bytes=4096,
            heartbeat_ms=self.heartbeat_ms,
            server_nonce=NONCE_S,
            handshake_timeout_s=5.0,
            now=self.now,
        )

    def to_server(self, data: bytes) -> list[ServerEvent]:
        self.server.receive_data(data, self.now)
        return list(_drain(self.server.next_event))

    def to_client(self, data: bytes) -> list[ClientEvent]:
        self.client.receive_data(data, self.now)
        return list(_drain(self.client.next_event))

    def pump(self) -> tuple[list[ClientEvent], list[ServerEvent]]:
        """Carry automatic replies both ways until both sides are quiet."""
        client_events: list[ClientEvent] = []
        server_events: list[ServerEvent] = []
        while True:
            c, s = self.client.data_to_send(), self.server.data_to_send()
            if not c and not s:
                return client_events, server_events
            server_events += self.to_server(c)
            client_events += self.to_client(s)

    def open(self, acked_through: int = 0) -> Welcome:
        assert self.to_server(self.client.start(self.now)) == []
        assert self.pump()[1] == [Authenticated(self.source, self.role, PROTOCOL_VERSION)]
        events = self.to_client(self.server.welcome(acked_through))
        assert len(events) == 1 and isinstance(events[0], Opened)
        assert self.client.state is self.server.state is State.OPEN
        return events[0].welcome


def _drain(next_item: Callable[[], T | None]) -> Iterator[T]:
    while (item := next_item()) is not None:
        yield item


def batch(batch_id: int, source: str = "agent-1") -> Batch:
    return Batch(batch_id, source, 1, 0, b"\x91\x00")


def frames(data: bytes) -> list[Message]:
    dec = FrameDecoder(1 << 20)
    dec.feed(data)
    return list(_drain(dec.next_message))


def client_after_challenge(token: bytes | None = TOKEN) -> ClientConnection:
    client = ClientConnection(
        source="agent-1", role=PeerRole.AGENT, token=token, client_nonce=NONCE_C, max_frame_bytes=4096
    )
    client.start(T0)
    client.receive_data(encode_frame(Challenge(1, NONCE_S)), T0)
    assert client.next_event() is None
    return client


# ---- the table itself -----------------------------------------------------------------------------

CLIENT_SENDS = {Hello, Auth, Batch, Ping, Pong, Goodbye, ReconcileQuery, ItemsQuery, Unavailable}
SERVER_SENDS = {Challenge, Welcome, Ack, Nack, Credit, Ping, Pong, Goodbye, ReconcileAnswer, ItemsAnswer}
SERVER_SENDS |= {ResendRequest}
CLIENT_SENDS |= {FileOffer, FileChunk, FileDone, FileWhole, FileCancel, FileBundle}
SERVER_SENDS |= {FileResume, FileProgress, FileAck, FileNack, FileBundleAck}


def test_every_row_moves_a_message_its_sender_may_send() -> None:
    for side, _state, direction, kind in TRANSITIONS:
        sender = side if direction is Dir.SEND else {Side.CLIENT: Side.SERVER, Side.SERVER: Side.CLIENT}[side]
        assert kind in (CLIENT_SENDS if sender is Side.CLIENT else SERVER_SENDS), (side, direction, kind)


# ---- handshake ------------------------------------------------------------------------------------


def test_handshake_with_tokens_proves_both_sides() -> None:
    pair = ConnectionPair()
    welcome = pair.open(acked_through=41)
    assert welcome.acked_through == 41 and welcome.credit == 2 and welcome.heartbeat_ms == 1000
    assert welcome.mac == auth.server_mac(TOKEN, PROTOCOL_VERSION, "agent-1", NONCE_S, NONCE_C)
    assert pair.client.peer_max_frame_bytes == 4096 and pair.client.credit == 2


def test_handshake_without_tokens() -> None:
    pair = ConnectionPair(client_token=None, server_tokens={}, allow_unknown=True)
    assert pair.open().mac == b""


def test_client_with_token_accepts_a_server_without_tokens() -> None:
    # Documented: an empty Welcome mac means "this server runs without tokens"; TLS authenticates it then.
    pair = ConnectionPair(server_tokens={}, allow_unknown=True)
    assert pair.open().mac == b""


@pytest.mark.parametrize(
    "pair",
    [
        ConnectionPair(client_token=b"wrong-token"),
        ConnectionPair(client_token=None),
        ConnectionPair(source="stranger"),
    ],
    ids=["wrong-token", "no-token", "unknown-source"],
)
def test_server_refuses_bad_credentials(pair: ConnectionPair) -> None:
    pair.to_server(pair.client.start(pair.now))
    with pytest.raises(RemoteProtocolError) as info:
        pair.pump()
    assert info.value.code == Code.UNAUTHORIZED
    assert pair.server.state is State.CLOSED
    # The peer learns the code but not which half was wrong.
    assert pair.to_client(pair.server.data_to_send()) == [
        PeerClosed(Code.UNAUTHORIZED, "authentication failed")
    ]
    assert pair.client.state is State.CLOSED


@pytest.mark.parametrize("mac", [b"\x00" * 32, auth.client_mac(TOKEN, 1, "agent-1", NONCE_S, NONCE_C)])
def test_client_refuses_a_wrong_or_reflected_server_mac(mac: bytes) -> None:
    client = client_after_challenge()
    client.data_to_send()
    client.receive_data(encode_frame(Welcome(4, 4096, 1000, 0, mac)), T0)
    with pytest.raises(RemoteProtocolError, match="Welcome mac is wrong") as info:
        client.next_event()
    assert info.value.code == Code.UNAUTHORIZED
    assert frames(client.data_to_send()) == [Goodbye(Code.UNAUTHORIZED, "authentication failed")]


def test_client_answers_the_challenge_with_the_right_mac() -> None:
    client = client_after_challenge()
    assert frames(client.data_to_send()) == [Auth(auth.client_mac(TOKEN, 1, "agent-1", NONCE_S, NONCE_C))]
    assert client.state is State.AWAIT_WELCOME


def test_version_mismatch_sends_goodbye_version() -> None:
    pair = ConnectionPair()
    with pytest.raises(RemoteProtocolError, match="no common protocol version") as info:
        pair.to_server(encode_frame(Hello([3, 4], 1, "agent-1", NONCE_C)))
    assert info.value.code == Code.VERSION
    [bye] = frames(pair.server.data_to_send())
    assert isinstance(bye, Goodbye) and bye.code == Code.VERSION


def test_server_picks_the_highest_common_version() -> None:
    pair = ConnectionPair()
    pair.to_server(encode_frame(Hello([7, 1, 0], 1, "agent-1", NONCE_C)))
    assert frames(pair.server.data_to_send()) == [Challenge(1, NONCE_S)]
    pair = ConnectionPair()
    pair.to_server(encode_frame(Hello([7, 2, 1], 1, "agent-1", NONCE_C)))
    assert frames(pair.server.data_to_send()) == [Challenge(2, NONCE_S)]


def test_client_refuses_a_version_it_did_not_offer() -> None:
    client = ClientConnection(
        source="a", role=PeerRole.RELAY, token=None, client_nonce=NONCE_C, max_frame_bytes=99
    )
    client.start(T0)
    client.receive_data(encode_frame(Challenge(9, NONCE_S)), T0)
    with pytest.raises(RemoteProtocolError) as info:
        client.next_event()
    assert info.value.code == Code.VERSION


@pytest.mark.parametrize(
    "hello",
    [Hello([1], 9, "agent-1", NONCE_C), Hello([1], 1, "", NONCE_C), Hello([1], 1, "agent-1", b"short")],
    ids=["role", "source", "nonce"],
)
def test_malformed_hello(hello: Hello) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        ConnectionPair().to_server(encode_frame(hello))
    assert info.value.code == Code.MALFORMED


# ---- messages out of order or from the wrong side -------------------------------------------------


@pytest.mark.parametrize(
    "prefix_steps, msg",
    [
        (0, Welcome(1, 1, 1, 0)),  # a client sending a server message
        (0, batch(1)),  # a batch before any handshake
        (1, batch(1)),  # a batch before Auth
        (2, batch(1)),  # a batch after Auth but before Welcome
        (2, Ping(1)),  # heartbeats only once open
        (0, Auth(b"")),  # Auth before Hello
    ],
)
def test_server_rejects_out_of_order(prefix_steps: int, msg: Message) -> None:
    pair = ConnectionPair()
    if prefix_steps >= 1:
        pair.to_server(pair.client.start(pair.now))
    if prefix_steps >= 2:
        pair.pump()
    with pytest.raises(RemoteProtocolError, match=f"received {type(msg).__name__}") as info:
        pair.to_server(encode_frame(msg))
    assert info.value.code == Code.PROTOCOL
    assert pair.server.state is State.CLOSED


def test_client_rejects_server_speaking_first_and_client_messages() -> None:
    client = ClientConnection(
        source="a", role=PeerRole.AGENT, token=None, client_nonce=NONCE_C, max_frame_bytes=99
    )
    client.receive_data(encode_frame(Challenge(1, NONCE_S)), T0)
    with pytest.raises(RemoteProtocolError, match="client received Challenge in state idle"):
        client.next_event()
    client = client_after_challenge()
    client.receive_data(encode_frame(Hello([1], 1, "x", NONCE_C)), T0)
    with pytest.raises(RemoteProtocolError) as info:
        client.next_event()
    assert info.value.code == Code.PROTOCOL


def test_agent_may_not_send_for_another_source_but_a_relay_may() -> None:
    pair = ConnectionPair()
    pair.open()
    with pytest.raises(RemoteProtocolError) as info:
        pair.to_server(encode_frame(batch(1, source="agent-2")))
    assert info.value.code == Code.SOURCE_MISMATCH
    relay = ConnectionPair(role=PeerRole.RELAY, source="relay-1", server_tokens={"relay-1": TOKEN})
    relay.open()
    assert relay.to_server(relay.client.send_batch(batch(1, source="agent-2"), relay.now)) == [
        BatchReceived(batch(1, source="agent-2"))
    ]


# ---- batches, verdicts and the credit window ------------------------------------------------------


def test_batch_ack_nack_round_trip() -> None:
    pair = ConnectionPair()
    pair.open()
    assert pair.to_server(pair.client.send_batch(batch(1), pair.now)) == [BatchReceived(batch(1))]
    assert pair.to_server(pair.client.send_batch(batch(2), pair.now)) == [BatchReceived(batch(2))]
    assert pair.client.in_flight == pair.server.in_flight == 2
    assert pair.to_client(pair.server.ack(1, "agent-1", [(5, 5)])) == [Acked(Ack(1, "agent-1", [(5, 5)]))]
    nack = pair.server.nack(2, Code.STORE_FAILED, "disk full", retry=True)
    assert pair.to_client(nack) == [Nacked(Nack(2, Code.STORE_FAILED, "disk full", True))]
    assert pair.client.in_flight == pair.server.in_flight == 0


def test_client_enforces_the_credit_window() -> None:
    pair = ConnectionPair(credit=1)
    pair.open()
    pair.to_server(pair.client.send_batch(batch(1), pair.now))
    with pytest.raises(LocalProtocolError, match="credit window is full") as info:
        pair.client.send_batch(batch(2), pair.now)
    assert info.value.code == Code.CREDIT_EXCEEDED
    assert pair.client.state is State.OPEN  # our own mistake does not end the session
    pair.to_client(pair.server.ack(1, "agent-1", [(1, 1)]))
    pair.to_server(pair.client.send_batch(batch(2), pair.now))
    assert pair.to_client(pair.server.set_credit(0)) == [CreditChanged(0)]
    pair.to_client(pair.server.ack(2, "agent-1", [(2, 2)]))
    with pytest.raises(LocalProtocolError):
        pair.client.send_batch(batch(3), pair.now)  # credit 0 pauses the client


def test_server_enforces_the_credit_window() -> None:
    pair = ConnectionPair(credit=1)
    pair.open()
    pair.to_server(encode_frame(batch(1)))
    with pytest.raises(RemoteProtocolError, match="exceeds the credit window") as info:
        pair.to_server(encode_frame(batch(2)))
    assert info.value.code == Code.CREDIT_EXCEEDED
    assert isinstance(frames(pair.server.data_to_send())[0], Goodbye)


def test_shrinking_the_window_does_not_punish_batches_already_on_the_way() -> None:
    pair = ConnectionPair(credit=2)
    pair.open()
    in_transit = pair.client.send_batch(batch(1), pair.now) + pair.client.send_batch(batch(2), pair.now)
    shrink = pair.server.set_credit(1)  # crosses the two batches on the wire
    assert pair.to_server(in_transit) == [BatchReceived(batch(1)), BatchReceived(batch(2))]
    assert pair.to_client(shrink) == [CreditChanged(1)]
    with pytest.raises(RemoteProtocolError) as info:  # but the largest window granted still holds
        pair.to_server(encode_frame(batch(3)))
    assert info.value.code == Code.CREDIT_EXCEEDED


def test_reused_batch_id() -> None:
    pair = ConnectionPair()
    pair.open()
    pair.to_server(pair.client.send_batch(batch(1), pair.now))
    with pytest.raises(LocalProtocolError, match="already in flight"):
        pair.client.send_batch(batch(1), pair.now)
    with pytest.raises(RemoteProtocolError, match="reused"):
        pair.to_server(encode_frame(batch(1)))


@pytest.mark.parametrize(
    "reply",
    [
        Ack(9, "agent-1", [(1, 1)]),
        Nack(9, 6, "x", True),
        Ack(1, "agent-2", [(1, 1)]),
        Ack(1, "agent-1", [(3, 2)]),
    ],
)
def test_client_rejects_verdicts_that_do_not_match_a_batch_in_flight(reply: Message) -> None:
    pair = ConnectionPair()
    pair.open()
    pair.to_server(pair.client.send_batch(batch(1), pair.now))
    with pytest.raises(
        RemoteProtocolError, match=r"batch 9, which is not in flight|names source|invalid range"
    ):
        pair.to_client(encode_frame(reply))


def test_local_misuse_raises_local_errors() -> None:
    pair = ConnectionPair()
    with pytest.raises(LocalProtocolError, match="cannot send Batch in state idle"):
        pair.client.send_batch(batch(1), pair.now)
    with pytest.raises(LocalProtocolError, match="cannot send Welcome"):
        pair.server.welcome(0)
    pair.open()
    with pytest.raises(LocalProtocolError, match="not in flight"):
        pair.server.ack(5, "agent-1", [(1, 1)])
    with pytest.raises(LocalProtocolError, match="over the server's limit"):
        pair.client.send_batch(Batch(1, "agent-1", 1, 0, b"x" * 5000), pair.now)
    with pytest.raises(LocalProtocolError, match="nonce"):
        ClientConnection(source="a", role=PeerRole.AGENT, token=None, client_nonce=b"", max_frame_bytes=99)


# ---- closing ------------------------------------------------------------------------------------


def test_goodbye_closes_both_sides_and_late_bytes_are_dropped() -> None:
    pair = ConnectionPair()
    pair.open()
    assert pair.to_server(pair.client.close(Code.NORMAL, "done")) == [PeerClosed(Code.NORMAL, "done")]
    assert pair.client.state is pair.server.state is State.CLOSED
    assert pair.client.close() == b""
    with pytest.raises(LocalProtocolError):
        pair.client.send_batch(batch(1), pair.now)
    assert pair.to_server(encode_frame(batch(1))) == []
    assert pair.server.next_deadline() is None


def test_server_fail_sends_an_error_goodbye() -> None:
    pair = ConnectionPair()
    pair.open()
    assert pair.to_client(pair.server.fail(Code.SHUTTING_DOWN, "restarting")) == [
        PeerClosed(Code.SHUTTING_DOWN, "restarting")
    ]


def test_buffered_bytes_shows_a_frame_still_arriving() -> None:
    pair = ConnectionPair()
    pair.open()
    frame = encode_frame(batch(1))
    pair.server.receive_data(frame[:5], pair.now)
    assert pair.server.next_event() is None and pair.server.buffered_bytes == 5
    pair.server.receive_data(frame[5:], pair.now)
    assert pair.server.next_event() == BatchReceived(batch(1)) and pair.server.buffered_bytes == 0


def test_oversized_frame_is_refused_by_its_header() -> None:
    pair = ConnectionPair()
    pair.open()
    with pytest.raises(RemoteProtocolError) as info:
        pair.to_server((4097).to_bytes(4, "big"))
    assert info.value.code == Code.TOO_LARGE
    [bye] = frames(pair.server.data_to_send())
    assert isinstance(bye, Goodbye) and bye.code == Code.TOO_LARGE


# ---- timers -------------------------------------------------------------------------------------


def test_heartbeat_ping_pong_keeps_the_session_alive() -> None:
    pair = ConnectionPair(heartbeat_ms=1000)
    pair.open()
    for i in range(10):
        deadline = pair.client.next_deadline()
        assert deadline is not None and deadline == pytest.approx(pair.now + 1.0)
        pair.now = deadline - 0.001
        pair.client.handle_timer(pair.now)
        assert pair.client.data_to_send() == b""  # not yet idle long enough
        pair.now = deadline
        pair.client.handle_timer(pair.now)
        pair.server.handle_timer(pair.now)
        sent = pair.client.data_to_send()
        assert frames(sent) == [Ping(i + 1)]
        pair.to_server(sent)
        assert pair.pump() == ([], [])
    assert pair.client.state is pair.server.state is State.OPEN


def test_silent_peer_times_out_after_three_heartbeats() -> None:
    pair = ConnectionPair(heartbeat_ms=1000)
    pair.open()
    pings = 0
    with pytest.raises(RemoteProtocolError, match="nothing received") as info:
        while True:  # the server never answers: its bytes are not delivered
            deadline = pair.client.next_deadline()
            assert deadline is not None
            pair.now = deadline
            pair.client.handle_timer(pair.now)
            pings += sum(isinstance(m, Ping) for m in frames(pair.client.data_to_send()))
    assert info.value.code == Code.TIMEOUT
    assert pair.now == pytest.approx(T0 + 3.0) and pings == 2
    [bye] = frames(pair.client.data_to_send())
    assert isinstance(bye, Goodbye) and bye.code == Code.TIMEOUT


def test_ping_is_answered_with_a_pong_carrying_its_nonce() -> None:
    pair = ConnectionPair()
    pair.open()
    assert pair.to_server(encode_frame(Ping(77))) == []
    assert frames(pair.server.data_to_send()) == [Pong(77)]


@pytest.mark.parametrize("side", ["client", "server"])
def test_handshake_timeout(side: str) -> None:
    pair = ConnectionPair()
    pair.client.start(pair.now)  # the Hello is never delivered
    conn: ClientConnection | ServerConnection = pair.client if side == "client" else pair.server
    assert conn.next_deadline() == T0 + 5.0
    conn.handle_timer(T0 + 4.9)
    with pytest.raises(RemoteProtocolError, match=r"handshake did not finish within 5\.0 s") as info:
        conn.handle_timer(T0 + 5.0)
    assert info.value.code == Code.TIMEOUT
    assert conn.state is State.CLOSED
