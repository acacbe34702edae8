"""Whole-file transfer in the sans-IO core: offer, resume, windowed chunks, done, verdicts; and misuse."""

from __future__ import annotations

import pytest

from logferry.errors import LocalProtocolError, RemoteProtocolError
from logferry.protocol.connection import (
    Authenticated,
    ChunkReceived,
    ClientConnection,
    FileAnswered,
    FileFinished,
    FileOffered,
    Opened,
    ServerConnection,
)
from logferry.protocol.files import WINDOW_CHUNKS
from logferry.protocol.framing import encode_frame
from logferry.protocol.messages import (
    Code,
    FileAck,
    FileChunk,
    FileDone,
    FileNack,
    FileOffer,
    FileProgress,
    FileResume,
    PeerRole,
)

SHA = bytes(32)
OFFER = FileOffer("dev-a/files", 1, "out/a.bin", 10, 5, SHA)


def pair(role: PeerRole = PeerRole.AGENT) -> tuple[ClientConnection, ServerConnection]:
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


def relay(server: ServerConnection, frame: bytes) -> object:
    server.receive_data(frame, 0.0)
    return server.next_event()


def back(client: ClientConnection, frame: bytes) -> object:
    client.receive_data(frame, 0.0)
    return client.next_event()


def test_a_transfer_resumes_at_the_offset_the_server_names_and_ends_with_an_ack() -> None:
    client, server = pair()
    assert relay(server, client.offer_file(OFFER, 0.0)) == FileOffered(OFFER)
    assert back(client, server.file_resume(4)) == FileAnswered(FileResume("dev-a/files", 1, 4))
    for offset, data in ((4, b"abc"), (7, b"def")):
        event = relay(server, client.send_chunk(FileChunk("dev-a/files", 1, offset, data), 0.0))
        assert isinstance(event, ChunkReceived) and event.chunk.offset == offset
        assert back(client, server.file_progress()) == FileAnswered(
            FileProgress("dev-a/files", 1, offset + 3)
        )
    assert isinstance(relay(server, client.file_done(FileDone("dev-a/files", 1, SHA), 0.0)), FileFinished)
    assert back(client, server.file_ack()) == FileAnswered(FileAck("dev-a/files", 1))
    client.offer_file(FileOffer("dev-a/files", 2, "b", 0, 5, SHA), 0.0)  # the next one may start


def test_the_window_holds_at_most_two_unconfirmed_chunks() -> None:
    client, server = pair()
    relay(server, client.offer_file(OFFER, 0.0))
    back(client, server.file_resume(0))
    for i in range(WINDOW_CHUNKS):
        relay(server, client.send_chunk(FileChunk("dev-a/files", 1, i, b"x"), 0.0))
    assert not client.file_window_open
    with pytest.raises(LocalProtocolError, match="await FileProgress"):
        client.send_chunk(FileChunk("dev-a/files", 1, WINDOW_CHUNKS, b"x"), 0.0)
    back(client, server.file_progress())
    assert client.file_window_open


def test_a_held_file_is_acknowledged_at_once_and_a_refusal_drops_stragglers() -> None:
    client, server = pair()
    relay(server, client.offer_file(OFFER, 0.0))
    assert back(client, server.file_ack()) == FileAnswered(FileAck("dev-a/files", 1))
    relay(server, client.offer_file(FileOffer("dev-a/files", 2, "b", 10, 5, SHA), 0.0))
    back(client, server.file_resume(0))
    chunk = client.send_chunk(FileChunk("dev-a/files", 2, 0, b"12345"), 0.0)
    nack = server.file_nack(Code.STORE_FAILED, "disk full", True)
    assert relay(server, chunk) is None  # already on the wire when we refused: dropped, not an error
    assert back(client, nack) == FileAnswered(
        FileNack("dev-a/files", 2, int(Code.STORE_FAILED), "disk full", True)
    )


def test_peer_faults_and_local_misuse() -> None:
    client, server = pair()
    with pytest.raises(RemoteProtocolError) as info:
        relay(
            server, encode_frame(FileOffer("other/files", 1, "a", 1, 1, SHA))
        )  # an agent offers its own only
    assert info.value.code == Code.SOURCE_MISMATCH
    client, server = pair()
    relay(server, client.offer_file(OFFER, 0.0))
    back(client, server.file_resume(0))
    with pytest.raises(RemoteProtocolError):
        relay(server, encode_frame(FileChunk("dev-a/files", 1, 3, b"gap")))  # does not continue at 0
    client, _ = pair()
    with pytest.raises(LocalProtocolError):
        client.offer_file(FileOffer("dev-a/files", 1, "a", 1, 1, b"short"), 0.0)
    client.offer_file(OFFER, 0.0)
    with pytest.raises(LocalProtocolError):
        client.send_chunk(FileChunk("dev-a/files", 1, 0, b"x"), 0.0)  # no Resume yet
    with pytest.raises(RemoteProtocolError):
        back(client, encode_frame(FileResume("dev-a/files", 1, 11)))  # past the size


def test_a_relay_may_offer_files_of_any_source() -> None:
    client, server = pair(PeerRole.RELAY)
    offer = FileOffer("edge-9/files", 3, "x", 1, 1, SHA)
    assert relay(server, client.offer_file(offer, 0.0)) == FileOffered(offer)
