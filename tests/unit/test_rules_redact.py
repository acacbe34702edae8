"""Redaction: presets, Luhn-checked cards, custom regexes, counts, digests and the no-match case."""

from __future__ import annotations

import pytest

from logferry.model import Fate, Level, Record, make_record
from logferry.pipeline import Action, RuleConfig, RuleSet, luhn_valid


def rec(msg: str, fields: dict[str, str] | None = None) -> Record:
    return make_record(7, 1_700_000_000_000_000_000, Level.INFO, "pos-1", "/var/log/pos.log", msg, fields)


def redactor(*patterns: str, replacement: str = "[REDACTED]") -> RuleSet:
    cfg = RuleConfig(name="mask", action=Action.REDACT, redact=list(patterns), replacement=replacement)
    return RuleSet.from_config([cfg])


def masked(rs: RuleSet, msg: str) -> str:
    return rs.decide("s", rec(msg)).record.msg


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5500005555555559",
        "378282246310005",
        "6011111111111117",
        "4242424242424242",
    ],
)
def test_valid_card_numbers_are_masked(number: str) -> None:
    assert masked(redactor("card"), f"paid with {number} today") == "paid with [REDACTED] today"


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111112 shipped",  # fails Luhn
        "trace 1234567890123456 done",  # fails Luhn
        "ts 20240101123456789012345",  # 23 digits: too long to be a card, and not split into one
        "id 411111111111",  # 12 digits: too short
        "phone 555 1234",
    ],
)
def test_digit_runs_that_are_not_cards_survive(text: str) -> None:
    rs = redactor("card")
    d = rs.decide("s", rec(text))
    assert d.record.msg == text
    assert d.fate is Fate.FORWARDED


def test_luhn() -> None:
    assert luhn_valid("4111 1111 1111 1111")
    assert not luhn_valid("4111 1111 1111 1112")
    assert not luhn_valid("0000 0000 00")  # too short, even if the sum is 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("login password=hunter2 ok", "login password=[REDACTED] ok"),
        ("PASSWORD: hunter2", "PASSWORD: [REDACTED]"),
        ("pwd=abc&user=bob", "pwd=[REDACTED]&user=bob"),
        ("passwd = 's3 cret'", "passwd = '[REDACTED]'"),
        ('{"password": "p@ss w0rd", "user": "bob"}', '{"password": "[REDACTED]", "user": "bob"}'),
        ("db_password=xyz", "db_password=[REDACTED]"),
        ("pass:1234", "pass:[REDACTED]"),
    ],
)
def test_password_spellings(text: str, expected: str) -> None:
    assert masked(redactor("password"), text) == expected


@pytest.mark.parametrize("text", ["bypass=1", "passport=X123", "password reset requested", "passes: 3"])
def test_password_lookalikes_survive(text: str) -> None:
    assert masked(redactor("password"), text) == text


@pytest.mark.parametrize(
    ("preset", "text", "expected"),
    [
        ("token", "Authorization: Bearer eyJhbGc.x-y_z", "Authorization: Bearer [REDACTED]"),
        ("token", "access_token=abc123 next", "access_token=[REDACTED] next"),
        ("secret", "api_key: AKIA123 client_secret=zz", "api_key: [REDACTED] client_secret=[REDACTED]"),
        ("email", "mail bob.smith+x@example.co.uk now", "mail [REDACTED] now"),
        ("ipv4", "from 10.0.0.255 to 192.168.1.1", "from [REDACTED] to [REDACTED]"),
        ("ipv4", "version 1.2.3.4.5 and 999.1.1.1", "version 1.2.3.4.5 and 999.1.1.1"),
    ],
)
def test_other_presets(preset: str, text: str, expected: str) -> None:
    assert masked(redactor(preset), text) == expected


def test_custom_regex_whole_match_and_value_group() -> None:
    rs = redactor(r"\b\d{3}-\d{2}-\d{4}\b", r"user=(?P<value>\w+)", replacement="***")
    d = rs.decide("s", rec("ssn 123-45-6789 user=bob"))
    assert d.record.msg == "ssn *** user=***"
    assert d.redactions == ((r"\b\d{3}-\d{2}-\d{4}\b", 1), (r"user=(?P<value>\w+)", 1))


def test_counts_per_pattern_and_fields_are_redacted_too() -> None:
    rs = redactor("card", "password")
    d = rs.decide("s", rec("4111111111111111 and 5500005555555559 password=x", {"note": "pwd=y", "k": "v"}))
    assert d.fate is Fate.REDACTED
    assert d.rule == "mask"
    assert dict(d.redactions) == {"card": 2, "password": 2}
    assert d.record.msg == "[REDACTED] and [REDACTED] password=[REDACTED]"
    assert d.record.fields == {"note": "pwd=[REDACTED]", "k": "v"}


def test_redaction_changes_the_digest_but_not_the_identity() -> None:
    original = rec("password=hunter2")
    d = redactor("password").decide("s", original)
    assert d.record.digest != original.digest
    assert (d.record.seq, d.record.ts_ns, d.record.host, d.record.path) == (
        original.seq,
        original.ts_ns,
        original.host,
        original.path,
    )
    assert original.msg == "password=hunter2"  # the input record is never changed
    again = make_record(
        original.seq, original.ts_ns, original.level, original.host, original.path, d.record.msg
    )
    assert again.digest == d.record.digest


def test_redact_rule_that_masks_nothing_forwards_unchanged_but_names_the_rule() -> None:
    original = rec("nothing secret here")
    d = redactor("card", "password").decide("s", original)
    assert (d.fate, d.rule, d.redactions) == (Fate.FORWARDED, "mask", ())
    assert d.record is original


def test_redact_rule_respects_its_conditions() -> None:
    cfg = RuleConfig(name="m", action=Action.REDACT, redact=["email"], source="pos-*")
    rs = RuleSet.from_config([cfg])
    assert rs.decide("pos-1", rec("a@b.io")).record.msg == "[REDACTED]"
    assert rs.decide("web-1", rec("a@b.io")).record.msg == "a@b.io"
