"""logferry/1 framing pinned byte for byte, fed whole, split at every offset and one byte at a time.

The hex strings below ARE the wire format: if one of these tests fails, the protocol changed. Change a
string only together with docs/PROTOCOL.md and a new protocol version.
"""

from __future__ import annotations

import ast
import pathlib
import random
from collections.abc import Callable

import pytest

from logferry import model
from logferry.errors import RemoteProtocolError
from logferry.protocol import framing
from logferry.protocol.framing import (
    SPLIT_PAYLOAD_MIN,
    FrameDecoder,
    encode_chunk_frame,
    encode_frame,
    encode_frame_buffer,
)
from logferry.protocol.messages import (
    Ack,
    Auth,
    Batch,
    BundledFile,
    Challenge,
    Code,
    Credit,
    Differs,
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
    Ping,
    Pong,
    RangeSummary,
    ReconcileAnswer,
    ReconcileQuery,
    ResendRequest,
    Unavailable,
    Welcome,
)

NONCE_C = bytes(range(16))
NONCE_S = bytes(range(0xA0, 0xB0))

# (message, exact frame as hex). Every message type appears at least once.
SHA = bytes(range(32))
GOLDEN: list[tuple[Message, str]] = [
    (
        Hello([1], 1, "agent-1", NONCE_C, "lf/0.1"),
        "000000279701910101a76167656e742d31c410000102030405060708090a0b0c0d0e0fa66c662f302e31a0",
    ),
    (Challenge(1, NONCE_S), "00000015930201c410a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"),
    (Auth(b"\x11" * 32), "000000249203c420" + "11" * 32),
    (Welcome(8, 4194304, 5000, 41), "0000000e960408ce00400000cd138829c400"),
    (Welcome(8, 1048576, 5000, 0, b"\x22" * 32), "0000002e960408ce00100000cd138800c420" + "22" * 32),
    (Batch(7, "agent-1", 2, 0, b"\x92\x01\x02"), "00000012960507a76167656e742d310200c403920102"),
    (Ack(7, "agent-1", [(1, 2), (5, 9)]), "00000012940607a76167656e742d3192920102920509"),
    (Nack(8, 6, "disk full", True), "0000000f95070806a96469736b2066756c6cc3"),
    (Ping(3), "00000003920803"),
    (Pong(3), "00000003920903"),
    (Goodbye(0, "bye"), "00000007930a00a3627965"),
    (Credit(16), "00000003920b10"),
    # reconciliation (docs/PROTOCOL.md §12)
    (
        ReconcileQuery(1, 1, [RangeSummary("dev-a", 0, 1048575, 1000000, -2, 3)]),
        "00000019941401019196a56465762d6100ce000fffffce000f4240fe03",
    ),
    (ReconcileAnswer(1, []), "0000000493150190"),
    (ReconcileAnswer(2, [Differs(0, 999999, 5, -6)]), "0000000d931502919400ce000f423f05fa"),
    (ItemsQuery(3, 1, "dev-a", 1024, 2047), "0000001096160301a56465762d61cd0400cd07ff"),
    (
        ItemsAnswer(3, [(1024, 1025)], bytes(range(16))),
        "0000001d9417039192cd0400cd0401c410000102030405060708090a0b0c0d0e0f",
    ),
    (ResendRequest(1, "agent-1", [(11, 20)]), "0000000f941801a76167656e742d3191920b14"),
    (Unavailable(1, "agent-1", [(16, 20)]), "0000000f941901a76167656e742d3191921014"),
    # whole files (docs/PROTOCOL.md §13)
    (
        FileOffer("d/files", 1, "in/a.txt", 5, 1700000000000000000, SHA),
        "00000040970ca7642f66696c657301a8696e2f612e74787405cf17979cfe362a0000c420" + SHA.hex(),
    ),
    (FileResume("d/files", 1, 2), "0000000c940da7642f66696c65730102"),
    (FileChunk("d/files", 1, 2, b"llo"), "00000011950ea7642f66696c65730102c4036c6c6f"),
    (FileDone("d/files", 1, SHA), "0000002d940fa7642f66696c657301c420" + SHA.hex()),
    (FileProgress("d/files", 1, 5), "0000000c9412a7642f66696c65730105"),
    (FileAck("d/files", 1), "0000000b9310a7642f66696c657301"),
    (FileNack("d/files", 1, 6, "disk full", True), "000000179611a7642f66696c65730106a96469736b2066756c6cc3"),
    (
        FileWhole("d/files", 1, "a", 3, 5, SHA, b"abc"),
        "00000036981aa7642f66696c657301a1610305c420" + SHA.hex() + "c403616263",
    ),
    (FileCancel("d/files", 1, True), "0000000c941ba7642f66696c657301c3"),
    # version 2: many small files in one frame, one answer (§13.7)
    (
        FileBundle(7, [BundledFile("d/files", 1, "a", 3, 5, SHA, b"abc")]),
        "00000039931c079197a7642f66696c657301a1610305c420" + SHA.hex() + "c403616263",
    ),
    (FileBundleAck(7, []), "00000004931d0790"),
    (
        FileBundleAck(7, [FileNack("d/files", 2, 1, "bad", False)]),
        "00000015931d079196" + "11a7642f66696c65730201a3626164c2",
    ),
    (
        Hello([1], 1, "agent-1", NONCE_C, "lf/0.1", "0123456789abcdef"),
        "000000379701910101a76167656e742d31c410000102030405060708090a0b0c0d0e0fa66c662f302e31"
        "b030313233343536373839616263646566",
    ),
]
IDS = [f"{type(m).__name__}-{i}" for i, (m, _) in enumerate(GOLDEN)]


def drain(dec: FrameDecoder) -> list[Message]:
    out = []
    while (msg := dec.next_message()) is not None:
        out.append(msg)
    return out


def test_golden_table_covers_every_message_type() -> None:
    assert {type(m) for m, _ in GOLDEN} == set(Message.__args__)


@pytest.mark.parametrize(("msg", "hexframe"), GOLDEN, ids=IDS)
def test_encode_is_exact(msg: Message, hexframe: str) -> None:
    assert encode_frame(msg).hex() == hexframe
    assert encode_frame_buffer(msg).hex() == hexframe  # the same bytes, without the copy into bytes


@pytest.mark.parametrize(
    "size",
    [0, 1, 255, 256, SPLIT_PAYLOAD_MIN - 1, SPLIT_PAYLOAD_MIN, 0xFFFF, 0x10000, 0x10001, 4 << 20],
)
def test_a_chunk_frame_in_pieces_is_the_same_bytes_and_leaves_large_data_uncopied(size: int) -> None:
    data = random.Random(size).randbytes(size)
    chunk = FileChunk("dev-a/files", 2**40, 2**33 + 7, data)  # wide ints: the fixed part's length varies
    parts = encode_chunk_frame(chunk)
    assert b"".join(parts) == encode_frame(chunk)
    if size >= SPLIT_PAYLOAD_MIN:
        head, payload = parts
        assert isinstance(payload, memoryview) and payload.obj is data  # a view of the data, not a copy
        assert len(head) < 64
    else:
        assert len(parts) == 1
    decoder = FrameDecoder(8 << 20)
    decoder.feed(b"".join(parts))
    assert decoder.next_message() == chunk


@pytest.fixture(params=["in-place", "gathered"])
def gather(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test twice: frames decoded where they arrived, and every incomplete frame gathered in a buffer
    of its own (what happens to large chunks)."""
    if request.param == "gathered":
        monkeypatch.setattr(framing, "ASSEMBLE_MIN_BYTES", 1)
    return str(request.param)


@pytest.mark.usefixtures("gather")
@pytest.mark.parametrize(("msg", "hexframe"), GOLDEN, ids=IDS)
def test_decode_whole_split_and_bytewise(msg: Message, hexframe: str) -> None:
    frame = bytes.fromhex(hexframe)
    dec = FrameDecoder(1024)
    dec.feed(frame)
    assert drain(dec) == [msg]
    for cut in range(len(frame) + 1):
        dec = FrameDecoder(1024)
        dec.feed(frame[:cut])
        first = drain(dec)
        dec.feed(frame[cut:])
        assert first + drain(dec) == [msg], f"split at {cut}"
    dec = FrameDecoder(1024)
    got: list[Message] = []
    for i in range(len(frame)):
        dec.feed(frame[i : i + 1])
        got += drain(dec)
        assert got == ([msg] if i == len(frame) - 1 else []), f"after byte {i}"
    assert dec.buffered == 0


@pytest.mark.usefixtures("gather")
def test_concatenated_frames_split_arbitrarily() -> None:
    stream = b"".join(bytes.fromhex(h) for _, h in GOLDEN) * 3
    expected = [m for m, _ in GOLDEN] * 3
    rng = random.Random(1)
    for _ in range(50):
        assert feed_in_pieces(FrameDecoder(1024), stream, rng, 90) == expected


def feed_in_pieces(
    dec: FrameDecoder,
    stream: bytes,
    rng: random.Random,
    largest: int,
    check: Callable[[int, list[Message]], None] | None = None,
) -> list[Message]:
    """Feed ``stream`` in pieces of 1..``largest`` bytes, draining after each; ``check(fed, got)`` then."""
    got: list[Message] = []
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, largest)
        dec.feed(stream[pos : pos + step])
        got += drain(dec)
        pos = min(pos + step, len(stream))
        if check is not None:
            check(pos, got)
    return got


def test_large_frames_among_small_ones_in_random_pieces() -> None:
    """4 MiB-class chunks are gathered whole whatever the pieces they come in, the small frames around them
    decoded in order, and no more than one frame and the last piece stay buffered."""
    rng = random.Random(7)
    msgs: list[Message] = []
    for n in range(6):
        msgs.append(FileOffer("s", n, "/p", 3 << 20, 1, bytes(32)))
        msgs += [FileChunk("s", n, k << 20, rng.randbytes(1 << 20)) for k in range(3)]
        msgs.append(FileDone("s", n, bytes(32)))
    sizes = [len(encode_frame(m)) for m in msgs]
    stream = b"".join(encode_frame(m) for m in msgs)
    for _ in range(3):
        dec = FrameDecoder(2 << 20)

        def counted(fed: int, got: list[Message], dec: FrameDecoder = dec) -> None:
            # Everything received and not yet returned counts (the wire times out a frame that trickles).
            assert dec.buffered == fed - sum(sizes[: len(got)])

        assert feed_in_pieces(dec, stream, rng, 600_000, counted) == msgs
        assert dec.buffered == 0
        assert not dec._frame  # a small frame after the large ones let go of the gathering buffer


def test_a_gathered_frame_that_does_not_decode_is_malformed() -> None:
    body = b"\xc1" * framing.ASSEMBLE_MIN_BYTES
    frame = len(body).to_bytes(4, "big") + body
    dec = FrameDecoder(len(body))
    dec.feed(frame[:1000])
    assert dec.next_message() is None  # incomplete: gathered from here on
    dec.feed(frame[1000:] + encode_frame(Ping(1)))
    with pytest.raises(RemoteProtocolError, match="not a logferry/1 message") as info:
        dec.next_message()
    assert info.value.code == Code.MALFORMED
    with pytest.raises(RemoteProtocolError):
        dec.next_message()  # sticky: the Ping behind it is never parsed


def test_oversized_header_rejected_before_its_body() -> None:
    dec = FrameDecoder(100)
    dec.feed(b"\x00\x00")  # half a header says nothing yet
    with pytest.raises(RemoteProtocolError, match="101 bytes, over the limit of 100") as info:
        dec.feed(b"\x00\x65")  # 101: the body never has to arrive
    assert info.value.code == Code.TOO_LARGE
    assert dec.buffered == 4


def test_frame_exactly_at_the_limit_is_accepted() -> None:
    frame = encode_frame(Goodbye(0, "x" * 50))
    dec = FrameDecoder(len(frame) - 4)
    dec.feed(frame)
    assert drain(dec) == [Goodbye(0, "x" * 50)]


def test_oversized_header_after_a_good_frame() -> None:
    dec = FrameDecoder(100)
    dec.feed(encode_frame(Ping(1)) + b"\xff\xff\xff\xff")
    assert dec.next_message() == Ping(1)
    with pytest.raises(RemoteProtocolError) as info:
        dec.next_message()
    assert info.value.code == Code.TOO_LARGE


def test_zero_length_frame_is_malformed() -> None:
    dec = FrameDecoder(100)
    with pytest.raises(RemoteProtocolError, match="empty body") as info:
        dec.feed(b"\x00\x00\x00\x00")
    assert info.value.code == Code.MALFORMED


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"\xc1", "invalid"),  # 0xc1 is never used in msgpack
        (b"\x92\x13\x00", "19"),  # tag 19 does not exist (reserved)
        (b"\x92\x08\xa1x", "int"),  # Ping with a str nonce
        (b"\x92\x08\x03\x00", "trailing"),  # a message followed by junk inside the same frame
        (b"\x91\x08", "at least length 2"),  # Ping without its nonce
    ],
)
def test_undecodable_body_is_malformed_and_says_why(body: bytes, why: str) -> None:
    dec = FrameDecoder(100)
    dec.feed(len(body).to_bytes(4, "big") + body)
    with pytest.raises(RemoteProtocolError, match="not a logferry/1 message") as info:
        dec.next_message()
    assert info.value.code == Code.MALFORMED
    assert why in str(info.value).lower()


def test_errors_are_sticky() -> None:
    dec = FrameDecoder(100)
    with pytest.raises(RemoteProtocolError):
        dec.feed(b"\x00\x00\x00\x00")
    # The stream cannot be resynchronised: a valid frame afterwards must not be parsed as if nothing happened.
    with pytest.raises(RemoteProtocolError):
        dec.feed(encode_frame(Ping(1)))
    with pytest.raises(RemoteProtocolError):
        dec.next_message()


def test_bad_limits_rejected() -> None:
    with pytest.raises(ValueError, match="max_frame_bytes"):
        FrameDecoder(0)
    with pytest.raises(ValueError, match="max_frame_bytes"):
        FrameDecoder(2**32)


def test_realistic_batches_in_socket_sized_chunks_keep_the_buffer_bounded() -> None:
    records = [
        model.make_record(i, 1_700_000_000_000_000_000 + i, 6, "h", "/var/log/x", "m" * 150)
        for i in range(1000)
    ]
    body = model.encode_body(records)
    frames = [encode_frame(Batch(n, "agent-1", len(records), 0, body)) for n in range(1, 6)]
    stream = b"".join(frames)
    chunk = 65536
    dec = FrameDecoder(len(frames[0]))
    got: list[Message] = []
    for pos in range(0, len(stream), chunk):
        dec.feed(stream[pos : pos + chunk])
        got += drain(dec)
        # At most one incomplete frame remains buffered once drained.
        assert dec.buffered < len(frames[0])
    assert [m.batch_id for m in got if isinstance(m, Batch)] == [1, 2, 3, 4, 5]
    assert model.decode_body(got[-1].body, 0, 10_000_000) == records  # type: ignore[union-attr]


def doc_examples() -> list[str]:
    """The hex of each example frame in docs/PROTOCOL.md (the bytes before each line's comment)."""
    doc = pathlib.Path(__file__).parents[2] / "docs" / "PROTOCOL.md"
    section = doc.read_text(encoding="utf-8").split("### Examples", 1)[1].split("## 2.", 1)[0]
    blocks = section.split("```")[1::2]
    out = []
    for block in blocks[:2]:
        hexes = []
        for line in block.splitlines():
            for token in line.split():
                if len(token) != 2 or any(c not in "0123456789abcdef" for c in token):
                    break
                hexes.append(token)
        out.append("".join(hexes))
    return out


def test_the_specification_shows_the_real_bytes() -> None:
    hello, ack = GOLDEN[0][1], GOLDEN[6][1]
    assert isinstance(GOLDEN[0][0], Hello) and isinstance(GOLDEN[6][0], Ack)
    assert doc_examples() == [hello, ack]


# ---- the core must stay sans-IO ---------------------------------------------------------------------

FORBIDDEN = {
    "asyncio",
    "socket",
    "time",
    "os",
    "random",
    "selectors",
    "secrets",
    "ssl",
    "threading",
    "subprocess",
}
PROTOCOL_DIR = pathlib.Path(framing.__file__).parent


def forbidden_imports(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in FORBIDDEN}
    return found


def test_the_import_checker_catches_every_spelling() -> None:
    src = "import os.path\nfrom time import monotonic\nimport asyncio as aio\ndef f():\n    import socket\n"
    assert forbidden_imports(src) == {"os.path", "time", "asyncio", "socket"}


def test_protocol_package_does_no_io() -> None:
    modules = sorted(PROTOCOL_DIR.glob("*.py"))
    assert {p.name for p in modules} >= {"framing.py", "auth.py", "connection.py", "messages.py"}
    for path in modules:
        assert forbidden_imports(path.read_text(encoding="utf-8")) == set(), path.name
