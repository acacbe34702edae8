"""The Audit page: every operator action — who, when, what, on which target, how many, and its outcome —
newest first, searchable by text, action, operator and time, 50 a page.

Reads go through the same filter and store calls as ``GET /api/audit`` (``routes_audit.audit_filter``,
``AuditLog.count``/``page``); only one page of rows is read at a time. An entry still ``started`` says the
process stopped during the action (it may have partly run). This page only reads; it must never write,
change or delete an audit entry.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from nicegui import ui

from logferry.api.launch import RoleView
from logferry.api.routes_audit import audit_filter
from logferry.console.i18n import register, t
from logferry.console.layout import PAGE_SIZE, Pager, frame, when
from logferry.console.time_range import TimeRange
from logferry.store.audit import AuditEntry, AuditFilter

TARGET_CHARS = 160  # a filter or a few keys; the detail dialog shows all of it


def columns() -> list[dict[str, Any]]:
    return [
        {"name": "at", "label": t("When (UTC)"), "field": "at", "align": "left"},
        {"name": "operator", "label": t("Operator"), "field": "operator", "align": "left"},
        {"name": "action", "label": t("Action"), "field": "action", "align": "left"},
        {"name": "target", "label": t("Target"), "field": "target", "align": "left",
         "classes": "max-w-md truncate", "headerClasses": "max-w-md"},
        {"name": "count", "label": t("How many"), "field": "count"},
        {"name": "state", "label": t("Outcome"), "field": "state", "align": "left"},
        {"name": "detail", "label": t("Detail"), "field": "detail", "align": "left",
         "classes": "max-w-xs truncate"},
    ]  # fmt: skip


def outcome(e: AuditEntry) -> str:
    return {"done": t("done"), "failed": t("failed"), "started": t("started (unfinished)")}[e.state.value]


def row(e: AuditEntry) -> dict[str, Any]:
    target = json.dumps(e.target, ensure_ascii=False, sort_keys=True)
    return {
        "id": e.id, "at": when(e.at_ns), "operator": e.operator, "action": e.action,
        "target": target if len(target) <= TARGET_CHARS else target[: TARGET_CHARS - 1] + "…",
        "count": "" if e.count is None else f"{e.count:,}", "state": outcome(e), "detail": e.detail,
    }  # fmt: skip


class AuditPage:
    def __init__(self, view: RoleView) -> None:
        self.view = view
        self.chosen = AuditFilter()

    async def build(self) -> None:
        operators, acts = await self.view.audit.operators_and_actions()
        with frame(t("Audit log")):
            with ui.row().classes("items-end gap-3 flex-wrap"):
                self.q = (
                    ui.input(t("Search operator, action, target, detail")).classes("w-72").mark("audit-q")
                )
                self.q.on("keydown.enter", self.search)
                self.action = ui.select({"": t("any action")} | {a: a for a in acts}, value="",
                                        label=t("Action")).classes("w-44").mark("audit-action")  # fmt: skip
                self.operator = ui.select({"": t("any operator")} | {o: o for o in operators}, value="",
                                          label=t("Operator"))  # fmt: skip
                self.operator.classes("w-44").mark("audit-operator")
            with ui.row().classes("items-end gap-3 flex-wrap"):
                self.time = TimeRange("audit", self.search, quick=("1h", "24h", "7d", "30d"))
                ui.button(t("Search"), icon="search", on_click=self.search).mark("audit-search")
            self.table = ui.table(columns=columns(), rows=[], row_key="id", pagination=0).classes("w-full")
            self.table.props("hide-bottom dense").mark("audit-table")
            self.pager = Pager(self.refresh, "audit")
        await self.refresh()

    async def refresh(self) -> None:
        total = await self.view.audit.count(self.chosen)
        entries = await self.view.audit.page(self.chosen, PAGE_SIZE, self.pager.offset)
        self.table.rows = [row(e) for e in entries]
        self.table.update()
        self.pager.show(len(entries), total)

    async def search(self) -> None:
        if (bounds := self.time.asked()) is None:
            return
        since, until = bounds
        # the text filters as GET /api/audit builds them; the times already parsed by the same parser
        given = audit_filter(str(self.q.value or "").strip(), str(self.action.value or ""),
                             str(self.operator.value or ""), None, None)  # fmt: skip
        self.chosen = msgspec.structs.replace(given, since_ns=since, until_ns=until)
        await self.pager.first()


async def build(view: RoleView) -> None:
    await AuditPage(view).build()


register(
    "ko",
    {
        "When (UTC)": "시각 (UTC)", "Operator": "운영자", "Action": "작업", "Target": "대상",
        "How many": "개수", "Outcome": "결과", "Detail": "상세",
        "done": "완료", "failed": "실패", "started (unfinished)": "시작됨 (미완료)",
        "Audit log": "감사 기록", "Search operator, action, target, detail": "운영자, 작업, 대상, 상세 검색",
        "any action": "모든 작업", "any operator": "모든 운영자", "Search": "검색",
    },
)  # fmt: skip
