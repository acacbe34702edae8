"""What both syslog parsers share: PRI, facility names, timestamps, and the raw entry for unparseable lines.

A raw entry keeps the whole line as the message, level INFO, the peer's address as host, and a
``parse_error`` field saying why — a message is never dropped for its format.

Timestamps: :func:`iso_timestamp_ns` reads RFC 5424 / RFC 3339 times (fractions up to nanoseconds, ``Z`` or
``±hh:mm``); :func:`local_timestamp_ns` turns a wall-clock time without zone into epoch nanoseconds in the
relay's local zone, caching each hour's offset (``time.mktime`` costs microseconds; a cache hit does not).

This module is pure apart from reading the local time zone: it must never do I/O, keep per-connection
state, or raise on any input — every failure is a value (``None``) the caller turns into a flag.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Final

from logferry.model import Entry, Level

MAX_PRI: Final = 191  # facility 23 * 8 + severity 7
NS: Final = 1_000_000_000
YEAR_SLACK_NS: Final = 7 * 86400 * NS

FACILITIES: Final[tuple[str, ...]] = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
    "uucp", "cron", "authpriv", "ftp", "ntp", "audit", "alert", "clock",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
"""RFC 5424 §6.2.1 facility names, by number (13 "log audit", 14 "log alert", 15 the second clock)."""

_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()
_ISO_RE: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(?:([Zz])|([+-])(\d\d):?(\d\d))?"
)
_FRACTION_SCALE: Final = tuple(10 ** (9 - n) for n in range(10))
_local_hours: dict[tuple[int, int, int, int], int] = {}
_LOCAL_CACHE_MAX: Final = 4096


def epoch_seconds(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int | None:
    """Seconds since the epoch of a UTC wall-clock time; None if the date or time does not exist."""
    if not (hour < 24 and minute < 60 and second <= 60):  # 60: a leap second, read as the next second
        return None
    try:
        days = dt.date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    return days * 86400 + hour * 3600 + minute * 60 + second


def iso_timestamp_ns(text: str, *, need_zone: bool = True) -> int | None:
    """Epoch ns of an RFC 3339 timestamp that is exactly ``text``; None if it is not one.

    Without a zone (``need_zone=False``, a vendor habit in RFC 3164 headers) the time is local time.
    """
    m = _ISO_RE.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = m.groups()
    fraction = int(frac) * _FRACTION_SCALE[len(frac)] if frac else 0
    if zulu is None and sign is None:
        if need_zone:
            return None
        local = local_timestamp_ns(int(year), int(month), int(day), int(hour), int(minute), int(second))
        return None if local is None else local + fraction
    secs = epoch_seconds(int(year), int(month), int(day), int(hour), int(minute), int(second))
    if secs is None:
        return None
    if sign is not None:
        offset = int(off_h) * 3600 + int(off_m) * 60
        if int(off_h) > 23 or int(off_m) > 59:
            return None
        secs -= offset if sign == "+" else -offset
    return secs * NS + fraction


def local_timestamp_ns(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int | None:
    """Epoch ns of a wall-clock time in the local zone; None if it does not exist as a date."""
    if not (hour < 24 and minute < 60 and second <= 60):
        return None
    key = (year, month, day, hour)
    base = _local_hours.get(key)
    if base is None:
        try:
            dt.date(year, month, day)  # mktime would quietly turn Feb 30 into Mar 2
            base = int(time.mktime((year, month, day, hour, 0, 0, 0, 0, -1)))
        except (ValueError, OverflowError):
            return None
        if len(_local_hours) >= _LOCAL_CACHE_MAX:
            _local_hours.clear()
        _local_hours[key] = base
    return (base + minute * 60 + second) * NS


def yearless_local_ns(month: int, day: int, hour: int, minute: int, second: int, now_ns: int) -> int | None:
    """Local epoch ns of an RFC 3164 time, which has no year: this year's, unless that is far off.

    Logs come from the past, so a time more than ``YEAR_SLACK_NS`` in the future is last year's (a December
    message arriving just after New Year), and a time that next year would put within that slack of now is
    next year's (``Jan 1 00:00:01`` from a sender whose clock runs a little ahead, seen on Dec 31).
    """
    year = time.localtime(now_ns // NS).tm_year
    ts = local_timestamp_ns(year, month, day, hour, minute, second)
    if ts is not None and ts > now_ns + YEAR_SLACK_NS:
        return local_timestamp_ns(year - 1, month, day, hour, minute, second)
    if month == 1:
        ahead = local_timestamp_ns(year + 1, month, day, hour, minute, second)
        if ahead is not None and ahead <= now_ns + YEAR_SLACK_NS:
            return ahead
    return ts


def split_pri(line: str) -> tuple[int, int] | None:
    """``(pri, index after '>')`` of a line starting with ``<PRI>``; None if it does not."""
    if not line.startswith("<"):
        return None
    close = line.find(">", 1, 5)
    if close < 2:
        return None
    digits = line[1:close]
    if not digits.isdigit() or not digits.isascii() or (len(digits) > 1 and digits[0] == "0"):
        return None
    pri = int(digits)
    return (pri, close + 1) if pri <= MAX_PRI else None


def raw_entry(line: str, peer: str, received_ns: int, why: str) -> Entry:
    """A message that could not be parsed, kept whole: never dropped."""
    return Entry(received_ns, int(Level.INFO), peer, "", line, {"parse_error": why})


def decode(data: bytes) -> str:
    """Frame bytes as text: UTF-8 (RFC 5424 MSG may say so with a BOM); invalid bytes are replaced."""
    return data.decode("utf-8", "replace")
