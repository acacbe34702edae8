"""Pipeline stages between inputs and outputs: today, the relay's rules engine.

Public API: :class:`RuleSet` (compiled, ordered rules), :class:`Decision` (one record's fate),
:class:`RuleConfig` and :class:`Action` (the declaration of a rule), and the redaction presets.
Nothing here does I/O; the roles feed records in and store the decisions.
"""

from logferry.pipeline.redact import PRESETS, luhn_valid
from logferry.pipeline.rule_config import DEFAULT_REPLACEMENT, Action, RuleConfig
from logferry.pipeline.rules import Decision, RuleSet, compile_globs, parse_level_spec

__all__ = [
    "DEFAULT_REPLACEMENT",
    "PRESETS",
    "Action",
    "Decision",
    "RuleConfig",
    "RuleSet",
    "compile_globs",
    "luhn_valid",
    "parse_level_spec",
]
