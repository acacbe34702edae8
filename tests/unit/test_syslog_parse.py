"""RFC 5424 and RFC 3164 parsing (with vendor variations): every field, every fallback, never an exception."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logferry.inputs.syslog.framing import Frame
from logferry.inputs.syslog.message import iso_timestamp_ns, yearless_local_ns
from logferry.inputs.syslog.parse import frame_entry, parse_frame

PEER = "192.0.2.7"
NOW = int(time.mktime((2026, 11, 25, 12, 0, 0, 0, 0, -1))) * 1_000_000_000
S = 1_000_000_000


def local_ns(*ymdhms: int) -> int:
    return int(time.mktime((*ymdhms, 0, 0, -1))) * S


def test_rfc5424_example_with_structured_data_and_bom() -> None:
    line = (
        '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
        'eventSource="Appl\\"ic\\]ation\\\\" eventID="1011"][examplePriority@32473 class="high"][flag] '
        "\ufeffAn application event log entry...\n"
    )
    e = parse_frame(line.encode(), PEER, NOW)
    assert (e.host, e.level, e.msg) == ("mymachine.example.com", 5, "An application event log entry...")
    assert e.ts_ns == 1065910455003000000
    assert e.fields == {
        "syslog": "rfc5424",
        "facility": "local4",
        "appname": "evntslog",
        "msgid": "ID47",
        "sd.exampleSDID@32473.iut": "3",
        "sd.exampleSDID@32473.eventSource": 'Appl"ic]ation\\',
        "sd.exampleSDID@32473.eventID": "1011",
        "sd.examplePriority@32473.class": "high",
        "sd.flag": "",
    }


@pytest.mark.parametrize(
    ("stamp", "want"),
    [
        ("1985-04-12T23:20:50.52Z", 482196050520000000),
        ("1985-04-12T19:20:50.52-04:00", 482196050520000000),
        ("2003-10-11T22:14:15.000000003Z", 1065910455000000003),
        ("2003-08-24T05:14:15.000003-07:00", 1061727255000003000),
    ],
)
def test_rfc5424_timestamps(stamp: str, want: int) -> None:
    assert iso_timestamp_ns(stamp) == want
    assert parse_frame(f"<34>1 {stamp} h a 1 - - m".encode(), PEER, NOW).ts_ns == want


def test_rfc5424_nil_values_and_a_bad_timestamp() -> None:
    e = parse_frame(b"<34>1 - - - - - -", PEER, NOW)
    assert (e.host, e.ts_ns, e.msg, e.fields) == (PEER, NOW, "", {"syslog": "rfc5424", "facility": "auth"})
    bad = parse_frame(b"<34>1 2003-13-40T99:00:00Z h a - - - m", PEER, NOW)
    assert (bad.ts_ns, bad.fields["timestamp_error"], bad.msg) == (NOW, "2003-13-40T99:00:00Z", "m")


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("<34>1 only two", "RFC 5424: expected 7 header fields, found 4"),
        ('<34>1 - h a - - [x a="1" oops', "RFC 5424: malformed STRUCTURED-DATA"),
        ("<34>1 - h a - - nosd msg", "RFC 5424: STRUCTURED-DATA must be '-' or start with '['"),
        ("plain text", "no <PRI> at the start (not a syslog message)"),
        ("<192>too big", "no <PRI> at the start (not a syslog message)"),
        ("<013>leading zero", "no <PRI> at the start (not a syslog message)"),
    ],
)
def test_unparseable_lines_are_kept_raw(line: str, why: str) -> None:
    e = parse_frame(line.encode(), PEER, NOW)
    assert (e.host, e.level, e.msg, e.ts_ns, e.fields) == (PEER, 6, line, NOW, {"parse_error": why})


@pytest.mark.parametrize(
    ("line", "host", "ts", "fields", "msg"),
    [
        ("<13>Nov 25 10:00:00 web1 app[42]: hello", "web1", (2026, 11, 25, 10, 0, 0),
         {"appname": "app", "procid": "42"}, "hello"),
        ("<13>Nov  5 09:08:07 web1 cron: x", "web1", (2026, 11, 5, 9, 8, 7), {"appname": "cron"}, "x"),
        ("<13>nov 05 09:08:07 10.1.2.3 -- MARK --", "10.1.2.3", (2026, 11, 5, 9, 8, 7), {}, "-- MARK --"),
        ("<13>Nov 25 10:00:00 sshd[1]: no host", PEER, (2026, 11, 25, 10, 0, 0),
         {"appname": "sshd", "procid": "1"}, "no host"),
        ("<13>Nov 25 2024 10:00:00 sw1 stp: year given", "sw1", (2024, 11, 25, 10, 0, 0),
         {"appname": "stp"}, "year given"),
        ("<13>2026-11-25T10:00:00 fw1 kernel: iso local", "fw1", (2026, 11, 25, 10, 0, 0),
         {"appname": "kernel"}, "iso local"),
        ("<13>Dec 31 23:59:59 old t: last year", "old", (2025, 12, 31, 23, 59, 59),
         {"appname": "t"}, "last year"),
    ],
)  # fmt: skip
def test_rfc3164_and_variations(
    line: str, host: str, ts: tuple[int, ...], fields: dict[str, str], msg: str
) -> None:
    e = parse_frame(line.encode(), PEER, NOW)
    assert (e.host, e.ts_ns, e.msg, e.level) == (host, local_ns(*ts), msg, 5)
    assert e.fields == {"syslog": "rfc3164", "facility": "user", **fields}


def test_rfc3164_cisco_style_and_zones() -> None:
    e = parse_frame(b"<189>123: *Nov 25 10:00:00.250 UTC: %SYS-5-CONFIG_I: Configured", PEER, NOW)
    assert (e.host, e.level, e.msg) == (PEER, 5, "%SYS-5-CONFIG_I: Configured")
    assert e.ts_ns == 1795600800250000000 and e.fields["facility"] == "local7"
    iso = parse_frame(b"<30>2026-11-25T10:00:00.5+01:00 web1 nginx[12]: GET /", PEER, NOW)
    assert (iso.ts_ns, iso.host, iso.fields["procid"]) == (1795597200500000000, "web1", "12")


def test_rfc3164_without_timestamp_is_python_syslog_handler_style() -> None:
    e = parse_frame(b"<11>pyapp: disk full", PEER, NOW)
    assert (e.host, e.ts_ns, e.level, e.msg, e.fields["appname"]) == (PEER, NOW, 3, "disk full", "pyapp")
    bare = parse_frame(b"<14>just words", PEER, NOW)
    assert (bare.msg, "appname" in bare.fields) == ("just words", False)


def test_year_rollover() -> None:
    new_year = local_ns(2027, 1, 1, 0, 0, 30)
    assert yearless_local_ns(12, 31, 23, 59, 59, new_year) == local_ns(2026, 12, 31, 23, 59, 59)
    eve = local_ns(2026, 12, 31, 23, 59, 0)
    assert yearless_local_ns(1, 1, 0, 0, 5, eve) == local_ns(2027, 1, 1, 0, 0, 5)
    assert yearless_local_ns(2, 30, 0, 0, 0, NOW) is None


def test_framer_flags_reach_the_entry() -> None:
    cut = frame_entry(Frame(b"<13>1 - h a - - - abc", 5000), PEER, NOW)
    assert (cut.host, cut.fields["truncated"]) == ("h", "5000")
    part = frame_entry(Frame(b"12 <13>x", 8, complete=False), PEER, NOW)
    assert (part.fields["incomplete"], "parse_error" in part.fields) == ("true", True)


_heads = st.sampled_from(
    ["<13>", "<165>1 ", "<0>", "<191>1 - ", "<13>Nov 25 10:00:00 ", "<1>2026-01-01T00:00:00Z ", ""]
)
_bodies = st.text(alphabet=st.sampled_from(list('ab -[]="\\:\ufeff1Z.T+0\n')), max_size=60) | st.text(
    max_size=60
)


@settings(max_examples=500, deadline=None)
@given(head=_heads, body=_bodies, junk=st.binary(max_size=20))
def test_every_input_is_parsed_or_kept_raw(head: str, body: str, junk: bytes) -> None:
    data = (head + body).encode() + junk
    e = parse_frame(data, PEER, NOW)
    if "parse_error" in e.fields:
        assert e.msg == data.decode("utf-8", "replace") and e.host == PEER and e.level == 6
    else:
        assert e.fields["syslog"] in ("rfc5424", "rfc3164") and 0 <= e.level <= 7 and e.host
        assert e.msg in data.decode("utf-8", "replace")
