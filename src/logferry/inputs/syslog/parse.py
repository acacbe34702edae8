"""Turn one framed syslog message into an :class:`~logferry.model.Entry`, whatever its format.

:func:`parse_frame` decodes the frame (UTF-8, invalid bytes replaced), reads the PRI, and hands the rest to
the RFC 5424 parser when version ``1`` follows the PRI, else to the RFC 3164 parser (which accepts anything).
A frame without a PRI, or an RFC 5424 message that breaks its grammar, becomes a raw entry with a
``parse_error`` field. :func:`frame_entry` adds what the framer knows: a message cut at the size limit gets
``truncated=<bytes sent>``, one the peer abandoned mid-way ``incomplete=true``.

This module is pure; it must never raise on any input or drop a message.
"""

from __future__ import annotations

from logferry.inputs.syslog.framing import Frame
from logferry.inputs.syslog.message import decode, raw_entry, split_pri
from logferry.inputs.syslog.rfc3164 import parse_3164
from logferry.inputs.syslog.rfc5424 import parse_5424
from logferry.model import Entry


def parse_frame(data: bytes, peer: str, received_ns: int) -> Entry:
    """The entry for one message from ``peer`` (its IP address), received at ``received_ns``."""
    line = decode(data)
    head = split_pri(line)
    if head is None:
        return raw_entry(line, peer, received_ns, "no <PRI> at the start (not a syslog message)")
    pri, at = head
    if line.startswith("1 ", at):
        entry = parse_5424(line, pri, at + 2, peer, received_ns)
        if isinstance(entry, str):
            return raw_entry(line, peer, received_ns, f"RFC 5424: {entry}")
        return entry
    return parse_3164(line, pri, at, peer, received_ns)


def frame_entry(frame: Frame, peer: str, received_ns: int) -> Entry:
    """:func:`parse_frame` plus the framer's flags; the source of the entry is its ``host``."""
    entry = parse_frame(frame.data, peer, received_ns)
    if frame.complete and not frame.cut:
        return entry
    fields = dict(entry.fields)
    if frame.cut:
        fields["truncated"] = str(frame.size)
    if not frame.complete:
        fields["incomplete"] = "true"
    return Entry(entry.ts_ns, entry.level, entry.host, entry.path, entry.msg, fields)
