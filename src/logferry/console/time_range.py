"""The time filter the Held, Audit and Search pages share: a quick range (the last 15 minutes … 30 days) or
from/to in UTC (ISO 8601 or epoch seconds), read into epoch nanoseconds.

Times are parsed by the REST API's own ``parse_time_ns``, so a time the console takes is one the API takes
and a bad one gets the same explanation. A quick range counts back from the wall clock when the operator
searches. This module only reads its inputs; it must never read or change a store.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from nicegui import ui

from logferry.api.params import parse_time_ns
from logferry.api.problems import ApiError
from logferry.console.i18n import register, t

NS = 1_000_000_000
QUICK_RANGES_S = {"15m": 900, "1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
TIME_HINT = "use 2026-11-25T10:00:00 (UTC) or epoch seconds"


def quick_label(key: str) -> str:
    """A quick range as the select shows it (the literals are here so the i18n test sees each one)."""
    labels = {"15m": t("last 15 minutes"), "1h": t("last hour"), "24h": t("last 24 hours"),
              "7d": t("last 7 days"), "30d": t("last 30 days")}  # fmt: skip
    return labels[key]


class TimeRange:
    """The three inputs: a quick range, from and to. Marked ``{marker}-quick`` (or ``quick_marker``),
    ``{marker}-since`` and ``{marker}-until``; Enter in from/to and a new quick range call ``on_search``."""

    def __init__(
        self,
        marker: str,
        on_search: Callable[[], Awaitable[None]],
        quick: tuple[str, ...] = ("15m", "1h", "24h", "7d"),
        quick_marker: str | None = None,
    ) -> None:
        options = {"": t("any time")} | {k: quick_label(k) for k in quick}
        self.quick = ui.select(options, value="", label=t("Time")).classes("w-44")
        self.quick.mark(quick_marker or f"{marker}-quick").on_value_change(on_search)
        self.since = ui.input(t("From (UTC)"), placeholder="2026-11-25T10:00:00").classes("w-52")
        self.since.mark(f"{marker}-since").on("keydown.enter", on_search)
        self.until = ui.input(t("To (UTC)"), placeholder="2026-11-25T12:00:00").classes("w-52")
        self.until.mark(f"{marker}-until").on("keydown.enter", on_search)

    def bounds(self) -> tuple[int | None, int | None]:
        """(since, until) in epoch ns, None for no bound; raises ApiError naming a time it cannot read."""
        quick = str(self.quick.value or "")
        if quick in QUICK_RANGES_S:
            return time.time_ns() - QUICK_RANGES_S[quick] * NS, None
        since = parse_time_ns(str(self.since.value or ""), t("From (UTC)"))
        until = parse_time_ns(str(self.until.value or ""), t("To (UTC)"))
        if since is not None and until is not None and until <= since:
            raise ApiError(400, t("'To' must be later than 'From'"), TIME_HINT)
        return since, until

    def asked(self) -> tuple[int | None, int | None] | None:
        """:meth:`bounds`, or None once the operator was told (a notification) what is wrong with a time."""
        try:
            return self.bounds()
        except ApiError as exc:
            ui.notify(problem_text(exc), type="warning")
            return None

    def show_span(self, since: str, until: str) -> None:
        """Put an explicit from/to in place of the quick range (a zoom into a histogram bar)."""
        self.quick.value = ""
        self.since.value, self.until.value = since, until

    def clear(self) -> None:
        self.quick.value = self.since.value = self.until.value = ""


def problem_text(exc: ApiError) -> str:
    """What a bad time says on the page: the API's message and how to write a time."""
    return t("{error}: use 2026-11-25T10:00:00 (UTC) or epoch seconds", error=exc.message)


register(
    "ko",
    {
        "any time": "전체 기간",
        "last 15 minutes": "최근 15분",
        "last hour": "최근 1시간",
        "last 24 hours": "최근 24시간",
        "last 7 days": "최근 7일",
        "last 30 days": "최근 30일",
        "Time": "기간",
        "From (UTC)": "시작 (UTC)",
        "To (UTC)": "끝 (UTC)",
        "'To' must be later than 'From'": "'끝'은 '시작'보다 늦어야 합니다",
        "{error}: use 2026-11-25T10:00:00 (UTC) or epoch seconds":
            "{error}: 2026-11-25T10:00:00 (UTC) 또는 epoch 초를 쓰세요",
    },
)  # fmt: skip
