"""The declaration of one relay rule, as it appears under ``[[relay.rules]]``.

This is the single place where a rule's options are declared: type, default and help text live here and
serve the TOML loader, ``logferry config check`` and the generated ``docs/CONFIG.md`` alike. The relay's
config embeds ``list[RuleConfig]``; the rules engine (``rules.py``) compiles it.

This module only declares; it must never compile, match or do I/O (that belongs to ``rules.py``).
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from logferry.model import Fate


class Action(enum.Enum):
    """What a rule does with a record it matches."""

    FORWARD = "forward"
    HOLD = "hold"
    DROP = "drop"
    REDACT = "redact"

    @property
    def fate(self) -> Fate:
        """The fate of a record this action decides (a redact that masked nothing is FORWARDED)."""
        return _FATES[self]


_FATES = {
    Action.FORWARD: Fate.FORWARDED,
    Action.HOLD: Fate.HELD,
    Action.DROP: Fate.DROPPED,
    Action.REDACT: Fate.REDACTED,
}


class Items(enum.Enum):
    """Which items a rule looks at: log records, whole files, or both."""

    ALL = "all"
    RECORDS = "records"
    FILES = "files"


DEFAULT_REPLACEMENT = "[REDACTED]"

# A string or a list of strings: TOML lets a user write one value without the brackets.
StrOrList = str | list[str]
FieldValue = str | int | list[str | int]


class RuleConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One ``[[relay.rules]]`` table. Every condition given must hold (AND); absent ones always hold."""

    name: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            description="Unique name of the rule; the journal and the console show it for every record "
            "it decides.",
        ),
    ]
    action: Annotated[
        Action,
        msgspec.Meta(description="What to do with a matching record: forward, hold, drop or redact."),
    ]
    level: Annotated[
        StrOrList | None,
        msgspec.Meta(
            description='Severity condition: "error", ">=warning" (warning or more severe), "<=info", '
            '">err", "!=debug", or a list of level names.'
        ),
    ] = None
    source: Annotated[
        StrOrList | None,
        msgspec.Meta(description='Glob (or list of globs) on the record\'s source, e.g. "edge-*".'),
    ] = None
    host: Annotated[
        StrOrList | None,
        msgspec.Meta(description="Glob (or list of globs) on the record's host name."),
    ] = None
    path: Annotated[
        StrOrList | None,
        msgspec.Meta(description='Glob (or list of globs) on the file path, e.g. "/var/log/pay/*.log".'),
    ] = None
    items: Annotated[
        Items,
        msgspec.Meta(
            description="Which items the rule looks at: all, records or files. A rule with a record-only "
            "condition (level, host, fields, message, not_message, redact) never matches a file; one with "
            "file_name, min_size or max_size never matches a record."
        ),
    ] = Items.ALL
    file_name: Annotated[
        StrOrList | None,
        msgspec.Meta(
            description='Glob (or list of globs) on a file\'s name without its folder, e.g. "*.pcap".'
        ),
    ] = None
    min_size: Annotated[
        Annotated[int, msgspec.Meta(ge=0)] | None,
        msgspec.Meta(description="Files of at least this many bytes."),
    ] = None
    max_size: Annotated[
        Annotated[int, msgspec.Meta(ge=0)] | None,
        msgspec.Meta(description="Files of at most this many bytes."),
    ] = None
    fields: Annotated[
        dict[str, FieldValue],
        msgspec.Meta(
            description="Table of field = exact value; a value may be a list of alternatives. "
            "A missing field never matches."
        ),
    ] = {}
    message: Annotated[
        str | None,
        msgspec.Meta(description="Regex searched in the message (Python syntax; (?i) ignores case)."),
    ] = None
    not_message: Annotated[
        str | None,
        msgspec.Meta(description="Regular expression that must NOT be found in the message."),
    ] = None
    redact: Annotated[
        list[str],
        msgspec.Meta(
            description="For action = redact: presets (card, password, secret, token, email, ipv4) "
            "or regexes; a group named `value` limits the mask to that group."
        ),
    ] = []
    replacement: Annotated[
        str,
        msgspec.Meta(description="For action = redact: the text that replaces each masked match."),
    ] = DEFAULT_REPLACEMENT
