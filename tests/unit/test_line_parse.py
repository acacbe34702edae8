"""The line protocol's parser and framing: name&&message, raw fallbacks, and any split of a stream."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logferry.inputs.line import parse_line
from logferry.inputs.syslog.framing import Mode, SyslogFramer

PEER = "198.51.100.4"
NOW = 1_795_600_800_000_000_000


def test_the_prototype_message() -> None:
    source, entry, valid = parse_line(b"tester&&Hello, World!", PEER, NOW)
    assert (source, valid) == ("tester", True)
    assert (entry.ts_ns, entry.level, entry.host, entry.msg, entry.fields) == (
        NOW,
        6,
        PEER,
        "Hello, World!",
        {},
    )


def test_level_is_guessed_and_only_the_first_separator_counts() -> None:
    source, entry, _ = parse_line(b" kim &&ERROR a&&b", PEER, NOW)
    assert (source, entry.level, entry.msg) == ("kim", 3, "ERROR a&&b")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"no separator", "no '&&' between name and message"),
        (b"  &&empty name", "empty name before '&&'"),
        (b"a\tb&&tab in name", "name longer than 128 characters or not printable"),
        (b"n" * 129 + b"&&long name", "name longer than 128 characters or not printable"),
    ],
)
def test_invalid_messages_are_kept_raw_under_the_peer(data: bytes, why: str) -> None:
    source, entry, valid = parse_line(data, PEER, NOW)
    assert (source, valid, entry.host, entry.msg, entry.fields) == (
        PEER,
        False,
        PEER,
        data.decode(),
        {"parse_error": why},
    )


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_no_input_raises_and_each_is_parsed_or_raw(data: bytes) -> None:
    source, entry, valid = parse_line(data, PEER, NOW)
    text = data.decode("utf-8", "replace")
    if valid:
        assert text.partition("&&")[2] == entry.msg and source == text.partition("&&")[0].strip()
    else:
        assert (source, entry.msg) == (PEER, text) and "parse_error" in entry.fields


@settings(max_examples=300, deadline=None)
@given(
    messages=st.lists(
        st.text(
            st.characters(blacklist_characters="\n\r\x00", blacklist_categories=("Cs",)),
            min_size=1,
            max_size=30,
        ),
        max_size=8,
    ),
    cuts=st.lists(st.integers(0, 400), max_size=6),
)
def test_line_framing_is_independent_of_how_the_stream_is_split(messages: list[str], cuts: list[int]) -> None:
    stream = "".join(f"n{i}&&{m}\n" for i, m in enumerate(messages)).encode()
    framer = SyslogFramer(1024, Mode.NON_TRANSPARENT)
    got: list[bytes] = []
    start = 0
    for cut in sorted(c for c in set(cuts) if c <= len(stream)):
        got += [f.data for f in framer.feed(stream[start:cut])]
        start = cut
    got += [f.data for f in framer.feed(stream[start:])] + [f.data for f in framer.close()]
    parsed = [parse_line(d, PEER, NOW) for d in got]
    assert [(s, e.msg) for s, e, _ in parsed] == [(f"n{i}", m) for i, m in enumerate(messages)]
