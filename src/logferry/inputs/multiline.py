"""Join physical lines into multiline records (stack traces, wrapped messages).

A record begins at a line matching the ``start`` regex (``re.search``: anchor it with ``^`` if you mean the
line start); every following line that does not match is a continuation, appended with ``\\n``. A record is
complete when the next start line arrives, when it has been idle for a timeout, or when the stream ends.
Lines before the first start line form a record of their own, so nothing is lost.

The joiner remembers the byte offset where the pending record starts. That offset is the only safe
checkpoint while a record is pending: a restart must read the record's lines again, never skip them.

A record is bounded by ``max_record_bytes``: a continuation that would make it larger completes the pending
record and begins a new one (memory stays bounded; nothing is dropped).

This module is pure: no I/O, no clock (the caller passes ``now_s``). It never drops a non-blank line
(blank lines between records and at the end of a record carry nothing and are left out).
"""

from __future__ import annotations

import re


class MultilineJoiner:
    """Accumulates one pending multiline record; see the module docstring."""

    __slots__ = ("_bytes", "_last_push_s", "_lines", "max_record_bytes", "start", "start_offset")

    def __init__(self, start: re.Pattern[str], max_record_bytes: int) -> None:
        self.start = start
        self.max_record_bytes = max_record_bytes
        self._lines: list[str] = []
        self._bytes = 0
        self._last_push_s = 0.0
        self.start_offset: int | None = None
        """Byte offset of the pending record's first line; ``None`` when nothing is pending."""

    @property
    def pending(self) -> bool:
        return bool(self._lines)

    def push(self, line: str, nbytes: int, offset: int, now_s: float) -> str | None:
        """Add one line (``nbytes`` long in the source, starting at ``offset``).

        Returns the record this line completed, if any (a line completes at most one record).
        """
        done: str | None = None
        if self._lines:
            if self.start.search(line) is not None or self._bytes + 1 + nbytes > self.max_record_bytes:
                done = self._take()
            else:
                self._lines.append(line)
                self._bytes += 1 + nbytes
                self._last_push_s = now_s
                return None
        elif not line:
            # A blank line between records belongs to no record; the caller's offset moves past it.
            return None
        self._lines.append(line)
        self._bytes = nbytes
        self.start_offset = offset
        self._last_push_s = now_s
        return done

    def idle_for(self, now_s: float) -> float:
        """Seconds since the last line was added to the pending record (0 when nothing is pending)."""
        return now_s - self._last_push_s if self._lines else 0.0

    def flush(self) -> str | None:
        """The pending record, now complete (timeout or end of stream), or ``None``."""
        return self._take() if self._lines else None

    def reset(self) -> None:
        """Discard the pending record (only after it was flushed or its source was replaced)."""
        self._lines = []
        self._bytes = 0
        self.start_offset = None

    def _take(self) -> str:
        lines = self._lines
        # Continuation blank lines inside a record are kept; trailing ones carry no information.
        while len(lines) > 1 and not lines[-1]:
            lines.pop()
        record = lines[0] if len(lines) == 1 else "\n".join(lines)
        self.reset()
        return record
