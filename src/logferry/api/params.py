"""Query filters as people type them → the filters the stores take.

- ``level``: a level name (``warning``, ``err``, ``crit``, ``3``) meaning "this or more severe", as in the
  rules; lower numbers are more severe, so it becomes ``level_max``.
- ``since`` / ``until``: ISO 8601 (``2026-11-25T10:00:00Z``; no zone means UTC) or epoch seconds
  (``1764064800`` or ``1764064800.5``); ``since`` is inclusive, ``until`` exclusive.
- ``limit`` / ``offset``: paging, ``limit`` at most :data:`MAX_LIMIT`.

Everything here is pure and raises only :class:`ApiError` (status 400) with a message naming the parameter
and what it accepts; it must never touch a store or the network.
"""

from __future__ import annotations

import datetime
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from logferry.api.problems import ApiError
from logferry.model import Level
from logferry.store.journal_held import HeldFilter

MAX_LIMIT: Final = 1000
DEFAULT_LIMIT: Final = 100
MAX_TEXT: Final = 1000  # longest q / rule / source accepted: a filter, not a document
NS: Final = 1_000_000_000
# Years 1..9999 are what ISO 8601 datetimes express; epoch seconds beyond them are surely a typo.
_MAX_EPOCH_S: Final = 253_402_300_799


def parse_level(text: str | None, name: str = "level") -> int | None:
    """``warning`` → 4 (keep warning and more severe); None or "" → no bound."""
    if text is None or not text.strip():
        return None
    try:
        return int(Level.parse(text))
    except ValueError as exc:
        raise ApiError(
            400, f"query parameter {name}: {exc}", "e.g. level=warning keeps warning and worse"
        ) from None


def parse_time_ns(text: str | None, name: str) -> int | None:
    """ISO 8601 or epoch seconds → epoch nanoseconds; None or "" → no bound."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    hint = "use ISO 8601 (2026-11-25T10:00:00Z) or epoch seconds (1764064800)"
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not -_MAX_EPOCH_S <= seconds <= _MAX_EPOCH_S:
            raise ApiError(400, f"query parameter {name}: {value!r} is out of range", hint)
        return _clamp(int(seconds * NS))
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"query parameter {name}: {value!r} is not a time", hint) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    delta = when - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    return _clamp((delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1000)


def _clamp(ns: int) -> int:
    """Times past 2262 (or before 1677) do not fit SQLite's 64-bit integers, and no record has one: a bound
    there means "no bound", so it is clamped instead of overflowing in the store (a 500)."""
    return max(-(2**63), min(ns, 2**63 - 1))


def iso(ns: int) -> str:
    """Epoch nanoseconds as ISO 8601 UTC with microseconds, for answers."""
    return datetime.datetime.fromtimestamp(ns / NS, datetime.UTC).isoformat().replace("+00:00", "Z")


def level_name(level: int) -> str:
    try:
        return Level(level).name.lower()
    except ValueError:
        return str(level)


class HeldQuery(BaseModel):
    """The held-items filter as the API takes it (query parameters, or the ``filter`` of a bulk action)."""

    model_config = ConfigDict(extra="forbid")

    rule: str | None = Field(None, max_length=MAX_TEXT, description="name of the rule that held the items")
    source: str | None = Field(None, max_length=MAX_TEXT, description="source (device) name")
    level: str | None = Field(
        None, max_length=32, description="this level or more severe: emergency … debug, or 0–7"
    )
    q: str | None = Field(None, max_length=MAX_TEXT, description="case-insensitive substring of the message")
    since: str | None = Field(None, max_length=64, description="record time ≥ this: ISO 8601 or epoch s")
    until: str | None = Field(None, max_length=64, description="record time < this: ISO 8601 or epoch s")

    def to_filter(self) -> HeldFilter:
        """The store's filter; raises ApiError(400) naming the first bad parameter."""
        since = parse_time_ns(self.since, "since")
        until = parse_time_ns(self.until, "until")
        if since is not None and until is not None and until <= since:
            raise ApiError(400, "until must be later than since", "swap them, or leave one out")
        return HeldFilter(
            rule=self.rule or None,
            source=self.source or None,
            level_max=parse_level(self.level),
            text=self.q or None,
            ts_min_ns=since,
            ts_max_ns=until,
        )
