"""The rules engine: first match wins, each matcher, level comparisons, globs, fields, regexes."""

from __future__ import annotations

from typing import Any

import pytest

from logferry.errors import ConfigError
from logferry.model import Fate, Level, Record, make_record
from logferry.pipeline import Action, RuleConfig, RuleSet, parse_level_spec


def rec(
    msg: str = "hello",
    level: int = Level.INFO,
    host: str = "web-1",
    path: str = "/var/log/app/a.log",
    fields: dict[str, str] | None = None,
) -> Record:
    return make_record(1, 1_700_000_000_000_000_000, level, host, path, msg, fields)


def rules(*specs: dict[str, Any], default: Action = Action.FORWARD) -> RuleSet:
    return RuleSet.from_config([RuleConfig(**spec) for spec in specs], default, "relay.toml")


def one(action: str = "hold", **conditions: Any) -> RuleSet:
    return rules({"name": "r", "action": Action(action), **conditions})


def test_first_match_wins() -> None:
    rs = rules(
        {"name": "a", "action": Action.HOLD, "message": "card"},
        {"name": "b", "action": Action.DROP, "message": "card|debug"},
    )
    assert (rs.decide("s", rec("card 1")).rule, rs.decide("s", rec("card 1")).fate) == ("a", Fate.HELD)
    assert (rs.decide("s", rec("debug")).rule, rs.decide("s", rec("debug")).fate) == ("b", Fate.DROPPED)
    d = rs.decide("s", rec("other"))
    assert (d.rule, d.fate, d.redactions) == ("", Fate.FORWARDED, ())


def test_default_action_applies_when_nothing_matches() -> None:
    rs = rules({"name": "keep-errors", "action": Action.FORWARD, "level": ">=error"}, default=Action.DROP)
    assert rs.decide("s", rec(level=Level.ERROR)).fate is Fate.FORWARDED
    d = rs.decide("s", rec(level=Level.INFO))
    assert (d.fate, d.rule) == (Fate.DROPPED, "")


def test_decision_keeps_the_record_object_when_not_redacting() -> None:
    r = rec()
    assert one("drop").decide("s", r).record is r


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("error", {3}),
        ("ERR", {3}),
        (">=warning", {0, 1, 2, 3, 4}),
        (">warning", {0, 1, 2, 3}),
        ("<=info", {6, 7}),
        ("<info", {7}),
        ("=notice", {5}),
        ("!=debug", {0, 1, 2, 3, 4, 5, 6}),
        (">= crit", {0, 1, 2}),
        ("3", {3}),
        (["error", "warn"], {3, 4}),
    ],
)
def test_level_specs_compare_by_severity(spec: str | list[str], expected: set[int]) -> None:
    assert parse_level_spec(spec) == expected


@pytest.mark.parametrize("spec", ["loud", ">=", "=>warning", [], ["error", "nope"], ">emergency", "<debug"])
def test_bad_level_specs(spec: str | list[str]) -> None:
    with pytest.raises(ValueError, match=r"level|expected|matches no level"):
        parse_level_spec(spec)


def test_level_matcher() -> None:
    rs = one(level=">=warning")
    assert rs.decide("s", rec(level=Level.CRITICAL)).fate is Fate.HELD
    assert rs.decide("s", rec(level=Level.WARNING)).fate is Fate.HELD
    assert rs.decide("s", rec(level=Level.NOTICE)).fate is Fate.FORWARDED
    assert rs.decide("s", rec(level=42)).fate is Fate.FORWARDED  # out of range: never matches a condition


def test_source_glob_and_list() -> None:
    rs = one(source=["edge-*", "pos-[0-9]"])
    assert rs.decide("edge-17", rec()).fate is Fate.HELD
    assert rs.decide("pos-3", rec()).fate is Fate.HELD
    assert rs.decide("pos-33", rec()).fate is Fate.FORWARDED
    assert rs.decide("core-1", rec()).fate is Fate.FORWARDED
    assert rs.decide("Edge-17", rec()).fate is Fate.FORWARDED  # globs are case-sensitive


def test_host_glob() -> None:
    rs = one(host="db-?")
    assert rs.decide("s", rec(host="db-1")).fate is Fate.HELD
    assert rs.decide("s", rec(host="db-12")).fate is Fate.FORWARDED


def test_path_glob_star_crosses_slashes() -> None:
    rs = one(path="/var/log/pay*/*.log")
    assert rs.decide("s", rec(path="/var/log/payments/x.log")).fate is Fate.HELD
    assert rs.decide("s", rec(path="/var/log/payments/2024/x.log")).fate is Fate.HELD
    assert rs.decide("s", rec(path="/var/log/app/x.log")).fate is Fate.FORWARDED
    assert rs.decide("s", rec(path="/var/log/payments/x.log.1")).fate is Fate.FORWARDED


def test_fields_exact_values_and_alternatives() -> None:
    rs = one(fields={"app": ["pos", "billing"], "status": 500})
    assert rs.decide("s", rec(fields={"app": "pos", "status": "500"})).fate is Fate.HELD
    assert rs.decide("s", rec(fields={"app": "billing", "status": "500", "x": "y"})).fate is Fate.HELD
    assert rs.decide("s", rec(fields={"app": "web", "status": "500"})).fate is Fate.FORWARDED
    assert rs.decide("s", rec(fields={"app": "pos"})).fate is Fate.FORWARDED  # missing field: no match
    assert rs.decide("s", rec(fields={"app": "pos", "status": "5000"})).fate is Fate.FORWARDED


def test_message_regex_is_searched_and_not_message_excludes() -> None:
    rs = one("drop", message=r"GET /health", not_message=r" 5\d\d ")
    assert rs.decide("s", rec("10.0.0.1 GET /health 200 1ms")).fate is Fate.DROPPED
    assert rs.decide("s", rec("10.0.0.1 GET /health 503 1ms")).fate is Fate.FORWARDED
    assert rs.decide("s", rec("GET /index 200")).fate is Fate.FORWARDED
    assert one(message="(?i)timeout").decide("s", rec("Read TIMEOUT")).fate is Fate.HELD


def test_all_conditions_must_hold() -> None:
    rs = one(level=">=error", host="db-*", message="deadlock")
    assert rs.decide("s", rec("deadlock found", Level.ERROR, "db-1")).fate is Fate.HELD
    assert rs.decide("s", rec("deadlock found", Level.INFO, "db-1")).fate is Fate.FORWARDED
    assert rs.decide("s", rec("deadlock found", Level.ERROR, "web-1")).fate is Fate.FORWARDED
    assert rs.decide("s", rec("all fine", Level.ERROR, "db-1")).fate is Fate.FORWARDED


def test_rule_without_conditions_matches_everything() -> None:
    assert one("drop").decide("s", rec()).fate is Fate.DROPPED


def test_trivial_ruleset() -> None:
    assert RuleSet.from_config([]).is_trivial
    assert not RuleSet.from_config([], Action.HOLD).is_trivial
    assert not one("forward").is_trivial
    d = RuleSet.from_config([]).decide("s", rec())
    assert (d.fate, d.rule) == (Fate.FORWARDED, "")


def test_decide_many_equals_decide() -> None:
    rs = one("drop", level="<=debug")
    records = [rec(level=lv) for lv in Level]
    assert rs.decide_many("s", records) == [rs.decide("s", r) for r in records]


def test_names_are_kept_in_order() -> None:
    rs = rules({"name": "b", "action": Action.DROP}, {"name": "a", "action": Action.HOLD})
    assert rs.names == ("b", "a")


@pytest.mark.parametrize(
    ("spec", "key", "needle"),
    [
        (
            {"name": "x", "action": Action.HOLD, "message": "("},
            "relay.rules[0].message",
            'invalid regex in rule "x"',
        ),
        (
            {"name": "x", "action": Action.HOLD, "not_message": "a{99999999999}"},
            "relay.rules[0].not_message",
            "too large",
        ),
        (
            {"name": "x", "action": Action.HOLD, "level": "loud"},
            "relay.rules[0].level",
            "expected a level name",
        ),
        ({"name": "x", "action": Action.HOLD, "source": []}, "relay.rules[0].source", "got []"),
        ({"name": "x", "action": Action.REDACT}, "relay.rules[0].redact", "non-empty list"),
        (
            {"name": "x", "action": Action.REDACT, "redact": ["card", "(?P<"]},
            "relay.rules[0].redact[1]",
            "invalid regex",
        ),
        ({"name": "x", "action": Action.DROP, "redact": ["card"]}, "relay.rules[0].redact", "only allowed"),
        (
            {"name": "x", "action": Action.DROP, "replacement": "***"},
            "relay.rules[0].replacement",
            "only allowed",
        ),
    ],
)
def test_compile_errors_name_the_key(spec: dict[str, Any], key: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        RuleSet.from_config([RuleConfig(**spec)], Action.FORWARD, "relay.toml")
    assert info.value.key == key
    assert info.value.path == "relay.toml"
    assert needle in str(info.value)


def test_duplicate_names_and_every_problem_reported() -> None:
    cfgs = [RuleConfig(name="a", action=Action.HOLD), RuleConfig(name="a", action=Action.DROP, message="(")]
    _, problems = RuleSet.compile(cfgs, Action.FORWARD, "relay.toml")
    assert [str(p) for p in problems] == [
        'relay.toml: relay.rules[1].name: duplicate rule name "a" (first used by relay.rules[0])',
        'relay.toml: relay.rules[1].message: invalid regex in rule "a": missing ), unterminated subpattern '
        "at position 0 (regex: '(')",
    ]
    with pytest.raises(ConfigError) as info:
        RuleSet.from_config(cfgs, Action.FORWARD, "relay.toml")
    assert "invalid regex" in info.value.__notes__[0]


def test_default_action_cannot_be_redact() -> None:
    with pytest.raises(ConfigError, match=r"relay\.default_action: expected one of forward, hold, drop"):
        RuleSet.from_config([], Action.REDACT, "relay.toml")
