"""Filters as people type them: levels with ≥ semantics, times as ISO 8601 or epoch seconds, clear 400s."""

from __future__ import annotations

import pytest

from logferry.api.params import HeldQuery, iso, parse_level, parse_time_ns
from logferry.api.problems import ApiError
from logferry.cli_admin import UsageError, parse_key
from logferry.model import Level
from logferry.store.journal_held import HeldFilter


@pytest.mark.parametrize(
    ("text", "want"),
    [("warning", 4), ("WARN", 4), ("err", 3), ("crit", 2), ("0", 0), ("debug", 7), (None, None), ("", None)],
)
def test_levels_mean_this_or_more_severe(text: str | None, want: int | None) -> None:
    assert parse_level(text) == want


def test_unknown_level_is_a_400_naming_the_choices() -> None:
    with pytest.raises(ApiError) as caught:
        parse_level("loud")
    assert caught.value.status == 400
    assert "level" in caught.value.message and "warning" in caught.value.message


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("1764064800", 1_764_064_800 * 10**9),
        ("1764064800.5", 1_764_064_800_500_000_000),
        ("2025-11-25T10:00:00Z", 1_764_064_800 * 10**9),
        ("2025-11-25T10:00:00", 1_764_064_800 * 10**9),  # no zone: UTC
        ("2025-11-25T12:00:00+02:00", 1_764_064_800 * 10**9),
        ("2025-11-25", 1_764_028_800 * 10**9),
    ],
)
def test_times_are_iso_8601_or_epoch_seconds(text: str, want: int) -> None:
    assert parse_time_ns(text, "since") == want


@pytest.mark.parametrize("text", ["yesterday", "2025-13-01", "1e400", "nan", "99999999999999"])
def test_bad_times_are_400s_naming_the_parameter(text: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_time_ns(text, "until")
    assert caught.value.status == 400 and "until" in caught.value.message
    assert "ISO 8601" in caught.value.hint


def test_held_query_becomes_the_store_filter() -> None:
    q = HeldQuery(rule="hold-cards", source="dev-a", level="warning", q="card=", since="1764064800",
                  until="2025-11-25T11:00:00Z")  # fmt: skip
    assert q.to_filter() == HeldFilter(
        rule="hold-cards", source="dev-a", level_max=int(Level.WARNING), text="card=",
        ts_min_ns=1_764_064_800 * 10**9, ts_max_ns=1_764_068_400 * 10**9,
    )  # fmt: skip
    assert HeldQuery().to_filter() == HeldFilter()


def test_until_before_since_is_a_400() -> None:
    with pytest.raises(ApiError, match="until must be later than since"):
        HeldQuery(since="2025-11-25T11:00:00Z", until="2025-11-25T10:00:00Z").to_filter()


def test_held_query_refuses_unknown_fields_and_lone_surrogates() -> None:
    with pytest.raises(ValueError, match="extra"):
        HeldQuery.model_validate({"rules": "x"})
    with pytest.raises(ValueError, match=r"(?i)unicode"):
        HeldQuery.model_validate({"q": "\ud800"})


def test_iso_round_trips_to_the_microsecond() -> None:
    assert iso(1_764_064_800_123_456_789) == "2025-11-25T10:00:00.123457Z"
    assert parse_time_ns(iso(1_764_064_800 * 10**9), "since") == 1_764_064_800 * 10**9


def test_keys_split_on_the_last_colon() -> None:
    assert parse_key("dev-a:3") == ("dev-a", 3)
    assert parse_key("host:8080:12") == ("host:8080", 12)
    for bad in ("dev-a", "dev-a:", ":3", "dev-a:0", "dev-a:x"):
        with pytest.raises(UsageError, match="SOURCE:SEQ"):
            parse_key(bad)
