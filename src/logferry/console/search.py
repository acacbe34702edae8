"""The collector's Search page: a full-text query with field filters (source, level, host, path) and a time
range (from/to, or the last 15 min, 1 h, 24 h, 7 d), a histogram of the matches over time, facets whose
values filter when clicked, and the matches newest first, a page at a time, each with its detail.

Every read is one of ``store/record_queries.py`` — the same SQL that ``GET /api/records/search``,
``/api/records/histogram`` and ``/api/records/facets`` answer from. Indexing trails storage, so the page says
how many stored records are not searchable yet; an invalid query shows the store's explanation. The chart
is NiceGUI's ECharts, served by this daemon like the rest of the console (no CDN). This page reads only; it
must never change a store.
"""

from __future__ import annotations

from typing import Any

from nicegui import events, ui

from logferry.api.launch import CollectorView
from logferry.api.problems import ApiError
from logferry.console.i18n import register, t
from logferry.console.layout import (
    PAGE_SIZE,
    Pager,
    clicked_row,
    detail_dialog,
    frame,
    level_name,
    level_options,
    when,
)
from logferry.console.time_range import TimeRange, problem_text
from logferry.model import Level
from logferry.store.record_queries import FACET_FIELDS, Facets, Histogram, RecordFilter, RecordQueries
from logferry.store.records import SearchQueryError, StoredRecord

NS = 1_000_000_000


def columns() -> list[dict[str, Any]]:
    return [
        {"name": "ts", "label": t("Time (UTC)"), "field": "ts", "align": "left"},
        {"name": "key", "label": t("Record"), "field": "key", "align": "left"},
        {"name": "level", "label": t("Level"), "field": "level", "align": "left"},
        {"name": "host", "label": t("Host"), "field": "host", "align": "left"},
        {"name": "msg", "label": t("Message"), "field": "msg", "align": "left",
         "classes": "max-w-2xl truncate", "headerClasses": "max-w-2xl"},
    ]  # fmt: skip


def row(found: StoredRecord) -> dict[str, Any]:
    r = found.record
    return {
        "key": f"{found.source}:{r.seq}", "ts": when(r.ts_ns), "level": level_name(r.level),
        "host": r.host, "msg": r.msg,
    }  # fmt: skip


def detail_lines(found: StoredRecord) -> list[tuple[str, str]]:
    r = found.record
    fields = ", ".join(f"{k}={v}" for k, v in sorted(r.fields.items())) or t("none")
    return [
        (t("Record"), f"{found.source}:{r.seq}"), (t("Time (UTC)"), when(r.ts_ns)),
        (t("Level"), level_name(r.level)), (t("Host"), r.host), (t("Path"), r.path),
        (t("Via relay"), found.relay), (t("Received at (UTC)"), when(found.received_ns)),
        (t("Fields"), fields), (t("Digest"), r.digest.hex()), (t("Message"), r.msg),
    ]  # fmt: skip


def bar_label(start_ns: int, width_s: int) -> str:
    """A bar's start as short as its width allows: ``10:00:05`` for seconds, ``11-25 10:00`` for minutes
    and hours, ``2026-11-25`` for days (a label that repeats on every bar says nothing)."""
    shown = when(start_ns)
    if width_s < 60:
        return shown[11:19]
    return shown[5:16] if width_s < 86_400 else shown[:10]


def chart_options(h: Histogram) -> dict[str, Any]:
    """ECharts options for the histogram: one bar per bucket, labelled by its start (UTC)."""
    return {
        "animation": False,
        "grid": {"left": 50, "right": 16, "top": 16, "bottom": 40},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": [bar_label(b.start_ns, h.width_s) for b in h.buckets]},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [{"type": "bar", "name": t("matches"), "data": [b.count for b in h.buckets],
                    "itemStyle": {"color": "#475569"}}],
    }  # fmt: skip


class SearchPage:
    def __init__(self, view: CollectorView) -> None:
        self.view = view
        self.queries = RecordQueries(view.store)
        self.found: dict[str, StoredRecord] = {}
        self.histogram = Histogram(0, 1, [], 0, False)
        self.generation = 0  # bumped by every refresh: late aggregates of an older search are dropped

    async def build(self) -> None:
        sources = [s.source for s in await self.view.store.source_counts()]
        with frame(t("Search")):
            with ui.row().classes("items-end gap-3 flex-wrap"):
                self.q = ui.input(
                    t("Full-text query"), placeholder=t('words, "a phrase", prefix*, AND / OR / NOT')
                )
                self.q.classes("w-96").mark("search-q").on("keydown.enter", self.search)
                self.source = ui.select(
                    {"": t("any source")} | {s: s for s in sources}, value="", label=t("Source")
                )
                self.source.classes("w-48").mark("search-source")
                self.level = ui.select(level_options(), value="", label=t("Level")).classes("w-44")
                self.level.mark("search-level")
                self.host = ui.input(t("Host")).classes("w-36").mark("search-host")
                self.path = ui.input(t("Path")).classes("w-48").mark("search-path")
            with ui.row().classes("items-end gap-3 flex-wrap"):
                self.time = TimeRange("search", self.search, quick_marker="search-range")
                ui.button(t("Search"), icon="search", on_click=self.search).mark("search-go")
                ui.button(t("Clear filters"), on_click=self.clear).props("flat").mark("search-clear")
            self.problem = ui.label("").classes("text-red-700").mark("search-problem")
            with ui.row().classes("w-full gap-4 no-wrap items-start"):
                with ui.column().classes("grow gap-2"):
                    # the chart is made with the first histogram, after the first rows are on screen: its
                    # script (ECharts, ~1.7 MB) then loads while the operator already reads results
                    self.chart_box = ui.element("div").classes("w-full h-48")
                    self.chart: ui.echart | None = None
                    self.chart_note = ui.label("").classes("text-xs opacity-60").mark("search-histogram-note")
                    self.table = ui.table(columns=columns(), rows=[], row_key="key", pagination=0)
                    self.table.classes("w-full").props("hide-bottom dense").mark("search-table")
                    self.table.on("rowClick", self.on_row_click)
                    self.pager = Pager(self.refresh, "search")
                    with self.pager.row:
                        self.pending = ui.label("").classes("text-sm opacity-60").mark("search-pending")
                self.facet_box = ui.column().classes("w-72 gap-2").mark("search-facets")
        # the page goes out with its first rows; the histogram and facets follow over the websocket
        self.generation += 1
        f = await self.refresh_rows()
        if f is not None:
            generation = self.generation
            ui.timer(0.01, lambda: self.refresh_aggregates(f, generation), once=True)

    def record_filter(self) -> RecordFilter:
        """The filter the inputs describe; raises ApiError naming a time it cannot read."""
        level = str(self.level.value or "")
        since, until_ns = self.time.bounds()
        return RecordFilter(
            text=str(self.q.value or "").strip(), source=str(self.source.value or "") or None,
            level_max=int(Level.parse(level)) if level else None,
            host=str(self.host.value or "").strip() or None,
            path=str(self.path.value or "").strip() or None, ts_min_ns=since, ts_max_ns=until_ns,
        )  # fmt: skip

    async def refresh(self) -> None:
        """The table first, then the histogram and facets: on a big store those take longer than the page
        of rows (they count up to the newest 100k matches), and the operator should not wait for them."""
        self.generation += 1
        f = await self.refresh_rows()
        if f is not None:
            await self.refresh_aggregates(f, self.generation)

    async def refresh_rows(self) -> RecordFilter | None:
        """Search, fill the table and the pager; the filter used, or None when the query was refused."""
        found: list[StoredRecord] = []
        f: RecordFilter | None = None
        try:
            f = self.record_filter()
            found = await self.queries.search(f, PAGE_SIZE + 1, self.pager.offset)
        except SearchQueryError as exc:
            self.problem.set_text(
                t('{error}. Quote words with special characters: "user=kim".', error=str(exc))
            )
            f = None
        except ApiError as exc:
            self.problem.set_text(problem_text(exc))
            f = None
        else:
            self.problem.set_text("")
        if f is None:
            self.histogram = Histogram(0, 1, [], 0, False)
            self.show_histogram()
            self.show_facets(Facets())
        more, page = len(found) > PAGE_SIZE, found[:PAGE_SIZE]
        rows = [row(r) for r in page]
        self.found = {r["key"]: found_record for r, found_record in zip(rows, page, strict=True)}
        self.table.rows = rows
        self.table.update()
        # one row more than a page says whether Next may go, without a COUNT over every match
        offset = self.pager.offset
        self.pager.show(len(rows), None if more or offset else len(rows), more=more)
        pending = (await self.view.store.stats()).fts_pending
        trailing = t("not searchable yet: {n} stored (indexing trails storage)", n=f"{pending:,}")
        self.pending.set_text(trailing if pending else "")
        return f

    async def refresh_aggregates(self, f: RecordFilter, generation: int) -> None:
        """Histogram and facets for ``f``, unless a newer search started meanwhile (its own will come)."""
        try:
            histogram = await self.queries.histogram(f)
            facets = await self.queries.facets(f)
        except SearchQueryError:
            return  # refresh_rows already said why
        if generation != self.generation:
            return
        self.histogram = histogram
        self.show_histogram()
        self.show_facets(facets)

    def show_histogram(self) -> None:
        h = self.histogram
        if self.chart is None:
            with self.chart_box:
                self.chart = ui.echart(chart_options(h)).classes("w-full h-48")
                self.chart.mark("search-histogram").on_point_click(self.zoom)
        else:
            self.chart.options.clear()
            self.chart.options.update(chart_options(h))
            self.chart.update()
        note = t("{total} matches, {width} s per bar", total=f"{h.total:,}", width=h.width_s)
        if h.partial:
            note += " · " + t("counted the newest {total} only; older bars are low", total=f"{h.total:,}")
        self.chart_note.set_text(note if h.buckets else "")

    def show_facets(self, facets: Facets) -> None:
        titles = {"source": t("Source"), "level": t("Level"), "host": t("Host"), "path": t("Path")}
        self.facet_box.clear()
        with self.facet_box:
            for name in FACET_FIELDS:
                values = facets.fields.get(name, [])
                with ui.card().classes("w-full p-2 gap-1"):
                    ui.label(titles[name]).classes("text-xs uppercase opacity-60")
                    for v in values:
                        # a level is picked by its English name (the filter's key), shown translated
                        value = _level_key(v.value) if isinstance(v.value, int) else v.value
                        shown = level_name(v.value) if isinstance(v.value, int) else v.value
                        with ui.row().classes("w-full justify-between no-wrap gap-2"):
                            link = ui.link(shown or t("(empty)")).classes("truncate cursor-pointer")
                            link.mark(f"facet-{name}-{value}").on(
                                "click", lambda n=name, s=value: self.pick(n, s)
                            )
                            ui.label(f"{v.count:,}").classes("text-xs opacity-70")
            if facets.partial:
                ui.label(t("counts cover the newest {n} matches", n=f"{facets.scanned:,}")).classes("text-xs")

    async def pick(self, name: str, value: str) -> None:
        """A facet value was clicked: filter by it."""
        if name == "source":
            self.source.set_options({"": t("any source")} | dict(self.source.options) | {value: value})
            self.source.value = value
        elif name == "level":
            self.level.value = value
        elif name == "host":
            self.host.value = value
        else:
            self.path.value = value
        await self.search()

    async def zoom(self, event: events.EChartPointClickEventArguments) -> None:
        """A histogram bar was clicked: search that bar's time span."""
        h = self.histogram
        if not 0 <= event.data_index < len(h.buckets):
            return
        start = h.buckets[event.data_index].start_ns
        self.time.show_span(when(start).replace(" ", "T"), when(start + h.width_s * NS).replace(" ", "T"))
        await self.search()

    async def clear(self) -> None:
        for box in (self.q, self.host, self.path):
            box.value = ""
        self.source.value = self.level.value = ""
        self.time.clear()
        await self.search()

    async def search(self) -> None:
        await self.pager.first()

    def on_row_click(self, event: events.GenericEventArguments) -> None:
        found = self.found.get(str(clicked_row(event).get("key", "")))
        if found is not None:
            detail_dialog(t("Stored record"), detail_lines(found), "search-detail")


def _level_key(level: int) -> str:
    try:
        return Level(level).name.lower()
    except ValueError:
        return str(level)


async def build(view: CollectorView) -> None:
    await SearchPage(view).build()


register(
    "ko",
    {
        "Time (UTC)": "시각 (UTC)",
        "Record": "레코드",
        "Level": "수준",
        "Host": "호스트",
        "Message": "메시지",
        "none": "없음",
        "Path": "경로",
        "Via relay": "경유 릴레이",
        "Received at (UTC)": "수신 시각 (UTC)",
        "Fields": "필드",
        "Digest": "다이제스트",
        "matches": "일치",
        "Search": "검색",
        "Full-text query": "전문 검색어",
        'words, "a phrase", prefix*, AND / OR / NOT': '단어, "구문", 접두사*, AND / OR / NOT',
        "any source": "모든 소스",
        "Source": "소스",
        "Clear filters": "필터 지우기",
        '{error}. Quote words with special characters: "user=kim".': (
            '{error}. 특수 문자가 있는 단어는 따옴표로 묶으세요: "user=kim".'
        ),
        "not searchable yet: {n} stored (indexing trails storage)": (
            "아직 검색 불가: {n}건 저장됨 (색인이 저장보다 늦음)"
        ),
        "{total} matches, {width} s per bar": "{total}건 일치, 막대당 {width}초",
        "counted the newest {total} only; older bars are low": (
            "최신 {total}건만 셈; 이전 막대는 실제보다 낮음"
        ),
        "(empty)": "(비어 있음)",
        "counts cover the newest {n} matches": "최신 {n}건 기준 집계",
        "Stored record": "저장된 레코드",
    },
)
