"""The reconciliation messages in the sans-IO core: who may send them, and what each side sees."""

from __future__ import annotations

import pytest

from logferry.errors import LocalProtocolError, RemoteProtocolError
from logferry.protocol.connection import (
    Answered,
    Authenticated,
    ClientConnection,
    Opened,
    QueryReceived,
    ResendRequested,
    ServerConnection,
    UnavailableReported,
)
from logferry.protocol.framing import encode_frame
from logferry.protocol.messages import ItemsAnswer, ItemsQuery, PeerRole, ReconcileAnswer, ReconcileQuery


def pair(role: PeerRole) -> tuple[ClientConnection, ServerConnection]:
    client = ClientConnection(
        source="dev-a", role=role, token=None, client_nonce=b"c" * 16, max_frame_bytes=1 << 20
    )
    server = ServerConnection(
        token_for=lambda s: None, allow_unknown=True, credit=4, max_frame_bytes=1 << 20,
        heartbeat_ms=1000, server_nonce=b"s" * 16, handshake_timeout_s=5, now=0.0,
    )  # fmt: skip
    server.receive_data(client.start(0.0), 0.0)
    assert server.next_event() is None
    client.receive_data(server.data_to_send(), 0.0)
    assert client.next_event() is None
    server.receive_data(client.data_to_send(), 0.0)
    assert isinstance(server.next_event(), Authenticated)
    client.receive_data(server.welcome(0), 0.0)
    assert isinstance(client.next_event(), Opened)
    return client, server


def test_relay_asks_and_the_collector_answers() -> None:
    client, server = pair(PeerRole.RELAY)
    server.receive_data(client.send_query(ReconcileQuery(1, 1, []), 0.0), 0.0)
    event = server.next_event()
    assert isinstance(event, QueryReceived) and event.query == ReconcileQuery(1, 1, [])
    client.receive_data(server.answer(ReconcileAnswer(1, [])), 0.0)
    assert client.next_event() == Answered(ReconcileAnswer(1, []))
    with pytest.raises(LocalProtocolError):
        server.answer(ReconcileAnswer(1, []))  # answered already
    # An answer nobody asked for is the collector's fault.
    server.receive_data(client.send_query(ItemsQuery(2, 1, "dev-a", 0, 1023), 0.0), 0.0)
    assert isinstance(server.next_event(), QueryReceived)
    client.receive_data(server.answer(ItemsAnswer(2, [], b"")), 0.0)
    assert isinstance(client.next_event(), Answered)
    client.receive_data(encode_frame(ItemsAnswer(9, [], b"")), 0.0)
    with pytest.raises(RemoteProtocolError):
        client.next_event()


def ItemsAnswerFrame(query_id: int) -> bytes:
    from logferry.protocol.framing import encode_frame

    return encode_frame(ItemsAnswer(query_id, [], b""))


def test_only_a_relay_may_ask() -> None:
    client, _ = pair(PeerRole.AGENT)
    with pytest.raises(LocalProtocolError):
        client.send_query(ReconcileQuery(1, 1, []), 0.0)


def test_resend_request_and_unavailable_between_relay_and_agent() -> None:
    client, server = pair(PeerRole.AGENT)
    client.receive_data(server.request_resend(1, [(11, 20)]), 0.0)
    event = client.next_event()
    assert isinstance(event, ResendRequested) and event.request.ranges == [(11, 20)]
    server.receive_data(client.unavailable(1, [(16, 20)], 0.0), 0.0)
    got = server.next_event()
    assert isinstance(got, UnavailableReported) and got.report.ranges == [(16, 20)]
    with pytest.raises(LocalProtocolError):
        server.request_resend(2, [(5, 1)])  # an impossible range is our bug, not sent
