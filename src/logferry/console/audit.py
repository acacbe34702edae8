"""The Audit page: every operator action — who, when, what, on which target, how many, and its outcome —
newest first, searchable by text, action, operator and time, 50 a page.

Reads go through the same filter and store calls as ``GET /api/audit`` (``routes_audit.audit_filter``,
``AuditLog.count``/``page``); only one page of rows is read at a time. An entry still ``started`` says the
process stopped during the action (it may have partly run). This page only reads; it must never write,
change or delete an audit entry.
"""

from __future__ import annotations

import json
import time
from typing import Any

from nicegui import ui

from logferry.api.launch import RoleView
from logferry.api.problems import ApiError
from logferry.api.routes_audit import audit_filter
from logferry.console.i18n import register, t
from logferry.console.layout import PAGE_SIZE, frame, pager_text, when
from logferry.store.audit import AuditEntry, AuditFilter

QUICK_RANGES_S = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
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
        self.offset = 0

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
                quick = {"": t("any time"), "1h": t("last hour"), "24h": t("last 24 hours"),
                         "7d": t("last 7 days"), "30d": t("last 30 days")}  # fmt: skip
                self.quick = ui.select(quick, value="", label=t("Time")).classes("w-40").mark("audit-quick")
                self.since = ui.input(t("From (UTC)"), placeholder="2026-11-25T10:00:00").classes("w-52")
                self.since.mark("audit-since")
                self.until = ui.input(t("To (UTC)"), placeholder="2026-11-25T12:00:00").classes("w-52")
                self.until.mark("audit-until")
                ui.button(t("Search"), icon="search", on_click=self.search).mark("audit-search")
            self.table = ui.table(columns=columns(), rows=[], row_key="id", pagination=0).classes("w-full")
            self.table.props("hide-bottom dense").mark("audit-table")
            with ui.row().classes("items-center gap-2"):
                self.previous = ui.button(t("Previous"), on_click=self.page_back).props("flat")
                self.span = ui.label("").mark("audit-span")
                self.next = ui.button(t("Next"), on_click=self.page_on).props("flat").mark("audit-next")
        await self.refresh()

    async def refresh(self) -> None:
        total = await self.view.audit.count(self.chosen)
        entries = await self.view.audit.page(self.chosen, PAGE_SIZE, self.offset)
        self.table.rows = [row(e) for e in entries]
        self.table.update()
        self.span.set_text(pager_text(self.offset, len(entries), total))
        self.previous.set_enabled(self.offset > 0)
        self.next.set_enabled(self.offset + len(entries) < total)

    async def search(self) -> None:
        quick = str(self.quick.value or "")
        since, until = str(self.since.value or ""), str(self.until.value or "")
        if quick in QUICK_RANGES_S:
            since, until = str(time.time() - QUICK_RANGES_S[quick]), ""
        try:
            self.chosen = audit_filter(str(self.q.value or "").strip(), str(self.action.value or ""),
                                       str(self.operator.value or ""), since, until)  # fmt: skip
        except ApiError as exc:
            ui.notify(t("{error}: use 2026-11-25T10:00:00 (UTC) or epoch seconds", error=exc.message),
                      type="warning")  # fmt: skip
            return
        self.offset = 0
        await self.refresh()

    async def page_back(self) -> None:
        self.offset = max(0, self.offset - PAGE_SIZE)
        await self.refresh()

    async def page_on(self) -> None:
        self.offset += PAGE_SIZE
        await self.refresh()


async def build(view: RoleView) -> None:
    await AuditPage(view).build()


register(
    "ko",
    {
        "When (UTC)": "시각 (UTC)", "Operator": "운영자", "Action": "작업", "Target": "대상",
        "How many": "개수", "Outcome": "결과", "Detail": "상세",
        "done": "완료", "failed": "실패", "started (unfinished)": "시작됨 (미완료)",
        "Audit log": "감사 기록", "Search operator, action, target, detail": "운영자, 작업, 대상, 상세 검색",
        "any action": "모든 작업", "any operator": "모든 운영자", "any time": "전체 기간",
        "last hour": "최근 1시간", "last 24 hours": "최근 24시간", "last 7 days": "최근 7일",
        "last 30 days": "최근 30일", "Time": "기간", "From (UTC)": "시작 (UTC)", "To (UTC)": "끝 (UTC)",
        "Search": "검색", "Previous": "이전", "Next": "다음",
        "{error}: use 2026-11-25T10:00:00 (UTC) or epoch seconds":
            "{error}: 2026-11-25T10:00:00 (UTC) 또는 epoch 초를 쓰세요",
    },
)  # fmt: skip
