"""The collector's Search page: an FTS5 query over messages with source and level filters, paged results
(newest first), and an item's detail — the same ``RecordStore.search`` that ``GET /api/records/search``
answers from.

Indexing trails storage, so the page says how many stored records are not searchable yet. An invalid query
shows the store's explanation and how to quote. Paging reads one row more than a page to know whether a
next page exists (a search has no cheap total). This page reads only; it must never change a store.
"""

from __future__ import annotations

from typing import Any

from nicegui import events, ui

from logferry.api.launch import CollectorView
from logferry.api.routes_status import _source_counts as source_counts  # the one per-source listing
from logferry.console.layout import PAGE_SIZE, frame, level_name, level_options, pager_text, when
from logferry.model import Level
from logferry.store.records import SearchQueryError, StoredRecord

COLUMNS: list[dict[str, Any]] = [
    {"name": "ts", "label": "Time (UTC)", "field": "ts", "align": "left"},
    {"name": "key", "label": "Record", "field": "key", "align": "left"},
    {"name": "level", "label": "Level", "field": "level", "align": "left"},
    {"name": "host", "label": "Host", "field": "host", "align": "left"},
    {"name": "msg", "label": "Message", "field": "msg", "align": "left",
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
    fields = ", ".join(f"{k}={v}" for k, v in sorted(r.fields.items())) or "none"
    return [
        ("Record", f"{found.source}:{r.seq}"), ("Time (UTC)", when(r.ts_ns)), ("Level", level_name(r.level)),
        ("Host", r.host), ("Path", r.path), ("Via relay", found.relay),
        ("Received at (UTC)", when(found.received_ns)), ("Fields", fields), ("Digest", r.digest.hex()),
        ("Message", r.msg),
    ]  # fmt: skip


class SearchPage:
    def __init__(self, view: CollectorView) -> None:
        self.view = view
        self.offset = 0
        self.found: dict[str, StoredRecord] = {}

    async def build(self) -> None:
        sources = [s for s, _n, _m in await source_counts(self.view.store)]
        with frame("Search"):
            with ui.row().classes("items-end gap-3 flex-wrap"):
                self.q = (
                    ui.input("Full-text query", placeholder='words, "a phrase", prefix*, AND / OR / NOT')
                    .classes("w-96")
                    .mark("search-q")
                )
                self.q.on("keydown.enter", self.search)
                self.source = ui.select(
                    {"": "any source"} | {s: s for s in sources}, value="", label="Source"
                )
                self.source.classes("w-48").mark("search-source")
                self.level = ui.select(level_options(), value="", label="Level")
                self.level.classes("w-44").mark("search-level")
                ui.button("Search", icon="search", on_click=self.search).mark("search-go")
            self.problem = ui.label("").classes("text-red-700").mark("search-problem")
            self.table = ui.table(columns=COLUMNS, rows=[], row_key="key", pagination=0).classes("w-full")
            self.table.props("hide-bottom dense").mark("search-table")
            self.table.on("rowClick", self.on_row_click)
            with ui.row().classes("items-center gap-2"):
                self.previous = (
                    ui.button("Previous", on_click=self.page_back).props("flat").mark("search-previous")
                )
                self.span = ui.label("").mark("search-span")
                self.next = ui.button("Next", on_click=self.page_on).props("flat").mark("search-next")
                self.pending = ui.label("").classes("text-sm opacity-60").mark("search-pending")
        await self.refresh()

    async def refresh(self) -> None:
        level = str(self.level.value or "")
        try:
            found = await self.view.store.search(
                str(self.q.value or "").strip(),
                PAGE_SIZE + 1,
                self.offset,
                source=str(self.source.value or "") or None,
                level_max=int(Level.parse(level)) if level else None,
            )
        except SearchQueryError as exc:
            self.problem.set_text(f'{exc}. Quote words with special characters: "user=kim".')
            found = []
        else:
            self.problem.set_text("")
        more, page = len(found) > PAGE_SIZE, found[:PAGE_SIZE]
        rows = [row(f) for f in page]
        self.found = {r["key"]: f for r, f in zip(rows, page, strict=True)}
        self.table.rows = rows
        self.table.update()
        self.span.set_text(pager_text(self.offset, len(rows), None if more or self.offset else len(rows)))
        self.previous.set_enabled(self.offset > 0)
        self.next.set_enabled(more)
        pending = (await self.view.store.stats()).fts_pending
        trailing = f"not searchable yet: {pending:,} stored (indexing trails storage)"
        self.pending.set_text(trailing if pending else "")

    async def search(self) -> None:
        self.offset = 0
        await self.refresh()

    async def page_back(self) -> None:
        self.offset = max(0, self.offset - PAGE_SIZE)
        await self.refresh()

    async def page_on(self) -> None:
        self.offset += PAGE_SIZE
        await self.refresh()

    def on_row_click(self, event: events.GenericEventArguments) -> None:
        args = event.args if isinstance(event.args, list) else []
        clicked = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
        found = self.found.get(str(clicked.get("key", "")))
        if found is None:
            return
        with ui.dialog() as dialog, ui.card().classes("min-w-[36rem] max-w-4xl"):
            ui.label("Stored record").classes("text-lg font-semibold")
            with ui.grid(columns="auto 1fr").classes("gap-x-4 gap-y-1").mark("search-detail"):
                for label, value in detail_lines(found):
                    ui.label(label).classes("text-sm opacity-60")
                    ui.label(value).classes("text-sm break-all whitespace-pre-wrap")
            ui.button("Close", on_click=dialog.close).props("flat").classes("self-end")
        dialog.open()


async def build(view: CollectorView) -> None:
    await SearchPage(view).build()
