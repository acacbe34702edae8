"""RFC 6587 framing: detection per connection, octet counting, LF/NUL, bounds, independence from reads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logferry.inputs.syslog.framing import Frame, Mode, SyslogFramer

MAX = 64


def frames_of(data: bytes, cuts: list[int] | None = None, max_bytes: int = MAX) -> list[Frame]:
    """Feed ``data`` split at ``cuts`` (offsets), then close; all frames in order."""
    framer = SyslogFramer(max_bytes)
    out: list[Frame] = []
    start = 0
    for cut in sorted(set(cuts or [])):
        out += framer.feed(data[start:cut])
        start = cut
    out += framer.feed(data[start:])
    return out + framer.close()


def datas(frames: list[Frame]) -> list[bytes]:
    return [f.data for f in frames]


def test_octet_counting_is_detected_from_a_leading_digit() -> None:
    framer = SyslogFramer(MAX)
    assert framer.feed(b"5 hello11 hello\nworld") == [Frame(b"hello", 5), Frame(b"hello\nworld", 11)]
    assert framer.mode is Mode.OCTET_COUNTING


def test_lf_nul_and_crlf_end_messages_and_empty_lines_vanish() -> None:
    framer = SyslogFramer(MAX)
    assert datas(framer.feed(b"<1>a\n<2>b\r\n\n<3>c\x00<4>d")) == [b"<1>a", b"<2>b", b"<3>c"]
    assert framer.mode is Mode.NON_TRANSPARENT
    assert framer.buffered == 4
    assert datas(framer.close()) == [b"<4>d"]


def test_newline_between_octet_frames_is_skipped() -> None:
    assert datas(frames_of(b"3 abc\n3 def\r\n")) == [b"abc", b"def"]


def test_a_sender_that_is_not_octet_counting_after_all_falls_back_to_lines() -> None:
    data = b"2026-11-25 10:00:00 plain line\nsecond line\n"
    assert datas(frames_of(data)) == [b"2026-11-25 10:00:00 plain line", b"second line"]
    assert datas(frames_of(b"3 abc0 x\n")) == [b"abc", b"0 x"]  # a leading zero is no length
    assert datas(frames_of(b"12345678901 x\n")) == [b"12345678901 x"]  # nor are 11 digits


def test_long_octet_frame_is_cut_and_the_next_one_survives() -> None:
    body = b"x" * 200
    frames = frames_of(b"200 " + body + b"3 end")
    assert frames == [Frame(body[:MAX], 200), Frame(b"end", 3)]
    assert frames[0].cut and not frames[1].cut


def test_long_line_is_cut_and_the_next_one_survives() -> None:
    frames = frames_of(b"y" * 150 + b"\nnext\n", cuts=[10, 70, 100])
    assert frames == [Frame(b"y" * MAX, 150), Frame(b"next", 4)]


def test_an_abandoned_octet_frame_is_kept_incomplete() -> None:
    assert frames_of(b"10 abc") == [Frame(b"10 abc", 6, complete=False)]
    assert frames_of(b"100 " + b"z" * 80) == [Frame(b"z" * MAX, 100, complete=False)]


def test_buffer_stays_bounded_while_a_huge_frame_streams_by() -> None:
    framer = SyslogFramer(MAX)
    assert framer.feed(b"1000000 " + b"a" * 100) == []
    for _ in range(99):
        assert framer.feed(b"a" * 9_999) == []
        assert framer.buffered == 0 or len(framer._buf) < 2 * MAX
    assert framer.feed(b"a" * 9_999 + b"1 b") == [Frame(b"a" * MAX, 1_000_000), Frame(b"b", 1)]


def test_too_small_a_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        SyslogFramer(4)


# Streams built from pieces likely to trip a framer: digits, spaces, terminators, long runs.
_pieces = st.sampled_from(
    [b"1", b"12", b"0", b" ", b"\n", b"\r", b"\x00", b"<13>", b"x" * 70, b"ab", b"9 ", b"\xff"]
)
_streams = st.lists(_pieces, max_size=40).map(b"".join) | st.binary(max_size=300)


@settings(max_examples=400, deadline=None)
@given(data=_streams, cuts=st.lists(st.integers(0, 300), max_size=8))
def test_any_split_yields_the_same_frames(data: bytes, cuts: list[int]) -> None:
    whole = frames_of(data)
    assert frames_of(data, [c for c in cuts if c <= len(data)]) == whole
    for frame in whole:
        assert len(frame.data) <= MAX
        assert frame.size >= len(frame.data)


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(st.binary(min_size=1, max_size=100), max_size=10), cuts=st.lists(st.integers(0, 2000))
)
def test_octet_counted_messages_come_back_exactly(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(b"%d %s" % (len(m), m) for m in messages)
    frames = frames_of(stream, [c for c in cuts if c <= len(stream)])
    assert [(f.data, f.size) for f in frames] == [(m[:MAX], len(m)) for m in messages]


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.binary(min_size=1, max_size=50).filter(lambda b: not set(b) & {10, 13, 0}), min_size=1, max_size=10
    )
)
def test_lf_lines_come_back_exactly(lines: list[bytes]) -> None:
    stream = b"<1>" + b"\n".join(lines) + b"\n"
    first, *rest = datas(frames_of(stream, [1, 5, 9]))
    assert [first[3:], *rest] == lines
