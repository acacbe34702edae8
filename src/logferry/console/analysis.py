"""The collector's Analysis page: alerts, message templates new in the last interval, every template with
its count, share, first and last seen and a 24-hour trend, and the error rate of each source over time.

Everything comes from ``analysis.db`` through ``logferry.analysis.queries`` — the reads behind
``GET /api/analysis/…``. Intervals are counted back from the newest record mined, not from the wall clock,
so a store of yesterday's logs still shows its last hour. Analysis trails storage: the page says how many
stored records are not mined yet. This page reads only; it must never change a store.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from logferry.analysis import queries as aq
from logferry.analysis.alerts import AlertKind
from logferry.analysis.follower import Follower
from logferry.api.launch import CollectorView
from logferry.console.i18n import register, t
from logferry.console.layout import PAGE_SIZE, Pager, frame, stat, when

NS = 1_000_000_000
INTERVALS_S = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}
SPARKS = "▁▂▃▄▅▆▇█"
ALERTS_SHOWN = 20
# The trend is text, one block per hour; an hour without records is a faint baseline, so the hours with
# records stand out. Its title says the counts. Text costs next to nothing per row, where a chart per row
# would be 50 charts.
TREND_SLOT = r"""
<q-td :props="props">
  <span class="font-mono whitespace-nowrap" :title="props.row.trend_title"><span
    v-for="(c, i) in props.value" :key="i"
    :style="{color: c === '▁' ? '#cbd5e1' : '#334155'}">{{ c }}</span></span>
</q-td>
"""

# A long template (or alert) stays one cut line, so rows stay compact; hovering it shows the whole text,
# wrapped. The tooltip is only built on hover, so 50 rows cost 50 text cells, not 50 popups.
FULL_TEXT_SLOT = r"""
<q-td :props="props">{{ props.value }}<q-tooltip max-width="40rem" :delay="300"
  class="text-xs whitespace-pre-wrap break-words {tooltip_classes}">{{ props.value }}</q-tooltip></q-td>
"""


def full_text_slot(tooltip_classes: str = "") -> str:
    """A table body-cell slot: the cell's value cut to one line (the column's classes), whole on hover."""
    return FULL_TEXT_SLOT.replace("{tooltip_classes}", tooltip_classes)


def sparkline(counts: list[int]) -> str:
    """A trend in one line of text, scaled per template: an hour without records is the lowest block (a
    baseline), any hour with records at least the second, the busiest hour full."""
    top = max(counts, default=0)
    if top == 0:
        return SPARKS[0] * len(counts)
    steps = len(SPARKS) - 2  # 1..top → blocks 1..7
    return "".join(SPARKS[1 + n * steps // top] if n else SPARKS[0] for n in counts)


def trend_title(counts: list[int]) -> str:
    """The hover text of a trend: the records of each hour, oldest first."""
    return t("records per hour, the last {hours} h: {counts}", hours=len(counts),
             counts=" ".join(f"{n:,}" for n in counts))  # fmt: skip


def template_columns() -> list[dict[str, Any]]:
    return [
        {"name": "template", "label": t("Template"), "field": "template", "align": "left",
         "classes": "max-w-md truncate font-mono text-xs", "headerClasses": "max-w-md"},
        {"name": "count", "label": t("Records"), "field": "count", "align": "right"},
        {"name": "share", "label": t("Share of the interval"), "field": "share", "align": "right"},
        {"name": "first", "label": t("First seen (UTC)"), "field": "first", "align": "left"},
        {"name": "last", "label": t("Last seen (UTC)"), "field": "last", "align": "left"},
        {"name": "trend", "label": t("Trend (24 h)"), "field": "trend", "align": "left"},
    ]  # fmt: skip


def alert_columns() -> list[dict[str, Any]]:
    return [
        {"name": "window", "label": t("When (UTC)"), "field": "window", "align": "left"},
        {"name": "kind", "label": t("Kind"), "field": "kind", "align": "left"},
        {"name": "source", "label": t("Source"), "field": "source", "align": "left"},
        {"name": "detail", "label": t("What"), "field": "detail", "align": "left",
         "classes": "max-w-2xl truncate", "headerClasses": "max-w-2xl"},
    ]  # fmt: skip


def template_row(r: aq.TemplateRow) -> dict[str, Any]:
    return {
        "id": r.id, "template": r.template, "count": f"{r.count:,}", "share": f"{r.share:.1%}",
        "first": when(r.first_ns), "last": when(r.last_ns), "trend": sparkline(r.trend),
        "trend_title": trend_title(r.trend),
    }  # fmt: skip


def x_range_ms(series: list[aq.RateSeries]) -> dict[str, int]:
    """The time axis around the data: from its first step to the end of its last, a step of margin each
    side (ECharts alone spreads one point over days of empty axis). {} without data."""
    starts = [p.start_s for s in series for p in s.points]
    if not starts:
        return {}
    step = max(s.step_s for s in series)
    return {"min": (min(starts) - step) * 1000, "max": (max(starts) + 2 * step) * 1000}


def rate_chart(series: list[aq.RateSeries]) -> dict[str, Any]:
    """ECharts options: the error rate (%) of each source, one line per source, over time (UTC). Every
    window is a point, so a source with a single window still shows."""
    return {
        "animation": False,
        "grid": {"left": 50, "right": 24, "top": 40, "bottom": 30},
        "tooltip": {"trigger": "axis"},
        "legend": {"type": "scroll", "top": 0},
        "xAxis": {"type": "time", **x_range_ms(series)},
        "yAxis": {"type": "value", "name": "%", "min": 0},
        "series": [
            {"type": "line", "name": s.source, "showSymbol": True, "symbolSize": 6, "connectNulls": False,
             "data": [[p.start_s * 1000, round(100 * p.errors / max(1, p.total), 2)] for p in s.points]}
            for s in series
        ],
    }  # fmt: skip


class AnalysisPage:
    def __init__(self, view: CollectorView, follower: Follower) -> None:
        self.view = view
        self.follower = follower

    async def build(self) -> None:
        with ui.row().classes("gap-3 flex-wrap"):
            self.mined = stat(t("Records mined"), "analysis-mined")
            self.lag = stat(t("Not mined yet"), "analysis-lag")
            self.templates_n = stat(t("Templates"), "analysis-templates")
            self.alerts_n = stat(t("Alerts"), "analysis-alerts")
        with ui.row().classes("items-end gap-3"):
            self.interval = ui.select({k: t("last {interval}", interval=k) for k in INTERVALS_S}, value="1h",
                                      label=t("Interval (up to the newest record)"))  # fmt: skip
            self.interval.classes("w-64").mark("analysis-interval").on_value_change(self.search)
            ui.button(t("Refresh"), icon="refresh", on_click=self.refresh).mark("analysis-refresh")
        ui.label(t("Alerts")).classes("text-lg font-semibold")
        self.alerts = ui.table(columns=alert_columns(), rows=[], row_key="id", pagination=0).classes("w-full")
        self.alerts.props("hide-bottom dense").mark("analysis-alert-table")
        self.alerts.add_slot("body-cell-detail", full_text_slot())
        ui.label(t("New templates in the interval")).classes("text-lg font-semibold")
        self.new = ui.table(columns=template_columns(), rows=[], row_key="id", pagination=0).classes("w-full")
        self.new.props("hide-bottom dense").mark("analysis-new-table")
        self.new.add_slot("body-cell-trend", TREND_SLOT)
        self.new.add_slot("body-cell-template", full_text_slot("font-mono"))
        ui.label(t("Error rate per source")).classes("text-lg font-semibold")
        self.chart = ui.echart(rate_chart([])).classes("w-full h-64").mark("analysis-rates")
        ui.label(t("Templates in the interval")).classes("text-lg font-semibold")
        with ui.row().classes("items-end gap-3"):
            self.q = ui.input(t("Part of the template")).classes("w-72").mark("analysis-q")
            self.q.on("keydown.enter", self.search)
            ui.button(t("Search"), icon="search", on_click=self.search).mark("analysis-go")
        self.table = ui.table(columns=template_columns(), rows=[], row_key="id", pagination=0).classes(
            "w-full"
        )
        self.table.props("hide-bottom dense").mark("analysis-template-table")
        self.table.add_slot("body-cell-trend", TREND_SLOT)
        self.table.add_slot("body-cell-template", full_text_slot("font-mono"))
        self.pager = Pager(self.refresh, "analysis")
        await self.refresh()

    async def refresh(self) -> None:
        store = self.follower.store
        status = await store.read_with(aq.status)
        self.mined.set_text(f"{status.mined:,}")
        self.lag.set_text(f"{await self.follower.lag():,}")
        self.templates_n.set_text(f"{status.templates:,}")
        self.alerts_n.set_text(f"{sum(status.alerts.values()):,}")
        newest = await store.read_with(aq.newest_record_ns)
        until = (newest or 0) + 1
        since = until - INTERVALS_S.get(str(self.interval.value), 3600) * NS
        alerts, _total = await store.read_with(lambda c: aq.alerts(c, None, None, ALERTS_SHOWN, 0))
        self.alerts.rows = [
            {"id": a.id, "window": when(a.window_s * NS), "detail": a.detail, "source": a.source,
             "kind": t("new template") if a.kind is AlertKind.NEW_TEMPLATE else t("error rate")}
            for a in alerts
        ]  # fmt: skip
        self.alerts.update()
        fresh = await store.read_with(lambda c: aq.new_templates(c, since, PAGE_SIZE))
        self.new.rows = [template_row(r) for r in fresh]
        self.new.update()
        series = await self.rates(since, until)
        self.chart.options.clear()
        self.chart.options.update(rate_chart(series))
        self.chart.update()
        text = str(self.q.value or "").strip()
        offset = self.pager.offset
        page = await store.read_with(lambda c: aq.templates(c, since, until, text, PAGE_SIZE, offset))
        self.table.rows = [template_row(r) for r in page.items]
        self.table.update()
        self.pager.show(len(page.items), page.total)

    async def search(self) -> None:
        await self.pager.first()

    async def rates(self, since: int, until: int) -> list[aq.RateSeries]:
        """The error rates over the interval; when the records fill only a small part of it (minutes of a
        day), read again over that part, so its windows are not summed into a handful of wide steps."""
        width = self.follower.settings.window_s
        store = self.follower.store
        series = await store.read_with(lambda c: aq.error_rates(c, since, until, width))
        starts = [p.start_s for s in series for p in s.points]
        if not starts:
            return series
        step = max(s.step_s for s in series)
        lo, hi = max(since, min(starts) * NS), min(until, (max(starts) + step) * NS)
        if step == width or (hi - lo) * 2 > until - since:
            return series  # already at the finest step, or the data spans most of the interval
        return await store.read_with(lambda c: aq.error_rates(c, lo, hi, width))


async def build(view: CollectorView) -> None:
    with frame(t("Analysis")):
        if view.analysis is None:
            ui.label(t("Analysis is off on this collector (analysis_enabled = false).")).mark("analysis-off")
            return
        await AnalysisPage(view, view.analysis).build()


register(
    "ko",
    {
        "Template": "템플릿",
        "Records": "레코드 수",
        "Share of the interval": "기간 내 비율",
        "records per hour, the last {hours} h: {counts}": "시간당 레코드, 최근 {hours}시간: {counts}",
        "First seen (UTC)": "처음 발생 (UTC)",
        "Last seen (UTC)": "마지막 발생 (UTC)",
        "Trend (24 h)": "추세 (24시간)",
        "When (UTC)": "시각 (UTC)",
        "Kind": "종류",
        "Source": "소스",
        "What": "내용",
        "Records mined": "분석한 레코드",
        "Not mined yet": "아직 분석 안 됨",
        "Templates": "템플릿 수",
        "Alerts": "경보",
        "last {interval}": "최근 {interval}",
        "Interval (up to the newest record)": "기간 (최신 레코드 기준)",
        "Refresh": "새로 고침",
        "New templates in the interval": "기간 내 새 템플릿",
        "Error rate per source": "소스별 오류율",
        "Templates in the interval": "기간 내 템플릿",
        "Part of the template": "템플릿 일부",
        "Search": "검색",
        "new template": "새 템플릿",
        "error rate": "오류율",
        "Analysis": "분석",
        "Analysis is off on this collector (analysis_enabled = false).": (
            "이 컬렉터에서 분석이 꺼져 있습니다 (analysis_enabled = false)."
        ),
    },
)
