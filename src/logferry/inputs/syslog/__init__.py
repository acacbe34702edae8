"""The relay's syslog input over TCP: RFC 6587 framing, RFC 5424 and RFC 3164 parsing, journaled by host.

- ``framing``: sans-IO octet counting / LF / NUL framing, detected per connection, bounded;
- ``rfc5424``, ``rfc3164``, ``message``, ``parse``: pure parsers, frame → ``model.Entry``;
- ``feed``: the journal feed and TCP server shell shared with the line input (``logferry.inputs.line``);
- ``server``: the asyncio input itself.

Unlike the agent's inputs, these run in the relay and their records get seqs from the relay's journal.
"""

from logferry.inputs.syslog.feed import InputCounters, InputServer, JournalFeed
from logferry.inputs.syslog.framing import Frame, Mode, SyslogFramer
from logferry.inputs.syslog.parse import frame_entry, parse_frame
from logferry.inputs.syslog.server import SyslogInput

__all__ = [
    "Frame",
    "InputCounters",
    "InputServer",
    "JournalFeed",
    "Mode",
    "SyslogFramer",
    "SyslogInput",
    "frame_entry",
    "parse_frame",
]
