"""Property tests: whatever bytes arrive, the core raises only protocol errors; messages survive a round trip.

"Bad input never takes a server down" rests on this: a transport catches ``RemoteProtocolError``, flushes the
Goodbye and drops one connection. Any other exception escaping the core would be a crash.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from logferry.errors import AuthError, RemoteProtocolError
from logferry.protocol import auth
from logferry.protocol.connection import (
    Authenticated,
    BatchReceived,
    ClientConnection,
    PeerClosed,
    ServerConnection,
    State,
)
from logferry.protocol.framing import FrameDecoder, encode_frame
from logferry.protocol.messages import (
    Ack,
    Auth,
    Batch,
    Challenge,
    Credit,
    Goodbye,
    Hello,
    Message,
    Nack,
    PeerRole,
    Ping,
    Pong,
    Welcome,
)

TOKEN = b"fuzz-token"
NONCE_C = bytes(range(16))
NONCE_S = bytes(range(0xA0, 0xB0))
ALLOWED = (RemoteProtocolError, AuthError)  # never LocalProtocolError: receiving cannot be our misuse

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

i64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
text = st.text(max_size=20)
blob = st.binary(max_size=40)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Hello, st.lists(i64, max_size=4), i64, text, blob, text),
    st.builds(Challenge, i64, blob),
    st.builds(Auth, blob),
    st.builds(Welcome, i64, i64, i64, i64, blob),
    st.builds(Batch, i64, text, i64, i64, blob),
    st.builds(Ack, i64, text, st.lists(st.tuples(i64, i64), max_size=4)),
    st.builds(Nack, i64, i64, text, st.booleans()),
    st.builds(Ping, i64),
    st.builds(Pong, i64),
    st.builds(Goodbye, i64, text),
    st.builds(Credit, i64),
)

# Valid conversations, to be garbled: what a client sends, and what a server sends back.
CLIENT_STREAM = b"".join(
    encode_frame(m)
    for m in (
        Hello([1], int(PeerRole.AGENT), "agent-1", NONCE_C, "fuzz"),
        Auth(auth.client_mac(TOKEN, 1, "agent-1", NONCE_S, NONCE_C)),
        Batch(1, "agent-1", 1, 0, b"\x91\x00"),
        Ping(5),
        Batch(2, "agent-1", 1, 0, b"\x91\x00"),
        Pong(1),
        Goodbye(0, "bye"),
    )
)
SERVER_STREAM = b"".join(
    encode_frame(m)
    for m in (
        Challenge(1, NONCE_S),
        Welcome(2, 4096, 1000, 0, auth.server_mac(TOKEN, 1, "agent-1", NONCE_S, NONCE_C)),
        Ack(1, "agent-1", [(1, 1)]),
        Credit(3),
        Ping(2),
        Nack(2, 6, "disk", True),
        Goodbye(0, "bye"),
    )
)


@st.composite
def garbled(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    """``stream`` with a few bytes flipped, inserted or removed, cut into random chunks."""
    data = bytearray(stream)
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip" and pos < len(data):
            data[pos] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif pos < len(data):
            del data[pos : pos + draw(st.integers(1, 8))]
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=10)))
    return [bytes(data[a:b]) for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def new_server() -> ServerConnection:
    return ServerConnection(
        token_for={"agent-1": TOKEN}.get,
        allow_unknown=False,
        credit=2,
        max_frame_bytes=4096,
        heartbeat_ms=1000,
        server_nonce=NONCE_S,
        handshake_timeout_s=5.0,
        now=0.0,
    )


def feed_server(chunks: list[bytes]) -> ServerConnection:
    server = new_server()
    for i, chunk in enumerate(chunks):
        server.receive_data(chunk, float(i))
        while (ev := server.next_event()) is not None:
            # Play a well-behaved application, so garbage reaches the deeper states too.
            if isinstance(ev, Authenticated):
                server.welcome(0)
            elif isinstance(ev, BatchReceived):
                server.ack(ev.batch.batch_id, ev.batch.source, [(1, 1)])
        server.handle_timer(float(i))
        server.data_to_send()
    return server


def feed_client(chunks: list[bytes]) -> tuple[ClientConnection, list[object]]:
    client = ClientConnection(
        source="agent-1", role=PeerRole.AGENT, token=TOKEN, client_nonce=NONCE_C, max_frame_bytes=4096
    )
    client.start(0.0)
    events: list[object] = []
    next_id = 1
    for i, chunk in enumerate(chunks):
        client.receive_data(chunk, float(i))
        while (ev := client.next_event()) is not None:
            events.append(ev)
            # Keep the window full, as a real client would.
            if client.state is State.OPEN and client.in_flight < client.credit:
                client.send_batch(Batch(next_id, "agent-1", 1, 0, b""), float(i))
                next_id += 1
        client.handle_timer(float(i))
        client.data_to_send()
    return client, events


def expect_only_protocol_errors(run: Callable[[list[bytes]], object], chunks: list[bytes]) -> None:
    # Anything but ALLOWED escapes and fails the test, and hypothesis shrinks it to the smallest input.
    with contextlib.suppress(*ALLOWED):
        run(chunks)


def test_the_valid_streams_are_valid() -> None:
    # The fuzz inputs start from real conversations; if these raised, garbling them would prove little.
    assert feed_server([CLIENT_STREAM]).state is State.CLOSED
    client, events = feed_client([SERVER_STREAM])
    assert client.state is State.CLOSED
    assert [type(e).__name__ for e in events] == ["Opened", "Acked", "CreditChanged", "Nacked", "PeerClosed"]
    assert events[-1] == PeerClosed(0, "bye")


@FUZZ
@given(st.binary(max_size=300), st.integers(1, 64))
def test_random_bytes_into_frame_decoder(data: bytes, chunk: int) -> None:
    dec = FrameDecoder(128)
    try:
        for pos in range(0, len(data), chunk):
            dec.feed(data[pos : pos + chunk])
            while dec.next_message() is not None:
                pass
    except RemoteProtocolError:
        pass


@FUZZ
@given(garbled(CLIENT_STREAM + SERVER_STREAM))
def test_garbled_frames_into_frame_decoder(chunks: list[bytes]) -> None:
    dec = FrameDecoder(4096)
    try:
        for chunk in chunks:
            dec.feed(chunk)
            while dec.next_message() is not None:
                pass
    except RemoteProtocolError:
        pass


@FUZZ
@given(st.lists(st.binary(max_size=80), max_size=6))
def test_random_bytes_into_server(chunks: list[bytes]) -> None:
    expect_only_protocol_errors(feed_server, chunks)


@FUZZ
@given(garbled(CLIENT_STREAM))
def test_garbled_conversation_into_server(chunks: list[bytes]) -> None:
    expect_only_protocol_errors(feed_server, chunks)


@FUZZ
@given(st.lists(st.binary(max_size=80), max_size=6))
def test_random_bytes_into_client(chunks: list[bytes]) -> None:
    expect_only_protocol_errors(feed_client, chunks)


@FUZZ
@given(garbled(SERVER_STREAM))
def test_garbled_conversation_into_client(chunks: list[bytes]) -> None:
    expect_only_protocol_errors(feed_client, chunks)


@FUZZ
@given(st.lists(messages, min_size=1, max_size=5), st.integers(1, 50))
def test_generated_messages_round_trip(msgs: list[Message], chunk: int) -> None:
    stream = b"".join(encode_frame(m) for m in msgs)
    dec = FrameDecoder(1 << 16)
    got: list[Message] = []
    for pos in range(0, len(stream), chunk):
        dec.feed(stream[pos : pos + chunk])
        while (m := dec.next_message()) is not None:
            got.append(m)
    assert got == msgs
