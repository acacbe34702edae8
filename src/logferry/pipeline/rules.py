"""The relay's rules engine: decide, for each record, forward, hold, drop or redact-then-forward.

Rules are ordered and the first rule whose conditions all hold wins; when none matches, the default action
applies (forward unless configured otherwise). Everything a rule needs — level sets, glob regexes, field
alternatives, message regexes, redaction patterns — is compiled once by :meth:`RuleSet.from_config`, which
reports every mistake as a :class:`~logferry.errors.ConfigError` naming the file and key path.

:meth:`RuleSet.decide` is on the relay's hot path (~200k records/s): it compares levels as ints, matches globs
with precompiled regexes, and allocates nothing but the small :class:`Decision` unless it redacts.
This module must never do I/O, keep state between records, or change a record in place: a redacted record is a
new copy with a new digest (``model.with_payload``), so the journal can tell the two apart.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable, Sequence

import msgspec

from logferry.errors import ConfigError
from logferry.model import Fate, Level, Record, with_payload
from logferry.pipeline.redact import Redactor, compile_patterns, compile_regex
from logferry.pipeline.rule_config import DEFAULT_REPLACEMENT, Action, Items, RuleConfig

_ALL_LEVELS = frozenset(int(lv) for lv in Level)
_LEVEL_NAMES = ", ".join(lv.name.lower() for lv in Level)
# Lower numbers are more severe, so "at least as severe as n" means "a number <= n". Two-character operators
# come first so that ">=" is not read as ">" followed by "=warning".
_LEVEL_OPS: dict[str, Callable[[int, int], bool]] = {
    ">=": operator.le,
    "<=": operator.ge,
    "!=": operator.ne,
    ">": operator.lt,
    "<": operator.gt,
    "=": operator.eq,
}


class Decision(msgspec.Struct, frozen=True, gc=False):
    """The outcome for one record.

    ``rule`` is the name of the rule that matched ("" when the default action applied). ``record`` is the
    record to store or forward: the original, or a redacted copy (new digest) when ``fate`` is REDACTED.
    ``redactions`` lists (pattern name, number of masks) for the console.
    """

    fate: Fate
    rule: str
    record: Record
    redactions: tuple[tuple[str, int], ...] = ()


def parse_level_spec(spec: str | list[str]) -> frozenset[int]:
    """The set of syslog severities a ``level`` condition accepts; raises ValueError if malformed.

    Comparisons are by severity, not by number: ``>=warning`` is warning or anything more severe
    (emergency..warning, numbers 0..4), ``<=info`` is info or less severe (info, debug).
    """
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"expected at least one level name ({_LEVEL_NAMES}), got []")
        return frozenset(int(Level.parse(name)) for name in spec)
    text = spec.strip()
    op = next((o for o in _LEVEL_OPS if text.startswith(o)), "=")
    name = text[len(op) :] if text.startswith(op) else text
    try:
        n = int(Level.parse(name))
    except ValueError:
        raise ValueError(
            f'expected a level name ({_LEVEL_NAMES}), optionally after >=, >, <=, <, = or !=, got "{spec}"'
        ) from None
    pick = _LEVEL_OPS[op]
    levels = frozenset(lv for lv in _ALL_LEVELS if pick(lv, n))
    if not levels:
        raise ValueError(f'"{spec}" matches no level at all')
    return levels


def compile_globs(globs: str | list[str]) -> re.Pattern[str]:
    """One anchored regex for a glob or list of globs (fnmatch syntax; ``*`` also crosses ``/``)."""
    items = [globs] if isinstance(globs, str) else globs
    if not items:
        raise ValueError("expected a glob or a non-empty list of globs, got []")
    # fnmatch.translate yields "(?s:...)\Z"; joining them gives one C-level match per record.
    return re.compile("|".join(fnmatch.translate(g) for g in items))


class _Rule:
    """A compiled rule; None means "no condition"."""

    __slots__ = (
        "action",
        "fate",
        "fields",
        "file_name",
        "for_files",
        "for_records",
        "host",
        "levels",
        "message",
        "name",
        "not_message",
        "path",
        "redactor",
        "size",
        "source",
    )

    def __init__(self, name: str, action: Action) -> None:
        self.name = name
        self.action = action
        self.fate = action.fate
        self.levels: frozenset[int] | None = None
        self.source: re.Pattern[str] | None = None
        self.host: re.Pattern[str] | None = None
        self.path: re.Pattern[str] | None = None
        self.fields: tuple[tuple[str, frozenset[str]], ...] = ()
        self.message: re.Pattern[str] | None = None
        self.not_message: re.Pattern[str] | None = None
        self.redactor: Redactor | None = None
        self.file_name: re.Pattern[str] | None = None
        self.size: tuple[int, int] | None = None  # inclusive bounds for files
        self.for_records = True
        self.for_files = True

    def matches_file(self, source: str, path: str, size: int) -> bool:
        """A whole file: only source, path, file name and size conditions apply."""
        if not self.for_files:
            return False
        if self.source is not None and self.source.match(source) is None:
            return False
        if self.path is not None and self.path.match(path) is None:
            return False
        if (
            self.file_name is not None
            and self.file_name.match(path.replace("\\", "/").rsplit("/", 1)[-1]) is None
        ):
            return False
        return self.size is None or self.size[0] <= size <= self.size[1]

    def matches(self, source: str, rec: Record) -> bool:
        if not self.for_records:
            return False
        # Cheapest checks first: an int in a set, then anchored regexes on short strings, then message search.
        if self.levels is not None and rec.level not in self.levels:
            return False
        if self.source is not None and self.source.match(source) is None:
            return False
        if self.host is not None and self.host.match(rec.host) is None:
            return False
        if self.path is not None and self.path.match(rec.path) is None:
            return False
        if self.fields:
            got = rec.fields
            for key, allowed in self.fields:
                if got.get(key) not in allowed:
                    return False
        if self.message is not None and self.message.search(rec.msg) is None:
            return False
        return self.not_message is None or self.not_message.search(rec.msg) is None


class _Collector:
    """Gathers config problems so ``logferry config check`` can show them all at once."""

    def __init__(self, path: str | None, prefix: str) -> None:
        self.path = path
        self.prefix = prefix
        self.problems: list[ConfigError] = []

    def add(self, key: str, message: str) -> None:
        self.problems.append(ConfigError(message, path=self.path, key=f"{self.prefix}{key}"))


def _regex(c: _Collector, key: str, rule: str, text: str) -> re.Pattern[str] | None:
    compiled = compile_regex(text)
    if isinstance(compiled, str):
        c.add(key, f'invalid regex in rule "{rule}": {compiled} (regex: {text!r})')
        return None
    return compiled


def _compile_rule(c: _Collector, i: int, cfg: RuleConfig) -> _Rule:
    at = f"[{i}]"
    rule = _Rule(cfg.name, cfg.action)
    if cfg.level is not None:
        try:
            rule.levels = parse_level_spec(cfg.level)
        except ValueError as exc:
            c.add(f"{at}.level", str(exc))
    for attr in ("source", "host", "path"):
        globs = getattr(cfg, attr)
        if globs is not None:
            try:
                setattr(rule, attr, compile_globs(globs))
            except (ValueError, re.error, OverflowError) as exc:
                c.add(f"{at}.{attr}", str(exc))
    fields: list[tuple[str, frozenset[str]]] = []
    for key, value in cfg.fields.items():
        alts = value if isinstance(value, list) else [value]
        if not alts:
            c.add(f"{at}.fields.{key}", "expected a value or a non-empty list of alternatives, got []")
        fields.append((key, frozenset(str(v) for v in alts)))
    rule.fields = tuple(fields)
    if cfg.message is not None:
        rule.message = _regex(c, f"{at}.message", cfg.name, cfg.message)
    if cfg.not_message is not None:
        rule.not_message = _regex(c, f"{at}.not_message", cfg.name, cfg.not_message)
    if cfg.file_name is not None:
        try:
            rule.file_name = compile_globs(cfg.file_name)
        except (ValueError, re.error, OverflowError) as exc:
            c.add(f"{at}.file_name", str(exc))
    if cfg.min_size is not None or cfg.max_size is not None:
        rule.size = (cfg.min_size or 0, (1 << 63) if cfg.max_size is None else cfg.max_size)
    # A condition only one kind of item has decides which kind the rule can match at all.
    record_only = (cfg.level, cfg.host, cfg.message, cfg.not_message) != (None,) * 4 or bool(cfg.fields)
    file_only = rule.file_name is not None or rule.size is not None
    rule.for_records = cfg.items is not Items.FILES and not file_only
    rule.for_files = cfg.items is not Items.RECORDS and not record_only and cfg.action is not Action.REDACT
    if record_only and file_only:
        c.add(f"{at}.file_name", f'rule "{cfg.name}" mixes record conditions with file conditions: '
              "it could never match anything; split it into two rules")  # fmt: skip
    if cfg.action is Action.REDACT:
        if not cfg.redact:
            c.add(f"{at}.redact", 'expected a non-empty list of presets or regexes for action = "redact"')
        good: list[tuple[str, re.Pattern[str]]] = []
        for j, (name, compiled) in enumerate(compile_patterns(cfg.redact)):
            if isinstance(compiled, str):
                msg = f'invalid regex in rule "{cfg.name}": {compiled} (regex: {name!r})'
                c.add(f"{at}.redact[{j}]", msg)
            else:
                good.append((name, compiled))
        rule.redactor = Redactor(good, cfg.replacement)
    else:
        # Catch a half-edited rule (action changed, patterns left behind) instead of silently ignoring it.
        only = f'only allowed with action = "redact", this rule has action = "{cfg.action.value}"'
        if cfg.redact:
            c.add(f"{at}.redact", only)
        if cfg.replacement != DEFAULT_REPLACEMENT:
            c.add(f"{at}.replacement", only)
    return rule


class RuleSet:
    """Ordered, compiled rules; :meth:`decide` gives each record its fate."""

    __slots__ = ("_default", "_default_fate", "_rules", "names")

    def __init__(self, rules: Sequence[_Rule], default_action: Action) -> None:
        self._rules = tuple(rules)
        self._default = default_action
        self._default_fate = default_action.fate
        self.names: tuple[str, ...] = tuple(r.name for r in self._rules)

    @classmethod
    def from_config(
        cls,
        rules: Sequence[RuleConfig],
        default_action: Action = Action.FORWARD,
        path_for_errors: str | None = None,
        key_prefix: str = "relay.rules",
    ) -> RuleSet:
        """Compile the rules; raise the first problem as ConfigError (the others are attached as notes)."""
        ruleset, problems = cls.compile(rules, default_action, path_for_errors, key_prefix)
        if problems:
            first = problems[0]
            for other in problems[1:]:
                first.add_note(str(other))
            raise first
        return ruleset

    @classmethod
    def compile(
        cls,
        rules: Sequence[RuleConfig],
        default_action: Action = Action.FORWARD,
        path_for_errors: str | None = None,
        key_prefix: str = "relay.rules",
    ) -> tuple[RuleSet, list[ConfigError]]:
        """Compile the rules and return every problem found (the RuleSet is unusable if there are any)."""
        c = _Collector(path_for_errors, key_prefix)
        seen: dict[str, int] = {}
        compiled: list[_Rule] = []
        for i, cfg in enumerate(rules):
            if cfg.name in seen:
                first = f"{key_prefix}[{seen[cfg.name]}]"
                c.add(f"[{i}].name", f'duplicate rule name "{cfg.name}" (first used by {first})')
            seen.setdefault(cfg.name, i)
            compiled.append(_compile_rule(c, i, cfg))
        if default_action is Action.REDACT:
            # The default has no patterns to mask with; the key is the sibling of the rules list.
            key = key_prefix.rsplit(".", 1)[0] + ".default_action"
            msg = 'expected one of forward, hold, drop, got "redact"'
            c.problems.append(ConfigError(msg, path=path_for_errors, key=key))
        return cls(compiled, default_action), c.problems

    @property
    def is_trivial(self) -> bool:
        """True when every record is forwarded unchanged: the relay may then skip decoding batches."""
        return not self._rules and self._default is Action.FORWARD

    @property
    def default_action(self) -> Action:
        return self._default

    def decide(self, source: str, record: Record) -> Decision:
        """The fate of ``record`` from ``source``: the first matching rule's action, else the default.

        A redact rule that matches but masks nothing forwards the record unchanged: fate FORWARDED, yet
        ``rule`` names the redact rule, so the journal shows which rule looked at it.
        """
        for rule in self._rules:
            if rule.matches(source, record):
                if rule.redactor is None:
                    return Decision(rule.fate, rule.name, record)
                return _redact(rule.name, rule.redactor, record)
        return Decision(self._default_fate, "", record)

    def decide_file(self, source: str, path: str, size: int) -> tuple[Fate, str]:
        """The fate of a whole file and the name of the rule that decided it ("" for the default).

        Redact rules never match files (there is no message to mask); a default of redact cannot exist.
        """
        for rule in self._rules:
            if rule.matches_file(source, path, size):
                return rule.fate, rule.name
        return self._default_fate, ""

    def decide_many(self, source: str, records: Sequence[Record]) -> list[Decision]:
        """``decide`` for a batch from one source (saves a method lookup per record)."""
        decide = self.decide
        return [decide(source, r) for r in records]


def _redact(name: str, redactor: Redactor, record: Record) -> Decision:
    counts: dict[str, int] = {}
    msg = redactor.apply(record.msg, counts)
    fields = redactor.apply_fields(record.fields, counts) if record.fields else None
    if not counts:
        return Decision(Fate.FORWARDED, name, record)
    copy = with_payload(record, msg=msg, fields=fields)
    return Decision(Fate.REDACTED, name, copy, tuple(counts.items()))
