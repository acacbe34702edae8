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
from logferry.console.layout import PAGE_SIZE, frame, pager_text, stat, when

NS = 1_000_000_000
INTERVALS_S = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}
SPARKS = "▁▂▃▄▅▆▇█"
ALERTS_SHOWN = 20


def sparkline(counts: list[int]) -> str:
    """A trend in one line of text: one block per hour, the highest hour full."""
    top = max(counts, default=0)
    if top == 0:
        return SPARKS[0] * len(counts)
    return "".join(SPARKS[min(len(SPARKS) - 1, n * len(SPARKS) // (top + 1))] if n else " " for n in counts)


def template_columns() -> list[dict[str, Any]]:
    return [
        {"name": "template", "label": t("Template"), "field": "template", "align": "left",
         "classes": "max-w-xl truncate font-mono text-xs", "headerClasses": "max-w-xl"},
        {"name": "count", "label": t("Records"), "field": "count", "align": "right"},
        {"name": "share", "label": t("Share"), "field": "share", "align": "right"},
        {"name": "first", "label": t("First seen (UTC)"), "field": "first", "align": "left"},
        {"name": "last", "label": t("Last seen (UTC)"), "field": "last", "align": "left"},
        {"name": "trend", "label": t("Trend (24 h)"), "field": "trend", "align": "left",
         "classes": "font-mono"},
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
    }  # fmt: skip


def rate_chart(series: list[aq.RateSeries]) -> dict[str, Any]:
    """ECharts options: the error rate (%) of each source, one line per source, over time (UTC)."""
    return {
        "animation": False,
        "grid": {"left": 50, "right": 16, "top": 30, "bottom": 40},
        "tooltip": {"trigger": "axis"},
        "legend": {"type": "scroll"},
        "xAxis": {"type": "time"},
        "yAxis": {"type": "value", "name": "%", "min": 0},
        "series": [
            {"type": "line", "name": s.source, "showSymbol": False,
             "data": [[p.start_s * 1000, round(100 * p.errors / max(1, p.total), 2)] for p in s.points]}
            for s in series
        ],
    }  # fmt: skip


class AnalysisPage:
    def __init__(self, view: CollectorView, follower: Follower) -> None:
        self.view = view
        self.follower = follower
        self.offset = 0

    async def build(self) -> None:
        with ui.row().classes("gap-3 flex-wrap"):
            self.mined = stat(t("Records mined"), "analysis-mined")
            self.lag = stat(t("Not mined yet"), "analysis-lag")
            self.templates_n = stat(t("Templates"), "analysis-templates")
            self.alerts_n = stat(t("Alerts"), "analysis-alerts")
        with ui.row().classes("items-end gap-3"):
            self.interval = ui.select({k: t("last {interval}", interval=k) for k in INTERVALS_S}, value="1h",
                                      label=t("Interval (up to the newest record)"))  # fmt: skip
            self.interval.classes("w-64").mark("analysis-interval").on_value_change(self.refresh)
            ui.button(t("Refresh"), icon="refresh", on_click=self.refresh).mark("analysis-refresh")
        ui.label(t("Alerts")).classes("text-lg font-semibold")
        self.alerts = ui.table(columns=alert_columns(), rows=[], row_key="id", pagination=0).classes("w-full")
        self.alerts.props("hide-bottom dense").mark("analysis-alert-table")
        ui.label(t("New templates in the interval")).classes("text-lg font-semibold")
        self.new = ui.table(columns=template_columns(), rows=[], row_key="id", pagination=0).classes("w-full")
        self.new.props("hide-bottom dense").mark("analysis-new-table")
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
        with ui.row().classes("items-center gap-2"):
            self.previous = ui.button(t("Previous"), on_click=self.page_back).props("flat")
            self.previous.mark("analysis-previous")
            self.span = ui.label("").mark("analysis-span")
            self.next = ui.button(t("Next"), on_click=self.page_on).props("flat").mark("analysis-next")
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
        width = self.follower.settings.window_s
        series = await store.read_with(lambda c: aq.error_rates(c, since, until, width))
        self.chart.options.clear()
        self.chart.options.update(rate_chart(series))
        self.chart.update()
        text = str(self.q.value or "").strip()
        page = await store.read_with(lambda c: aq.templates(c, since, until, text, PAGE_SIZE, self.offset))
        self.table.rows = [template_row(r) for r in page.items]
        self.table.update()
        self.span.set_text(pager_text(self.offset, len(page.items), page.total))
        self.previous.set_enabled(self.offset > 0)
        self.next.set_enabled(self.offset + len(page.items) < page.total)

    async def search(self) -> None:
        self.offset = 0
        await self.refresh()

    async def page_back(self) -> None:
        self.offset = max(0, self.offset - PAGE_SIZE)
        await self.refresh()

    async def page_on(self) -> None:
        self.offset += PAGE_SIZE
        await self.refresh()


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
        "Share": "비율",
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
        "Previous": "이전",
        "Next": "다음",
        "new template": "새 템플릿",
        "error rate": "오류율",
        "Analysis": "분석",
        "Analysis is off on this collector (analysis_enabled = false).": (
            "이 컬렉터에서 분석이 꺼져 있습니다 (analysis_enabled = false)."
        ),
    },
)
