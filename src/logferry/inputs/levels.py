"""Guess a log line's severity from the tokens programs commonly print.

Recognised within the first ``SCAN_CHARS`` characters of a line, leftmost match wins:

- a syslog PRI at the very start: ``<11>`` (severity = PRI mod 8);
- a key/value: ``level=error``, ``lvl: warn``, ``severity="crit"``, JSON ``"level":"debug"`` (any case);
- a bracketed word: ``[error]``, ``<Warn>``, ``(info)``, ``[ERR:`` (any case);
- a bare upper-case word: ``ERROR``, ``ERR``, ``WARN``, ``WARNING``, ``INFO``, ``DEBUG``, ``CRIT``,
  ``FATAL`` ….

Bare words are matched in upper case only: "no error found" must not make a line an error. A line with
no token is ``Level.INFO``. This module is pure and must stay fast (one compiled regex, a bounded scan,
one dict lookup: well under a microsecond per line); it must never raise on any input.
"""

from __future__ import annotations

import re
from typing import Final

from logferry.model import Level

SCAN_CHARS: Final = 100
"""Only the head of a line is searched: levels sit near the start, and long lines must not cost more."""

DEFAULT_LEVEL: Final = int(Level.INFO)

# Spellings Level.parse accepts; the regex only ever matches one of these, so the lookup never misses.
_WORDS: Final = (
    "emergency",
    "emerg",
    "panic",
    "alert",
    "critical",
    "crit",
    "fatal",
    "error",
    "err",
    "warning",
    "warn",
    "notice",
    "information",
    "info",
    "debug",
    "trace",
)
_BY_WORD: Final[dict[str, int]] = {w: int(Level.parse(w)) for w in _WORDS}
_KV_KEYS: Final = ("level", "lvl", "loglevel", "severity")


def _build_pattern() -> re.Pattern[str]:
    """One alternation whose every branch starts with a literal character.

    That shape lets the regex engine skip, in C, every position whose character cannot start a match
    (it computes a first-character set only when each branch begins with a literal). A naive pattern
    starting with ``\\b`` measured 4-8 µs per line; this one 0.6-0.9 µs. The ``(?<!\\wX)`` right after the
    literal ``X`` is the word boundary before it.
    """
    words = "|".join(_WORDS)
    branches: list[str] = []
    bare_by_first: dict[str, list[str]] = {}
    for w in _WORDS:
        bare_by_first.setdefault(w[0].upper(), []).append(w[1:].upper())
    for first, tails in sorted(bare_by_first.items()):
        branches.append(rf"{first}(?<!\w{first})(?:{'|'.join(tails)})\b")
    kv_tail = rf"[\"']?[ \t]*[=:][ \t]*[\"']?(?i:{words})\b"
    key_by_first: dict[str, list[str]] = {}
    for key in _KV_KEYS:
        key_by_first.setdefault(key[0], []).append(key[1:])
    for first, tails in sorted(key_by_first.items()):
        for c in (first, first.upper()):
            branches.append(rf"{c}(?<!\w{c})(?i:{'|'.join(tails)}){kv_tail}")
    for opening, closing in (("\\[", "\\]"), ("<", ">"), ("\\(", "\\)")):
        branches.append(rf"{opening}(?i:{words})[{closing}:]")
    return re.compile("|".join(branches))


_LEVEL_RE: Final = _build_pattern()
_PRI_RE: Final = re.compile(r"<(\d{1,3})>")
_TRAILING_WORD_RE: Final = re.compile(r"[A-Za-z]+$")


def detect_level(line: str) -> int:
    """The ``model.Level`` (as int) that ``line`` announces, or ``Level.INFO`` if it announces none."""
    if line.startswith("<"):
        pri = _PRI_RE.match(line)
        # PRI is at most 191 (facility 23 * 8 + severity 7); anything bigger is not a PRI.
        if pri is not None and int(pri.group(1)) <= 191:
            return int(pri.group(1)) % 8
    m = _LEVEL_RE.search(line, 0, SCAN_CHARS)
    if m is None:
        return DEFAULT_LEVEL
    text = m.group()
    first = text[0]
    if first in "[<(":
        word = text[1:-1]
    elif first in "lLsS":  # a key: no bare level word starts with l or s
        tail = _TRAILING_WORD_RE.search(text)
        word = tail.group() if tail is not None else ""
    else:
        word = text
    return _BY_WORD.get(word.lower(), DEFAULT_LEVEL)
