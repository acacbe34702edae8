"""The line framer and the multiline joiner: pure, fed bytes and lines directly."""

from __future__ import annotations

import re

import pytest

from logferry.inputs.framing import LineFramer
from logferry.inputs.multiline import MultilineJoiner


def test_whole_lines_and_partial_tail() -> None:
    fr = LineFramer(100)
    framed = fr.frame(b"a\nbb\r\n\nccc", 10)
    assert framed.pieces == [b"a", b"bb\r", b""]
    assert framed.consumed == 7
    assert framed.parts is None


def test_partial_line_waits_unless_at_eof() -> None:
    fr = LineFramer(100)
    assert fr.frame(b"abc", 10).consumed == 0
    framed = fr.frame(b"abc", 10, at_eof=True)
    assert (framed.pieces, framed.consumed) == ([b"abc"], 3)


def test_max_lines_leaves_the_rest_unconsumed() -> None:
    fr = LineFramer(100)
    framed = fr.frame(b"1\n2\n3\n4\n", 2)
    assert (framed.pieces, framed.consumed) == ([b"1", b"2"], 4)


def test_long_terminated_line_is_cut_into_flagged_parts() -> None:
    fr = LineFramer(4)
    framed = fr.frame(b"abcdefghij\nk\n", 10)
    assert framed.pieces == [b"abcd", b"efgh", b"ij", b"k"]
    assert framed.parts == [1, 2, -3, 0]
    assert framed.consumed == 13
    assert fr.part == 0


def test_long_unterminated_line_is_cut_across_calls() -> None:
    fr = LineFramer(4)
    data = b"abcdefghij\nz\n"
    offset = 0
    pieces: list[bytes] = []
    parts: list[int] = []
    while True:
        # Offer only a little more than max_line_bytes at a time, as a file read at the offset would.
        framed = fr.frame(data[offset : offset + 5], 10)
        if not framed.consumed:
            break
        pieces += framed.pieces
        parts += framed.parts or [0] * len(framed.pieces)
        offset += framed.consumed
    assert pieces == [b"abcd", b"efgh", b"ij", b"z"]
    assert parts == [1, 2, -3, 0]
    assert offset == len(data)


def test_part_counter_survives_a_restart() -> None:
    fr = LineFramer(4, part=2)  # restored from a checkpoint taken after two parts
    framed = fr.frame(b"ij\n", 10)
    assert framed.parts == [-3]


def test_cut_never_splits_a_utf8_character() -> None:
    fr = LineFramer(4)
    framed = fr.frame("abcé".encode() + b"\n", 10)  # é is 2 bytes at positions 3-4
    assert framed.pieces == [b"abc", "é".encode()]
    assert all(p.decode() for p in framed.pieces)


def _stream(framer: LineFramer, data: bytes, chunk: int, encoding: str) -> list[str]:
    """Frame ``data`` as a tail does: read ``chunk`` bytes at the consumed offset, again and again."""
    lines: list[str] = []
    offset = 0
    while offset < len(data):
        window = data[offset : offset + chunk]
        framed = framer.frame(window, 1000, at_eof=offset + len(window) >= len(data))
        if not framed.consumed:  # no line end in the window: read more at once, as a tail does
            chunk *= 2
            continue
        lines += [p.decode(encoding, "replace") for p in framed.pieces]
        offset += framed.consumed
    return lines


@pytest.mark.parametrize(("encoding", "newline"), [("utf-16-le", b"\n\x00"), ("utf-16-be", b"\x00\n")])
def test_utf16_lines_end_only_on_a_character_boundary(encoding: str, newline: bytes) -> None:
    """UTF-16 text whose newline bytes also straddle two characters (U+0A41 U+4100 in little-endian,
    U+4100 U+0A41 in big-endian), CRLF line ends and a character outside the BMP, read in windows of every
    size from 2 to the whole: always the same lines, never cut at a straddling pair."""
    text = "first\r\nstraddle \u0a41\u4100\u0a41 end\r\n\U0001f600 smile\n\nlast"
    data = text.encode(encoding)
    at = [i for i in range(len(data) - 1) if data[i : i + 2] == newline]
    assert any(i % 2 for i in at)  # the newline's bytes straddle two characters somewhere
    want = ["first\r", "straddle \u0a41\u4100\u0a41 end\r", "\U0001f600 smile", "", "last"]
    for chunk in range(2, len(data) + 1):
        assert _stream(LineFramer(1000, newline=newline), data, chunk, encoding) == want, chunk
    assert LineFramer(1000, newline=newline).has_line_end("a\u0a41\u4100b".encode(encoding)) is False


def test_a_long_utf16_line_is_cut_between_characters_never_inside_a_pair() -> None:
    framer = LineFramer(8, newline=b"\n\x00")
    data = "abc\U0001f600defgh\n".encode("utf-16-le")  # the pair would straddle the first cut at 8 bytes
    framed = framer.frame(data, 10)
    assert [p.decode("utf-16-le") for p in framed.pieces] == ["abc", "\U0001f600de", "fgh"]
    assert framed.parts == [1, 2, -3] and framed.consumed == len(data)
    assert all(len(p) % 2 == 0 for p in framed.pieces)


def test_framer_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_line_bytes"):
        LineFramer(1)
    with pytest.raises(ValueError, match="max_lines"):
        LineFramer(10).frame(b"a\n", 0)


START = re.compile(r"^\d{4}-")


def test_joiner_joins_continuations_until_next_start() -> None:
    j = MultilineJoiner(START, 1000)
    assert j.push("2024-01-01 ERROR boom", 21, 0, 0.0) is None
    assert j.start_offset == 0
    assert j.push("  at a()", 8, 22, 0.0) is None
    assert j.push("", 0, 31, 0.0) is None  # blank line inside a record is kept
    assert j.push("  at b()", 8, 32, 0.0) is None
    assert j.push("2024-01-01 INFO next", 20, 41, 0.0) == "2024-01-01 ERROR boom\n  at a()\n\n  at b()"
    assert j.start_offset == 41
    assert j.flush() == "2024-01-01 INFO next"
    assert j.start_offset is None
    assert j.flush() is None


def test_joiner_idle_time_and_orphan_lines() -> None:
    j = MultilineJoiner(START, 1000)
    assert j.idle_for(5.0) == 0.0
    assert j.push("", 0, 0, 1.0) is None  # blank line outside a record: nothing pending
    assert not j.pending
    assert j.push("orphan continuation", 19, 1, 1.0) is None  # lines before any start still form a record
    assert j.idle_for(1.5) == pytest.approx(0.5)
    assert j.flush() == "orphan continuation"


def test_joiner_bounds_record_size() -> None:
    j = MultilineJoiner(START, 20)
    assert j.push("2024-x 0123456789", 17, 0, 0.0) is None
    assert j.push("overflow", 8, 18, 0.0) == "2024-x 0123456789"  # 17 + 1 + 8 > 20
    assert j.start_offset == 18
    assert j.flush() == "overflow"
