"""Redaction: mask sensitive text in a record's message and field values.

A redaction pattern is a named preset (``card``, ``password``, ``secret``, ``token``, ``email``, ``ipv4``)
or a user regex. When a pattern has a group named ``value`` only that group is masked, so ``password=hunter2``
becomes ``password=[REDACTED]`` and stays searchable by key. Card numbers are masked only when they pass the
Luhn check, so order numbers and timestamps that merely look long survive.

Everything is compiled once by :func:`compile_patterns`; :meth:`Redactor.apply` does no compilation. This
module must never change a record itself (the rules engine makes the copy with a new digest) and never do I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

# Key=value secrets: the key may carry a prefix joined by _ . or - (db_password, aws-secret), may be quoted
# (JSON), and the value may be quoted. Only the value is masked. A bare word such as "bypass" never matches
# because a prefix must end in a separator and the key must start on a word boundary.
_KV_VALUE = r"""["']?\s*[:=]\s*(?P<q>["'])?(?P<value>(?(q)[^"'\n]*|[^\s,;&"'<>]+))"""


def _kv(keys: str) -> str:
    return r"(?i)\b(?:[\w-]*[_.-])?(?:" + keys + r")\b" + _KV_VALUE


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

PRESETS: dict[str, str] = {
    # 13–19 digits, optionally grouped by single spaces or dashes, never part of a longer digit run.
    "card": r"(?<!\d)(?<!\d[ -])(?:\d[ -]?){12,18}\d(?![ -]?\d)",
    "password": _kv(r"password|passwd|passphrase|pwd|pass"),
    "secret": _kv(r"secret|api_?key|apikey|private_?key|access_?key|secret_?key|credentials?"),
    "token": r"(?i)(?:\b(?:[\w-]*[_.-])?(?:token|sessionid|session_id)\b"
    + _KV_VALUE
    + r"|\bbearer\s+(?P<bearer>[A-Za-z0-9._~+/=-]+))",
    "email": r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
    "ipv4": r"(?<![\d.])(?:" + _OCTET + r"\.){3}" + _OCTET + r"(?![\d.]*\d)",
}

# Groups that, when present in a match, are the only part masked.
_VALUE_GROUPS = ("value", "bearer")


def luhn_valid(text: str) -> bool:
    """True if the digits of ``text`` (separators ignored) form a 13–19 digit Luhn-valid number."""
    digits = [ord(c) - 48 for c in text if "0" <= c <= "9"]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        # Every second digit from the right is doubled; a two-digit product counts as its digit sum.
        total += d if i % 2 == 0 else (2 * d - 9 if d > 4 else 2 * d)
    return total % 10 == 0


_VALIDATORS: dict[str, Callable[[str], bool]] = {"card": luhn_valid}


class _Pattern:
    """One compiled pattern and its mask function; ``hits`` counts masks during one ``apply``."""

    __slots__ = ("groups", "hits", "name", "regex", "replacement", "validator")

    def __init__(self, name: str, regex: re.Pattern[str], replacement: str) -> None:
        self.name = name
        self.regex = regex
        self.replacement = replacement
        self.validator = _VALIDATORS.get(name)
        self.groups = tuple(g for g in _VALUE_GROUPS if g in regex.groupindex)
        self.hits = 0

    def mask(self, m: re.Match[str]) -> str:
        whole = m.group(0)
        if self.validator is not None and not self.validator(whole):
            return whole
        for g in self.groups:
            start = m.start(g)
            if start >= 0:
                base = m.start()
                self.hits += 1
                return whole[: start - base] + self.replacement + whole[m.end(g) - base :]
        if self.groups:
            return whole  # the pattern names a value group, and it did not take part: nothing to mask
        self.hits += 1
        return self.replacement


def compile_regex(text: str) -> re.Pattern[str] | str:
    """The compiled regex, or why it is invalid (re raises more than re.error: huge repeats overflow)."""
    try:
        return re.compile(text)
    except (re.error, OverflowError, RecursionError) as exc:
        return str(exc)


def compile_patterns(specs: Sequence[str]) -> list[tuple[str, re.Pattern[str] | str]]:
    """Compile each spec (preset name or regex); an invalid regex comes back as its error text."""
    return [(spec, compile_regex(PRESETS.get(spec, spec))) for spec in specs]


class Redactor:
    """Masks every match of its patterns; built once per redact rule."""

    __slots__ = ("_patterns",)

    def __init__(self, patterns: Sequence[tuple[str, re.Pattern[str]]], replacement: str) -> None:
        self._patterns = tuple(_Pattern(name, rx, replacement) for name, rx in patterns)

    def apply(self, text: str, counts: dict[str, int]) -> str:
        """Return ``text`` with every match masked; add the number of masks per pattern name to ``counts``."""
        for p in self._patterns:
            # search() first: the common case is "no secret here", and search does not build a new string.
            if p.regex.search(text) is None:
                continue
            p.hits = 0
            text = p.regex.sub(p.mask, text)
            if p.hits:
                counts[p.name] = counts.get(p.name, 0) + p.hits
        return text

    def apply_fields(self, fields: dict[str, str], counts: dict[str, int]) -> dict[str, str] | None:
        """A new fields table with values masked, or None when nothing in it changed."""
        changed: dict[str, str] | None = None
        for key, value in fields.items():
            new = self.apply(value, counts)
            if new != value:
                if changed is None:
                    changed = dict(fields)
                changed[key] = new
        return changed
