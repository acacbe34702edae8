"""Cut a stream of bytes into lines, bounding every line to ``max_line_bytes``.

The framer is pure: it gets the bytes that follow the last consumed offset and says which complete lines
they hold and how many bytes those lines consumed. The caller keeps the unconsumed tail (or, for a file,
simply reads it again from the new offset next time), so a partial trailing line is never emitted until
its ``\\n`` arrives — except when the caller says the stream ended (``at_eof``).

A line longer than ``max_line_bytes`` is cut into parts of at most that size (never inside a UTF-8
character when one can be avoided) and each part is flagged; nothing is ever dropped. The only state kept
is the number of parts already given for the line in progress, which the caller may persist so a restart in
the middle of a long line keeps numbering its parts.

Lines end with ``\\n``, or, for UTF-16 text, with the two bytes of that character (``newline``): those
count only on a two-byte boundary (the data given always starts on one), since the same two bytes may
straddle two characters, and a long line is cut on one too, never between the halves of a surrogate pair.

This module must never do I/O, decode text or drop a byte.
"""

from __future__ import annotations

from dataclasses import dataclass

WHOLE = 0
"""Part code of an ordinary line, terminated by ``\\n``."""


@dataclass(slots=True)
class Framed:
    """The lines found in one call.

    ``pieces`` are the lines without their ``\\n`` (a trailing ``\\r`` is left for the decoder to strip).
    ``consumed`` is how many input bytes they cover. ``parts`` is ``None`` when every piece is a whole line
    (the fast, common case); otherwise it is aligned with ``pieces``: ``0`` a whole line, ``k > 0``
    part k of a long line with more to come (no ``\\n`` consumed after it), ``-k`` the last part k
    (its ``\\n`` consumed).
    """

    pieces: list[bytes]
    consumed: int
    parts: list[int] | None = None


def _utf8_cut(data: bytes | memoryview, limit: int) -> int:
    """The largest cut <= ``limit`` that does not split a UTF-8 character (or ``limit`` if none is near)."""
    cut = limit
    # A continuation byte is 0b10xxxxxx; a character is at most 4 bytes, so look back at most 3.
    while cut > limit - 3 and cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if cut > 0 else limit


def _utf16_cut(data: bytes | memoryview, limit: int, big_endian: bool) -> int:
    """The largest even cut <= ``limit`` that does not separate a surrogate pair."""
    cut = limit & ~1
    if cut >= 4:
        high = data[cut - 2] if big_endian else data[cut - 1]  # the high byte of the unit before the cut
        if 0xD8 <= high <= 0xDB:  # a high surrogate: its pair follows the cut
            cut -= 2
    return cut


class LineFramer:
    """Splits bytes into bounded lines; see the module docstring."""

    __slots__ = ("big_endian", "max_line_bytes", "newline", "part")

    def __init__(self, max_line_bytes: int, part: int = 0, newline: bytes = b"\n") -> None:
        if max_line_bytes < 4:
            raise ValueError(f"max_line_bytes must be at least 4, got {max_line_bytes}")
        if newline not in (b"\n", b"\n\x00", b"\x00\n"):
            raise ValueError(f"a line ends with b'\\n' or UTF-16's newline, not {newline!r}")
        self.max_line_bytes = max_line_bytes
        self.newline = newline
        self.big_endian = newline == b"\x00\n"
        self.part = part
        """Parts already given for the line in progress (0: at a line start)."""

    def has_line_end(self, data: bytes) -> bool:
        """Whether ``data`` (starting on a character boundary) holds a line end."""
        if len(self.newline) == 1:
            return self.newline in data
        return self._wide_find(data, 0, len(data)) != -1

    def _wide_find(self, data: bytes, start: int, end: int) -> int:
        i = data.find(self.newline, start, end)
        while i != -1 and i & 1:  # straddles two characters: not a line end
            i = data.find(self.newline, i + 1, end)
        return i

    def _cut(self, data: bytes | memoryview, limit: int) -> int:
        if len(self.newline) == 1:
            return _utf8_cut(data, limit)
        return _utf16_cut(data, limit, self.big_endian)

    @property
    def min_read_bytes(self) -> int:
        """Reads must offer at least this much, or a too-long line could not be told from a partial one."""
        return self.max_line_bytes + 1

    def reset(self) -> None:
        """Forget a line in progress (the stream was truncated)."""
        self.part = 0

    def frame(self, data: bytes, max_lines: int, *, at_eof: bool = False) -> Framed:
        """The first at most ``max_lines`` lines of ``data`` (which starts at the consumed offset)."""
        if max_lines < 1:
            raise ValueError(f"max_lines must be at least 1, got {max_lines}")
        limit = self.max_line_bytes
        if len(self.newline) == 1:
            pieces = data.split(b"\n", max_lines)
            rest = pieces.pop()
        else:
            pieces, rest = self._wide_split(data, max_lines)
        consumed = len(data) - len(rest)
        if pieces:
            if self.part == 0 and (consumed <= limit or max(map(len, pieces)) <= limit):
                return Framed(pieces, consumed)
            return self._split_long(pieces, consumed)
        # No newline at all in data.
        if len(rest) > limit:
            cut = self._cut(rest, limit)
            self.part += 1
            return Framed([rest[:cut]], cut, [self.part])
        if at_eof and rest:
            code = -(self.part + 1) if self.part else WHOLE
            self.part = 0
            return Framed([rest], len(rest), [code])
        return Framed([], 0)

    def _wide_split(self, data: bytes, max_lines: int) -> tuple[list[bytes], bytes]:
        """``data.split(newline, max_lines)`` for UTF-16: up to ``max_lines`` lines, then the rest."""
        pieces: list[bytes] = []
        pos = 0
        end = len(data) & ~1
        while len(pieces) < max_lines:
            i = self._wide_find(data, pos, end)
            if i == -1:
                break
            pieces.append(data[pos:i])
            pos = i + 2
        return pieces, data[pos:]

    def _split_long(self, pieces: list[bytes], consumed: int) -> Framed:
        """The slow path: some piece is too long, or the first piece ends a long line."""
        limit = self.max_line_bytes
        out: list[bytes] = []
        parts: list[int] = []
        for piece in pieces:
            start = 0
            while len(piece) - start > limit:
                cut = start + self._cut(memoryview(piece)[start:], limit)
                self.part += 1
                out.append(piece[start:cut])
                parts.append(self.part)
                start = cut
            out.append(piece[start:] if start else piece)
            parts.append(-(self.part + 1) if self.part else WHOLE)
            self.part = 0
        return Framed(out, consumed, parts)
