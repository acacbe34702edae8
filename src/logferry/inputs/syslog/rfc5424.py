"""Parse RFC 5424 syslog messages: ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD...] MSG``.

The header is cut with one ``str.split`` (its fields never contain spaces); structured data is read with
two precompiled regexes that honour the escapes ``\\"``, ``\\\\`` and ``\\]`` inside parameter values. The
result is an :class:`~logferry.model.Entry`:

- ``host``: HOSTNAME, or the peer's address when it is the NILVALUE ``-``;
- ``level``: the PRI's severity; ``ts_ns``: TIMESTAMP (fractions, ``Z`` or an offset), or the receive time
  when it is ``-`` — or unreadable, which adds a ``timestamp_error`` field;
- ``msg``: MSG without its UTF-8 BOM (or, failing one, one leading space: rsyslog's RFC 3164 relics) and
  without trailing CR/LF;
- ``fields``: ``syslog=rfc5424``, ``facility`` (name), ``appname``, ``procid``, ``msgid`` (each only when
  not ``-``), and every SD parameter as ``sd.<SD-ID>.<PARAM-NAME>`` (an element without parameters gives
  ``sd.<SD-ID>`` = ""; a parameter repeated within an element gives its values joined by ``,``).

This module is pure and must stay fast; it must never raise on any input: a message it cannot read is
answered with a string saying why, which the caller turns into a raw entry.
"""

from __future__ import annotations

import re
from typing import Final

from logferry.inputs.syslog.message import FACILITIES, iso_timestamp_ns
from logferry.model import Entry

NIL: Final = "-"
MAX_HOSTNAME: Final = 255
MAX_FIELD: Final = 128  # APP-NAME 48, PROCID 128, MSGID 32 in the RFC; one generous bound for all
_BOM: Final = "\ufeff"

# SD-NAME is 1..32 printable US-ASCII characters except '=', ' ', ']' and '"'. Vendors exceed 32 now and
# then, so the length is not enforced.
_SD_NAME: Final = r'[^ =\]"]+'
_SD_VALUE: Final = r'"(?:[^"\\]|\\.)*"'
_SD_ELEMENT: Final = re.compile(rf"\[({_SD_NAME})((?: +{_SD_NAME}={_SD_VALUE})*) *\]", re.S)
_SD_PARAM: Final = re.compile(rf'({_SD_NAME})="((?:[^"\\]|\\.)*)"', re.S)
_SD_ESCAPE: Final = re.compile(r'\\(["\\\]])')


def parse_5424(line: str, pri: int, at: int, peer: str, received_ns: int) -> Entry | str:
    """The entry for ``line`` (header after ``<PRI>1 `` starting at ``at``), or why it is not RFC 5424."""
    parts = line[at:].split(" ", 5)
    if len(parts) < 6:
        if len(parts) == 5:
            parts.append("")  # no STRUCTURED-DATA at all: a common slip, read as "-"
        else:
            return f"expected 7 header fields, found {len(parts) + 2}"
    stamp, hostname, appname, procid, msgid, rest = parts
    if not hostname or len(hostname) > MAX_HOSTNAME:
        return "HOSTNAME is empty or longer than 255 characters"
    if not appname or not procid or not msgid:
        return "an empty header field (two spaces in a row)"
    fields: dict[str, str] = {"syslog": "rfc5424", "facility": FACILITIES[pri >> 3]}
    if appname != NIL:
        fields["appname"] = appname[:MAX_FIELD]
    if procid != NIL:
        fields["procid"] = procid[:MAX_FIELD]
    if msgid != NIL:
        fields["msgid"] = msgid[:MAX_FIELD]
    if stamp == NIL:
        ts_ns = received_ns
    else:
        parsed = iso_timestamp_ns(stamp)
        if parsed is None:
            ts_ns = received_ns
            fields["timestamp_error"] = stamp[:64]
        else:
            ts_ns = parsed
    if rest.startswith("["):
        msg_at = _structured_data(rest, fields)
        if msg_at < 0:
            return "malformed STRUCTURED-DATA"
    elif rest in (NIL, "") or rest.startswith(NIL + " "):
        msg_at = 1
    else:
        return "STRUCTURED-DATA must be '-' or start with '['"
    if msg_at < len(rest):
        if rest[msg_at] != " ":
            return "no space between STRUCTURED-DATA and MSG"
        msg = rest[msg_at + 1 :]
        if msg.startswith(_BOM):
            msg = msg[1:]
        elif msg.startswith(" "):
            msg = msg[1:]  # rsyslog forwards RFC 3164 messages with the space that followed their tag
        if msg.endswith(("\n", "\r")):
            msg = msg.rstrip("\r\n")
    else:
        msg = ""
    host = peer if hostname == NIL else hostname
    return Entry(ts_ns, pri & 7, host, "", msg, fields)


def _structured_data(text: str, fields: dict[str, str]) -> int:
    """Read SD-ELEMENTs from the start of ``text`` into ``fields``; the index after them, or -1."""
    pos = 0
    while pos < len(text) and text[pos] == "[":
        m = _SD_ELEMENT.match(text, pos)
        if m is None:
            return -1
        sd_id, params = m.group(1), m.group(2)
        prefix = f"sd.{sd_id}"
        if not params:
            fields.setdefault(prefix, "")
        for p in _SD_PARAM.finditer(params):
            key = f"{prefix}.{p.group(1)}"
            value = p.group(2)
            if "\\" in value:
                value = _SD_ESCAPE.sub(r"\1", value)
            old = fields.get(key)
            fields[key] = value if old is None else f"{old},{value}"
        pos = m.end()
    return pos
