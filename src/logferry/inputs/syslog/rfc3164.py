"""Parse BSD syslog (RFC 3164) and the variations devices actually send: ``<PRI>TIMESTAMP HOST TAG: MSG``.

RFC 3164 describes what was observed rather than a grammar, so every part after the PRI is optional and
this parser never rejects a message: what it cannot place is message text. Accepted, in this order:

- TIMESTAMP ``Mmm dd hh:mm:ss`` (day padded with a space or a zero, month in any case), with the variations
  ``Mmm dd yyyy hh:mm:ss`` (year given), ``hh:mm:ss.fff`` (fractions), a trailing ``UTC``/``GMT`` zone and a
  trailing ``:``, a leading ``*`` or ``.`` (Cisco's "clock not synchronised") and a leading sequence number
  ``123: `` (Cisco); or an RFC 3339 timestamp (rsyslog and syslog-ng "ISO" templates), with or without a zone;
  or no timestamp at all (Python's ``SysLogHandler`` sends ``<PRI>message``). A time without a year is taken
  in the relay's local zone, in this year unless that puts it more than a week in the future (then last
  year: December messages that arrive in January keep their year).
  A time without a zone is local time. No timestamp: the receive time.
- HOSTNAME: the next word, when a timestamp was found and the word looks like a host name or address
  (not like ``tag:``, ``tag[pid]:`` or a Cisco ``%FACILITY-…`` mnemonic). Otherwise the peer's address.
- TAG: ``name[pid]: `` or ``name: `` at the start of what remains, giving the ``appname`` and ``procid``
  fields; the rest is the message.

Fields: ``syslog=rfc3164``, ``facility`` (name), ``appname`` and ``procid`` when a tag was found.

This module is pure and must stay fast (two precompiled regexes at a fixed position and a few string
operations per message); it must never raise on any input.
"""

from __future__ import annotations

import re
import time
from typing import Final

from logferry.inputs.syslog.message import (
    FACILITIES,
    NS,
    epoch_seconds,
    iso_timestamp_ns,
    local_timestamp_ns,
    yearless_local_ns,
)
from logferry.model import Entry

_MONTHS: Final = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
_FRACTION_SCALE: Final = tuple(10 ** (9 - n) for n in range(10))
_BSD_TS: Final = re.compile(
    r"(?:\d{1,10}: )?[*.]?"  # Cisco: sequence number, unsynchronised-clock marker
    r"((?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)) +(\d{1,2}) +(?:(\d{4}) +)?"
    r"(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?: (UTC|GMT))?:?(?: +|$)"
)
_ISO_TS: Final = re.compile(
    r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:[Zz]|[+-]\d\d:?\d\d)?):?(?: +|$)"
)
_HOSTNAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*[0-9A-Fa-f]")
_TAG: Final = re.compile(r"([\w./@-]{1,48})(?:\[([^\]\s]{1,128})\])?:(?: |$)")
_BOM: Final = "\ufeff"


def parse_3164(line: str, pri: int, at: int, peer: str, received_ns: int) -> Entry:
    """The entry for ``line`` whose PRI ends at ``at``; anything after the PRI is accepted."""
    fields: dict[str, str] = {"syslog": "rfc3164", "facility": FACILITIES[pri >> 3]}
    ts_ns: int | None = None
    first = line[at : at + 1]
    m = _ISO_TS.match(line, at) if first.isdigit() else None
    if m is not None:
        ts_ns = iso_timestamp_ns(m.group(1).replace(",", "."), need_zone=False)
    if ts_ns is None and first and (first.isalnum() or first in "*."):
        m = _BSD_TS.match(line, at)
        if m is not None:
            ts_ns = _bsd_ns(m, received_ns)
    host = peer
    if ts_ns is None:
        ts_ns = received_ns
        pos = at
    else:
        assert m is not None
        pos = m.end()
        space = line.find(" ", pos)
        if space > pos:
            word = line[pos:space]
            if _HOSTNAME.fullmatch(word) is not None:
                host = word
                pos = space + 1
    tag = _TAG.match(line, pos)
    if tag is not None:
        fields["appname"] = tag.group(1)
        if tag.group(2) is not None:
            fields["procid"] = tag.group(2)
        pos = tag.end()
    msg = line[pos:]
    if msg.startswith(_BOM):
        msg = msg[1:]
    if msg.endswith(("\n", "\r")):
        msg = msg.rstrip("\r\n")
    return Entry(ts_ns, pri & 7, host, "", msg, fields)


def _bsd_ns(m: re.Match[str], received_ns: int) -> int | None:
    """Epoch ns of a matched BSD timestamp; None if the date does not exist (the match is then ignored)."""
    mon_name, day, year, hour, minute, second, frac, zone = m.groups()
    month = _MONTHS[mon_name.lower()]
    d, h, mi, s = int(day), int(hour), int(minute), int(second)
    fraction = int(frac) * _FRACTION_SCALE[len(frac)] if frac else 0
    if zone is not None:  # UTC or GMT: no local zone involved
        y = int(year) if year else _utc_year(month, received_ns)
        secs = epoch_seconds(y, month, d, h, mi, s)
        return None if secs is None else secs * NS + fraction
    if year:
        ts = local_timestamp_ns(int(year), month, d, h, mi, s)
    else:
        ts = yearless_local_ns(month, d, h, mi, s, received_ns)
    return None if ts is None else ts + fraction


def _utc_year(month: int, received_ns: int) -> int:
    """The year of a UTC time given without one: the one that puts ``month`` within six months of now."""
    now = time.gmtime(received_ns // NS)
    if month - now.tm_mon > 6:
        return now.tm_year - 1
    if now.tm_mon - month > 6:
        return now.tm_year + 1
    return now.tm_year
