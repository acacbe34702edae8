"""Whole-file transfer in the sans-IO core: offer, resume, windowed chunks, done, verdicts, several files in
transfer, a file in one frame, cancel; the new messages' exact bytes, fed whole and split at every offset."""

from __future__ import annotations

import pytest

from logferry.errors import LocalProtocolError, RemoteProtocolError
from logferry.protocol.connection import (
    Authenticated,
    ChunkReceived,
    ClientConnection,
    FileAnswered,
    FileCancelled,
    FileFinished,
    FileOffered,
    Opened,
    ServerConnection,
    WholeReceived,
)
from logferry.protocol.files import FILES_IN_FLIGHT, WINDOW_CHUNKS
from logferry.protocol.framing import FrameDecoder, FramePiece, encode_frame
from logferry.protocol.messages import (
    BundledFile,
    Code,
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
    PeerRole,
)

SHA = bytes(32)
OFFER = FileOffer("dev-a/files", 1, "out/a.bin", 10, 5, SHA)
ID1 = ("dev-a/files", 1)


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


def relay(server: ServerConnection, frame: bytes | list[FramePiece]) -> object:
    server.receive_data(frame if isinstance(frame, bytes) else b"".join(frame), 0.0)
    return server.next_event()


def back(client: ClientConnection, frame: bytes) -> object:
    client.receive_data(frame, 0.0)
    return client.next_event()


def test_a_transfer_resumes_at_the_offset_the_server_names_and_ends_with_an_ack() -> None:
    client, server = pair()
    assert relay(server, client.offer_file(OFFER, 0.0)) == FileOffered(OFFER)
    assert back(client, server.file_resume("dev-a/files", 1, 4)) == FileAnswered(
        FileResume("dev-a/files", 1, 4)
    )
    for offset, data in ((4, b"abc"), (7, b"def")):
        event = relay(server, client.send_chunk(FileChunk("dev-a/files", 1, offset, data), 0.0))
        assert isinstance(event, ChunkReceived) and event.chunk.offset == offset
        assert back(client, server.file_progress(*ID1)) == FileAnswered(
            FileProgress("dev-a/files", 1, offset + 3)
        )
    assert isinstance(relay(server, client.file_done(FileDone("dev-a/files", 1, SHA), 0.0)), FileFinished)
    assert back(client, server.file_ack(*ID1)) == FileAnswered(FileAck("dev-a/files", 1))
    client.offer_file(FileOffer("dev-a/files", 2, "b", 0, 5, SHA), 0.0)  # the next one may start


def test_the_window_holds_at_most_two_unconfirmed_chunks() -> None:
    client, server = pair()
    relay(server, client.offer_file(OFFER, 0.0))
    back(client, server.file_resume(*ID1, 0))
    for i in range(WINDOW_CHUNKS):
        relay(server, client.send_chunk(FileChunk("dev-a/files", 1, i, b"x"), 0.0))
    assert not client.file_window_open(*ID1)
    with pytest.raises(LocalProtocolError, match="await FileProgress"):
        client.send_chunk(FileChunk("dev-a/files", 1, WINDOW_CHUNKS, b"x"), 0.0)
    back(client, server.file_progress(*ID1))
    assert client.file_window_open(*ID1)


def test_a_held_file_is_acknowledged_at_once_and_a_refusal_drops_stragglers() -> None:
    client, server = pair()
    relay(server, client.offer_file(OFFER, 0.0))
    assert back(client, server.file_ack(*ID1)) == FileAnswered(FileAck("dev-a/files", 1))
    relay(server, client.offer_file(FileOffer("dev-a/files", 2, "b", 10, 5, SHA), 0.0))
    back(client, server.file_resume("dev-a/files", 2, 0))
    chunk = client.send_chunk(FileChunk("dev-a/files", 2, 0, b"12345"), 0.0)
    nack = server.file_nack("dev-a/files", 2, Code.STORE_FAILED, "disk full", True)
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
    back(client, server.file_resume(*ID1, 0))
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


# ---- several files in transfer, a file in one frame, cancel (docs/PROTOCOL.md §13) ----------------------

WHOLE = FileWhole("dev-a/files", 5, "out/s.txt", 3, 7, SHA, b"abc")
PINNED = [
    # FileWhole("d/files", 1, "a", 3, 5, 00 01 … 1f, b"abc"): offer, content and done in one frame
    (
        FileWhole("d/files", 1, "a", 3, 5, bytes(range(32)), b"abc"),
        "00000036981aa7642f66696c657301a1610305c420" + bytes(range(32)).hex() + "c403616263",
    ),
    # FileCancel("d/files", 1, discard=True)
    (FileCancel("d/files", 1, True), "0000000c941ba7642f66696c657301c3"),
    # version 2 (§13.7): FileBundle(7, [BundledFile("d/files", 1, "a", 3, 5, 00 01 … 1f, b"abc")])
    (
        FileBundle(7, [BundledFile("d/files", 1, "a", 3, 5, bytes(range(32)), b"abc")]),
        "00000039931c079197a7642f66696c657301a1610305c420" + bytes(range(32)).hex() + "c403616263",
    ),
    # FileBundleAck(7, [FileNack("d/files", 2, MALFORMED, "bad", retry=False)]), and with nothing refused
    (
        FileBundleAck(7, [FileNack("d/files", 2, 1, "bad", False)]),
        "00000015931d07919611a7642f66696c65730201a3626164c2",
    ),
    (FileBundleAck(7, []), "00000004931d0790"),
]


@pytest.mark.parametrize(
    ("msg", "hexframe"),
    PINNED,
    ids=["FileWhole", "FileCancel", "FileBundle", "FileBundleAck", "FileBundleAck-empty"],
)
def test_new_file_messages_are_pinned_and_decode_split_at_every_offset(msg: object, hexframe: str) -> None:
    frame = bytes.fromhex(hexframe)
    assert encode_frame(msg) == frame  # type: ignore[arg-type]
    for cut in range(len(frame) + 1):
        dec = FrameDecoder(1024)
        dec.feed(frame[:cut])
        first = dec.next_message()
        dec.feed(frame[cut:])
        got = first if first is not None else dec.next_message()
        assert got == msg, cut
        assert dec.next_message() is None


def test_several_files_are_in_transfer_at_once_and_their_chunks_interleave() -> None:
    client, server = pair()
    offers = [FileOffer("dev-a/files", seq, f"f{seq}", 4, 5, SHA) for seq in range(1, FILES_IN_FLIGHT + 1)]
    for offer in offers:
        assert relay(server, client.offer_file(offer, 0.0)) == FileOffered(offer)
    assert not client.files_room
    with pytest.raises(LocalProtocolError, match="in transfer"):
        client.offer_file(FileOffer("dev-a/files", 99, "x", 1, 1, SHA), 0.0)
    for seq in (2, 1):
        back(client, server.file_resume("dev-a/files", seq, 0))
    for seq, offset in ((1, 0), (2, 0), (1, 2), (2, 2)):
        event = relay(server, client.send_chunk(FileChunk("dev-a/files", seq, offset, b"xy"), 0.0))
        assert isinstance(event, ChunkReceived) and event.chunk.seq == seq
    for seq in (2, 1):
        assert isinstance(
            relay(server, client.file_done(FileDone("dev-a/files", seq, SHA), 0.0)), FileFinished
        )
    assert back(client, server.file_ack("dev-a/files", 2)) == FileAnswered(FileAck("dev-a/files", 2))
    assert client.files_room  # one verdict frees one place
    # a server counts too: a client over the limit is cut off
    _, server = pair()
    for offer in offers:
        relay(server, encode_frame(offer))
    with pytest.raises(RemoteProtocolError) as info:
        relay(server, encode_frame(FileOffer("dev-a/files", 99, "x", 1, 1, SHA)))
    assert info.value.code == Code.CREDIT_EXCEEDED


def test_a_small_file_travels_in_one_frame_and_is_answered_by_its_verdict() -> None:
    client, server = pair()
    assert relay(server, client.send_whole(WHOLE, 0.0)) == WholeReceived(WHOLE)
    with pytest.raises(LocalProtocolError):
        client.send_chunk(FileChunk("dev-a/files", 5, 0, b"abc"), 0.0)  # it was all in the frame
    assert back(client, server.file_ack("dev-a/files", 5)) == FileAnswered(FileAck("dev-a/files", 5))
    with pytest.raises(RemoteProtocolError) as info:  # the content must have the size it claims
        relay(server, encode_frame(FileWhole("dev-a/files", 6, "s", 4, 7, SHA, b"abc")))
    assert info.value.code == Code.MALFORMED
    client, _ = pair()
    with pytest.raises(LocalProtocolError, match="over the limit"):
        client.send_whole(FileWhole("dev-a/files", 7, "s", 2 << 20, 7, SHA, bytes(2 << 20)), 0.0)


def test_a_cancelled_transfer_ends_on_both_sides_and_its_stragglers_are_dropped() -> None:
    client, server = pair()
    relay(server, client.offer_file(OFFER, 0.0))
    with pytest.raises(LocalProtocolError, match="not sending"):
        client.cancel_file(FileCancel(*ID1, False), 0.0)  # before the Resume its answer is still coming
    back(client, server.file_resume(*ID1, 0))
    relay(server, client.send_chunk(FileChunk(*ID1, 0, b"abc"), 0.0))
    progress = server.file_progress(*ID1)  # written, confirmed, but still on the wire when we cancel
    cancel = client.cancel_file(FileCancel(*ID1, True), 0.0)
    assert back(client, progress) is None  # a straggler of the cancelled transfer
    assert relay(server, cancel) == FileCancelled(FileCancel(*ID1, True))
    assert relay(server, encode_frame(FileDone(*ID1, SHA))) is None  # it ended here: dropped
    client, server = pair()
    relay(server, client.offer_file(OFFER, 0.0))
    back(client, server.file_resume(*ID1, 0))
    chunk = client.send_chunk(FileChunk(*ID1, 0, b"abc"), 0.0)
    nack = server.file_nack(*ID1, Code.STORE_FAILED, "disk full", True)  # refused while our cancel travels
    cancel = client.cancel_file(FileCancel(*ID1, False), 0.0)
    assert relay(server, chunk) is None and relay(server, cancel) is None
    assert back(client, nack) is None
    assert client.files_room
