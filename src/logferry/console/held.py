"""The relay's Held page: a server-side paged table of held items with search and filters (rule, source,
level, text), an item's detail, and release or delete of the selected items or of all matching the filter.

Only one page of rows is ever read (``journal_held.page_items`` with LIMIT/OFFSET) and the total comes from
a COUNT, as ``GET /api/held`` does. Each action asks first in a dialog that says how many items it will
touch, then runs :func:`logferry.console.actions.settle_held` — audited like ``POST /api/held/release`` —
and refreshes the table. This page must never move a held item by any other path.
"""

from __future__ import annotations

from typing import Any

from nicegui import events, ui

from logferry.api.launch import RelayView
from logferry.console import actions
from logferry.console.actions import HeldVerb, HeldView, StaleKeys
from logferry.console.layout import (
    PAGE_SIZE,
    confirm,
    frame,
    level_name,
    level_options,
    pager_text,
    size,
    when,
)
from logferry.store.journal_files import FileItem
from logferry.store.journal_held import HeldItem, HeldKey

COLUMNS: list[dict[str, Any]] = [
    {"name": "ts", "label": "Time (UTC)", "field": "ts", "align": "left"},
    {"name": "key", "label": "Item", "field": "key", "align": "left"},
    {"name": "level", "label": "Level", "field": "level", "align": "left"},
    {"name": "rule", "label": "Rule", "field": "rule", "align": "left"},
    {"name": "host", "label": "Host", "field": "host", "align": "left"},
    {"name": "msg", "label": "Message / file", "field": "msg", "align": "left",
     "classes": "max-w-xl truncate", "headerClasses": "max-w-xl"},
]  # fmt: skip


def row(item: HeldItem) -> dict[str, Any]:
    """One table row; ``key`` (``source:seq``) identifies the item in selections and actions."""
    if isinstance(item, FileItem):
        return {
            "key": f"{item.source}:{item.seq}", "source": item.source, "seq": item.seq,
            "ts": when(item.mtime_ns), "level": "", "rule": item.rule, "host": "",
            "msg": f"file {item.path} ({size(item.size)})",
        }  # fmt: skip
    r = item.record
    return {
        "key": f"{item.source}:{r.seq}", "source": item.source, "seq": r.seq, "ts": when(r.ts_ns),
        "level": level_name(r.level), "rule": item.rule, "host": r.host, "msg": r.msg,
    }  # fmt: skip


def detail_lines(item: HeldItem) -> list[tuple[str, str]]:
    """What the detail dialog shows, as (label, value) pairs."""
    if isinstance(item, FileItem):
        return [
            ("Item", f"{item.source}:{item.seq} (a whole file)"), ("Path", item.path),
            ("Size", f"{item.size:,} bytes"), ("SHA-256", item.sha256.hex()),
            ("Modified (UTC)", when(item.mtime_ns)), ("Held by rule", item.rule),
            ("Held at (UTC)", when(item.received_ns)),
        ]  # fmt: skip
    r = item.record
    fields = ", ".join(f"{k}={v}" for k, v in sorted(r.fields.items())) or "none"
    return [
        ("Item", f"{item.source}:{r.seq}"), ("Time (UTC)", when(r.ts_ns)), ("Level", level_name(r.level)),
        ("Host", r.host), ("Path", r.path), ("Held by rule", item.rule),
        ("Held at (UTC)", when(item.held_ns)), ("Fields", fields), ("Digest", r.digest.hex()),
        ("Message", r.msg),
    ]  # fmt: skip


def _plural(n: int) -> str:
    return f"{n:,} held item" + ("" if n == 1 else "s")


class HeldPage:
    """The page's state (filter, offset, the rows shown) and its widgets."""

    def __init__(self, view: RelayView) -> None:
        self.view = view
        self.chosen = HeldView()
        self.offset = 0
        self.total = 0
        self.items: dict[str, HeldItem] = {}

    async def build(self) -> None:
        choices = await actions.held_choices(self.view)
        with frame("Held items"):
            with ui.row().classes("items-end gap-3 flex-wrap"):
                self.q = ui.input("Search message or path").classes("w-72").mark("held-q")
                self.q.on("keydown.enter", self.search)
                self.rule = ui.select(
                    {"": "any rule"} | {r: r for r in choices.rules}, value="", label="Rule"
                )
                self.rule.classes("w-48").mark("held-rule")
                self.source = ui.select(
                    {"": "any source"} | {s: s for s in choices.sources}, value="", label="Source"
                )
                self.source.classes("w-48").mark("held-source")
                self.level = ui.select(level_options(), value="", label="Level")
                self.level.classes("w-44").mark("held-level")
                ui.button("Search", icon="search", on_click=self.search).mark("held-search")
            with ui.row().classes("items-center gap-2 flex-wrap"):
                ui.button("Release selected", on_click=lambda: self.ask_selected(HeldVerb.RELEASE)).mark(
                    "release-selected"
                )
                ui.button(
                    "Delete selected", color="negative", on_click=lambda: self.ask_selected(HeldVerb.DELETE)
                ).mark("delete-selected")
                ui.button("Release all matching", on_click=lambda: self.ask_matching(HeldVerb.RELEASE)).props(
                    "outline"
                ).mark("release-matching")
                ui.button(
                    "Delete all matching",
                    color="negative",
                    on_click=lambda: self.ask_matching(HeldVerb.DELETE),
                ).props("outline").mark("delete-matching")
            self.table = ui.table(
                columns=COLUMNS, rows=[], row_key="key", selection="multiple", pagination=0
            ).classes("w-full")
            self.table.props("hide-bottom dense").mark("held-table")
            self.table.on("rowClick", self.on_row_click)
            with ui.row().classes("items-center gap-2"):
                self.previous = (
                    ui.button("Previous", on_click=self.page_back).props("flat").mark("held-previous")
                )
                self.span = ui.label("").mark("held-span")
                self.next = ui.button("Next", on_click=self.page_on).props("flat").mark("held-next")
        await self.refresh()

    async def refresh(self) -> None:
        items, self.total = await actions.held_page(self.view, self.chosen, PAGE_SIZE, self.offset)
        if not items and self.offset > 0 and self.total > 0:  # the page emptied under us: show the last one
            self.offset = max(0, (self.total - 1) // PAGE_SIZE * PAGE_SIZE)
            items, self.total = await actions.held_page(self.view, self.chosen, PAGE_SIZE, self.offset)
        rows = [row(i) for i in items]
        self.items = {r["key"]: i for r, i in zip(rows, items, strict=True)}
        self.table.rows = rows
        self.table.selected = []
        self.table.update()
        self.span.set_text(pager_text(self.offset, len(rows), self.total))
        self.previous.set_enabled(self.offset > 0)
        self.next.set_enabled(self.offset + len(rows) < self.total)

    async def search(self) -> None:
        self.chosen = HeldView(
            rule=str(self.rule.value or ""),
            source=str(self.source.value or ""),
            level=str(self.level.value or ""),
            q=str(self.q.value or "").strip(),
        )
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
        item = self.items.get(str(clicked.get("key", "")))
        if item is not None:
            self.show_detail(item)

    def show_detail(self, item: HeldItem) -> None:
        with ui.dialog() as dialog, ui.card().classes("min-w-[36rem] max-w-4xl"):
            ui.label("Held item").classes("text-lg font-semibold")
            with ui.grid(columns="auto 1fr").classes("gap-x-4 gap-y-1").mark("held-detail"):
                for label, value in detail_lines(item):
                    ui.label(label).classes("text-sm opacity-60")
                    ui.label(value).classes("text-sm break-all whitespace-pre-wrap")
            ui.button("Close", on_click=dialog.close).props("flat").classes("self-end")
        dialog.open()

    def selected_keys(self) -> list[HeldKey]:
        return [(str(r["source"]), int(r["seq"])) for r in self.table.selected]

    def ask_selected(self, verb: HeldVerb) -> None:
        keys = self.selected_keys()
        if not keys:
            ui.notify("Select items in the table first (or act on all matching the filter).")
            return
        confirm(
            f"{self._verb_text(verb)} {_plural(len(keys))}{self._where(verb)}?",
            verb.name.capitalize(),
            lambda: self.act(verb, keys),
            danger=verb is HeldVerb.DELETE,
        )

    async def ask_matching(self, verb: HeldVerb) -> None:
        chosen = self.chosen
        n = await actions.held_count(self.view, chosen)
        if n == 0:
            ui.notify("No held item matches the filter.")
            return
        what = "every held item" if chosen == HeldView() else "all matching the filter"
        confirm(
            f"{self._verb_text(verb)} {_plural(n)} ({what}){self._where(verb)}?",
            verb.name.capitalize(),
            lambda: self.act(verb, chosen),
            danger=verb is HeldVerb.DELETE,
        )

    @staticmethod
    def _verb_text(verb: HeldVerb) -> str:
        return "Release" if verb is HeldVerb.RELEASE else "Delete for good"

    @staticmethod
    def _where(verb: HeldVerb) -> str:
        return " to the collector" if verb is HeldVerb.RELEASE else ""

    async def act(self, verb: HeldVerb, target: HeldView | list[HeldKey]) -> None:
        try:
            n = await actions.settle_held(self.view, verb, target)
        except StaleKeys as exc:
            ui.notify(str(exc), type="warning", multi_line=True)
        else:
            done = "released to the collector" if verb is HeldVerb.RELEASE else "deleted"
            ui.notify(f"{_plural(n)} {done} (audited as operator console).", type="positive")
        await self.refresh()


async def build(view: RelayView) -> None:
    await HeldPage(view).build()
