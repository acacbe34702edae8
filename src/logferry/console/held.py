"""The relay's Held page: a server-side paged table of held items with search and filters (rule, source,
level, text, time: from/to or a quick range), an item's detail, and release or delete of the selected items
or of all matching the filter.

Only one page of rows is ever read (``journal_held.page_items`` with LIMIT/OFFSET, the time filter on the
``held_ts`` index) and the total comes from a COUNT, as ``GET /api/held`` does; times are parsed by the
API's own ``parse_time_ns`` (ISO 8601 or epoch seconds, UTC; ``time_range.TimeRange``). Each action asks
first in a dialog that says how many items it will touch, then runs
:func:`logferry.console.actions.settle_held` — the very function behind ``POST /api/held/release|delete``
— and refreshes the table. Every write handler starts with ``access.require_operator()``. This page must
never move a held item by any other path.
"""

from __future__ import annotations

from typing import Any

from nicegui import events, ui

from logferry.api.launch import RelayView
from logferry.console import access, actions
from logferry.console.actions import HeldVerb, HeldView, StaleKeys
from logferry.console.held_detail import detail_lines, row
from logferry.console.i18n import register, t
from logferry.console.layout import (
    PAGE_SIZE,
    Pager,
    clicked_row,
    confirm,
    detail_dialog,
    frame,
    level_options,
)
from logferry.console.time_range import TimeRange
from logferry.store.journal_held import HeldItem, HeldKey


def columns() -> list[dict[str, Any]]:
    return [
        {"name": "ts", "label": t("Time (UTC)"), "field": "ts", "align": "left"},
        {"name": "key", "label": t("Item"), "field": "key", "align": "left"},
        {"name": "level", "label": t("Level"), "field": "level", "align": "left"},
        {"name": "rule", "label": t("Rule"), "field": "rule", "align": "left"},
        {"name": "host", "label": t("Host"), "field": "host", "align": "left"},
        {"name": "msg", "label": t("Message / file"), "field": "msg", "align": "left",
         "classes": "max-w-xl truncate", "headerClasses": "max-w-xl"},
    ]  # fmt: skip


def _plural(n: int) -> str:
    return t("{n} held item", n=f"{n:,}") if n == 1 else t("{n} held items", n=f"{n:,}")


class HeldPage:
    """The page's state (filter, offset, the rows shown) and its widgets."""

    def __init__(self, view: RelayView) -> None:
        self.view = view
        self.chosen = HeldView()
        self.total = 0
        self.items: dict[str, HeldItem] = {}

    async def build(self) -> None:
        choices = await actions.held_choices(self.view)
        writable = access.can_write()
        with frame(t("Held items")):
            with ui.row().classes("items-end gap-3 flex-wrap"):
                self.q = ui.input(t("Search message or path")).classes("w-64").mark("held-q")
                self.q.on("keydown.enter", self.search)
                self.rule = ui.select({"": t("any rule")} | {r: r for r in choices.rules}, value="",
                                      label=t("Rule")).classes("w-44").mark("held-rule")  # fmt: skip
                self.source = ui.select({"": t("any source")} | {s: s for s in choices.sources}, value="",
                                        label=t("Source")).classes("w-44").mark("held-source")  # fmt: skip
                self.level = ui.select(level_options(), value="", label=t("Level"))
                self.level.classes("w-40").mark("held-level")
            with ui.row().classes("items-end gap-3 flex-wrap"):
                self.time = TimeRange("held", self.search)
                ui.button(t("Search"), icon="search", on_click=self.search).mark("held-search")
            with ui.row().classes("items-center gap-2 flex-wrap"):
                for verb, marker, label, outline in (
                    (HeldVerb.RELEASE, "release-selected", t("Release selected"), False),
                    (HeldVerb.DELETE, "delete-selected", t("Delete selected"), False),
                    (HeldVerb.RELEASE, "release-matching", t("Release all matching"), True),
                    (HeldVerb.DELETE, "delete-matching", t("Delete all matching"), True),
                ):
                    ask = self.ask_matching if outline else self.ask_selected
                    color = "negative" if verb is HeldVerb.DELETE else "primary"
                    button = ui.button(label, on_click=lambda v=verb, a=ask: a(v), color=color)
                    button.props("outline" if outline else "").mark(marker).set_enabled(writable)
            self.table = ui.table(
                columns=columns(), rows=[], row_key="key", selection="multiple", pagination=0
            )
            self.table.classes("w-full").props("hide-bottom dense").mark("held-table")
            self.table.on("rowClick", self.on_row_click)
            self.pager = Pager(self.refresh, "held")
        await self.refresh()

    async def refresh(self) -> None:
        pager = self.pager
        items, self.total = await actions.held_page(self.view, self.chosen, PAGE_SIZE, pager.offset)
        if not items and pager.offset > 0 and self.total > 0:  # the page emptied under us: show the last one
            pager.offset = pager.last_page(self.total)
            items, self.total = await actions.held_page(self.view, self.chosen, PAGE_SIZE, pager.offset)
        rows = [row(i) for i in items]
        self.items = {r["key"]: i for r, i in zip(rows, items, strict=True)}
        self.table.rows = rows
        self.table.selected = []
        self.table.update()
        pager.show(len(rows), self.total)

    async def search(self) -> None:
        if (bounds := self.time.asked()) is None:
            return
        since, until = bounds
        self.chosen = HeldView(
            rule=str(self.rule.value or ""),
            source=str(self.source.value or ""),
            level=str(self.level.value or ""),
            q=str(self.q.value or "").strip(),
            since_ns=since,
            until_ns=until,
        )
        await self.pager.first()

    def on_row_click(self, event: events.GenericEventArguments) -> None:
        item = self.items.get(str(clicked_row(event).get("key", "")))
        if item is not None:
            detail_dialog(t("Held item"), detail_lines(item), "held-detail")

    def selected_keys(self) -> list[HeldKey]:
        return [(str(r["source"]), int(r["seq"])) for r in self.table.selected]

    def ask_selected(self, verb: HeldVerb) -> None:
        keys = self.selected_keys()
        if not keys:
            ui.notify(t("Select items in the table first (or act on all matching the filter)."))
            return
        confirm(self._question(verb, len(keys), ""), self._verb_button(verb), lambda: self.act(verb, keys),
                danger=verb is HeldVerb.DELETE)  # fmt: skip

    async def ask_matching(self, verb: HeldVerb) -> None:
        chosen = self.chosen
        n = await actions.held_count(self.view, chosen)
        if n == 0:
            ui.notify(t("No held item matches the filter."))
            return
        what = t("every held item") if chosen == HeldView() else t("all matching the filter")
        confirm(self._question(verb, n, what), self._verb_button(verb), lambda: self.act(verb, chosen),
                danger=verb is HeldVerb.DELETE)  # fmt: skip

    @staticmethod
    def _question(verb: HeldVerb, n: int, what: str) -> str:
        scope = f" ({what})" if what else ""
        if verb is HeldVerb.RELEASE:
            return t("Release {items}{scope} to the collector?", items=_plural(n), scope=scope)
        return t("Delete for good {items}{scope}?", items=_plural(n), scope=scope)

    @staticmethod
    def _verb_button(verb: HeldVerb) -> str:
        return t("Release") if verb is HeldVerb.RELEASE else t("Delete")

    async def act(self, verb: HeldVerb, target: HeldView | list[HeldKey]) -> None:
        try:
            who = access.require_operator()
            n = await actions.settle_held(self.view, verb, target, who)
        except access.NotAllowed as exc:
            access.refuse(exc)  # says why; an ended session goes back to the sign-in page
            return
        except StaleKeys as exc:
            ui.notify(t("{gone} of {asked} selected items are not held any more ({shown}); nothing was "
                        "changed. The list was refreshed: select again.", gone=len(exc.gone), asked=exc.asked,
                        shown=exc.shown), type="warning", multi_line=True)  # fmt: skip
        else:
            if verb is HeldVerb.RELEASE:
                done = t("{items} released to the collector (audited as {who}).", items=_plural(n), who=who)
            else:
                done = t("{items} deleted (audited as {who}).", items=_plural(n), who=who)
            ui.notify(done, type="positive")
        await self.refresh()


async def build(view: RelayView) -> None:
    await HeldPage(view).build()


register(
    "ko",
    {
        "Time (UTC)": "시각 (UTC)",
        "Item": "항목",
        "Level": "수준",
        "Rule": "규칙",
        "Host": "호스트",
        "Message / file": "메시지 / 파일",
        "{n} held item": "보류 항목 {n}개",
        "{n} held items": "보류 항목 {n}개",
        "Held items": "보류 항목",
        "Search message or path": "메시지 또는 경로 검색",
        "any rule": "모든 규칙",
        "any source": "모든 소스",
        "Source": "소스",
        "Search": "검색",
        "Release selected": "선택 항목 해제",
        "Delete selected": "선택 항목 삭제",
        "Release all matching": "일치 항목 모두 해제",
        "Delete all matching": "일치 항목 모두 삭제",
        "Held item": "보류 항목",
        "Select items in the table first (or act on all matching the filter).":
            "먼저 표에서 항목을 선택하세요 (또는 필터에 일치하는 모든 항목에 적용).",
        "No held item matches the filter.": "필터에 일치하는 보류 항목이 없습니다.",
        "every held item": "모든 보류 항목",
        "all matching the filter": "필터에 일치하는 모든 항목",
        "Release {items}{scope} to the collector?": "{items}{scope}을(를) 수집기로 해제할까요?",
        "Delete for good {items}{scope}?": "{items}{scope}을(를) 영구 삭제할까요?",
        "Release": "해제",
        "Delete": "삭제",
        "{gone} of {asked} selected items are not held any more ({shown}); nothing was changed. "
        "The list was refreshed: select again.":
            "선택한 {asked}개 중 {gone}개는 더 이상 보류 중이 아닙니다 ({shown}). "
            "아무것도 바뀌지 않았습니다. 목록을 새로 고쳤으니 다시 선택하세요.",
        "{items} released to the collector (audited as {who}).":
            "{items}을(를) 수집기로 해제했습니다 ({who}로 감사 기록).",
        "{items} deleted (audited as {who}).": "{items}을(를) 삭제했습니다 ({who}로 감사 기록).",
    },
)  # fmt: skip
