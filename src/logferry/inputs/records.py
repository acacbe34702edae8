"""Turn framed byte lines into ``Entry`` objects, and know how far the output covers the source.

Shared by every line-based input (tail, stdin). Per line: decode (UTF-8, or the input's ``encoding``: UTF-16,
or any codec whose line end is the byte ``\\n``, see ``encoding_problem``) with bad bytes replaced by U+FFFD
(never an exception), strip a trailing ``\\r``, skip blank lines, join multiline records when a start
regex is configured, detect the level, and build the Entry. Parts of an over-long line carry the fields
``part`` ("1", "2", …) and, on the last one, ``part_last`` = "1"; they bypass multiline joining.

``safe_offset`` is the checkpoint: every byte before it is in an Entry already handed out. With a
pending multiline record it stays at that record's start, so a restart re-reads the record instead of
losing it.

This module is pure (time and timestamps are passed in). It must never drop a non-blank line, and the
hot path (no multiline, no long lines) must stay a tight loop: it is most of the agent's CPU time.
The ``fields`` dict given to the constructor is shared by the entries built from whole lines (building one
dict per line costs ~10% of throughput): consumers must treat ``Entry.fields`` as read-only.
"""

from __future__ import annotations

import codecs
import re

from logferry.inputs.framing import WHOLE, Framed
from logferry.inputs.levels import DEFAULT_LEVEL, detect_level
from logferry.inputs.multiline import MultilineJoiner
from logferry.model import Entry

_UTF16 = {"utf-16": ("utf-16-le", b"\n\x00"), "utf-16-le": ("utf-16-le", b"\n\x00"),
          "utf-16-be": ("utf-16-be", b"\x00\n")}  # fmt: skip


def line_format(encoding: str) -> tuple[str, bytes]:
    """The codec to decode a line with, and the bytes that end one. ``utf-16`` is little-endian (as
    Windows writes it); a byte-order mark at a file's start is dropped (``RecordAssembler``)."""
    canonical = codecs.lookup(encoding).name
    return _UTF16.get(canonical, (canonical, b"\n"))


def encoding_problem(name: str) -> str | None:
    """What is wrong with ``name`` as the character encoding of a line-based input, or None. Lines are
    framed on the byte ``\\n`` before they are decoded, so the codec must read ``\\r``, ``\\n`` and ASCII
    letters as themselves, and take any bytes (what does not decode becomes U+FFFD): UTF-8 (``utf-8-sig``
    drops a byte-order mark) and the legacy code pages (cp949, euc-kr, shift_jis, gb18030, big5, cp1252,
    latin-1…) do, and their multibyte characters never hold the byte ``\\n``; UTF-16 and UTF-32 do not."""
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        return (f"unknown encoding {name!r}: give a codec name Python knows, such as utf-8, cp949, euc-kr, "
                "shift_jis, gb18030, cp1252 or latin-1")  # fmt: skip
    if canonical in _UTF16:
        return None  # framed on two-byte boundaries (framing.LineFramer)
    if canonical.startswith(("utf-16", "utf-32")):
        return (f"encoding {name!r} is not supported: its line end is 4 bytes; have the program write UTF-8 "
                "or UTF-16, or convert its files")  # fmt: skip
    try:
        fits = b"ab\r\n".decode(canonical, "replace") == "ab\r\n"
        b"\xff\xfe\x80\x00\n".decode(canonical, "replace")  # bad bytes are replaced, never an exception
    except LookupError:
        return f"{name!r} is not a character encoding: it does not turn bytes into text"
    except (UnicodeError, TypeError, ValueError):
        fits = False
    if fits:
        return None
    return f"encoding {name!r} is not supported: it does not read ASCII and the line end \\n as one byte each"


class RecordAssembler:
    """Builds entries for one source (one file, or stdin); see the module docstring."""

    __slots__ = (
        "detect_levels", "encoding", "fields", "host", "joiner", "newline_bytes", "path", "safe_offset",
    )  # fmt: skip

    def __init__(
        self,
        *,
        host: str,
        path: str,
        fields: dict[str, str],
        detect_levels: bool,
        multiline_start: re.Pattern[str] | None,
        max_record_bytes: int,
        offset: int = 0,
        encoding: str = "utf-8",
    ) -> None:
        # Checked by the config (encoding_problem); UTF-16 lines end with two bytes (framing.LineFramer).
        self.encoding, newline = line_format(encoding)
        self.newline_bytes = len(newline)
        self.host = host
        self.path = path
        self.fields = fields
        self.detect_levels = detect_levels
        self.joiner = MultilineJoiner(multiline_start, max_record_bytes) if multiline_start else None
        self.safe_offset = offset

    def feed(self, framed: Framed, base: int, ts_ns: int, now_s: float, out: list[Entry]) -> None:
        """Append the entries ``framed`` completes to ``out``; ``base`` is the offset of its first byte."""
        if self.joiner is None and framed.parts is None and self.newline_bytes == 1:
            self._feed_plain(framed.pieces, ts_ns, out)
            self.safe_offset = base + framed.consumed
            return
        self._feed_general(framed, base, ts_ns, now_s, out)
        end = base + framed.consumed
        joiner = self.joiner
        pending_start = joiner.start_offset if joiner is not None else None
        self.safe_offset = pending_start if pending_start is not None else end

    def _feed_plain(self, pieces: list[bytes], ts_ns: int, out: list[Entry]) -> None:
        host, path, fields, encoding = self.host, self.path, self.fields, self.encoding
        append = out.append
        if self.detect_levels:
            detect = detect_level
            for raw in pieces:
                if raw:
                    text = raw.decode(encoding, "replace")
                    if text[-1] == "\r":
                        text = text[:-1]
                        if not text:
                            continue
                    append(Entry(ts_ns, detect(text), host, path, text, fields))
        else:
            level = DEFAULT_LEVEL
            for raw in pieces:
                if raw:
                    text = raw.decode(encoding, "replace")
                    if text[-1] == "\r":
                        text = text[:-1]
                        if not text:
                            continue
                    append(Entry(ts_ns, level, host, path, text, fields))

    def _feed_general(self, framed: Framed, base: int, ts_ns: int, now_s: float, out: list[Entry]) -> None:
        joiner = self.joiner
        parts = framed.parts
        offset = base
        newline = self.newline_bytes
        for i, raw in enumerate(framed.pieces):
            code = parts[i] if parts is not None else WHOLE
            text = raw.decode(self.encoding, "replace")
            if offset == 0 and newline == 2 and text.startswith("\ufeff"):
                text = text[1:]  # UTF-16's byte-order mark at the file's start is no part of a line
            if code <= 0 and text.endswith("\r"):
                text = text[:-1]
            start = offset
            offset += len(raw) + (0 if code > 0 else newline)
            if code != WHOLE:
                # A part of an over-long line: complete any pending record first so order is kept.
                self.flush(ts_ns, out)
                fields = self.fields | {"part": str(abs(code))}
                if code < 0:
                    fields["part_last"] = "1"
                out.append(self._entry(ts_ns, text, fields))
            elif joiner is not None:
                done = joiner.push(text, len(raw), start, now_s)
                if done is not None:
                    out.append(self._entry(ts_ns, done, self.fields))
            elif text:
                out.append(self._entry(ts_ns, text, self.fields))

    def _entry(self, ts_ns: int, text: str, fields: dict[str, str]) -> Entry:
        level = detect_level(text) if self.detect_levels else DEFAULT_LEVEL
        return Entry(ts_ns, level, self.host, self.path, text, fields)

    def flush(self, ts_ns: int, out: list[Entry]) -> bool:
        """Complete the pending multiline record, if any. The caller then sets ``safe_offset``."""
        done = self.joiner.flush() if self.joiner is not None else None
        if done is None:
            return False
        out.append(self._entry(ts_ns, done, self.fields))
        return True

    def flush_idle(
        self, now_s: float, timeout_s: float, ts_ns: int, end_offset: int, out: list[Entry]
    ) -> bool:
        """Complete a pending record idle for ``timeout_s``; ``end_offset`` is what has been consumed."""
        if self.joiner is None or self.joiner.idle_for(now_s) < timeout_s:
            return False
        flushed = self.flush(ts_ns, out)
        if flushed:
            self.safe_offset = end_offset
        return flushed

    def reset(self, offset: int) -> None:
        """Start over at ``offset`` (truncation); flush first if the pending record must be kept."""
        if self.joiner is not None:
            self.joiner.reset()
        self.safe_offset = offset
