"""The relay's Missing page: what reconciliation found between the relay and the collector, and what agents
could not resend, grouped by source — one expansion per source with its counts per kind — with resend,
"ask the device", acknowledge and "reconcile now".

The groups come from ``routes_missing.missing_sources`` (``GET /api/missing/sources``), each group's rows
from the ``Reconciler`` (``GET /api/missing?source=…``), at most :data:`PAGE_SIZE` per source. The four
actions are :mod:`logferry.console.actions` — the very functions behind their REST routes, audited the same
way — and each asks first in a dialog that says how many entries it touches; every write handler starts
with ``access.require_operator()``. This page must never touch the missing list, the outbox or an agent's
session except through those actions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from logferry.api.audited import DeviceNotConnected, NothingToAsk
from logferry.api.launch import RelayView
from logferry.api.routes_missing import missing_sources
from logferry.console import access, actions
from logferry.console.i18n import register, t
from logferry.console.layout import PAGE_SIZE, confirm, frame, when
from logferry.errors import ProtocolError, TransportError
from logferry.reconcile.relay_side import ReconcileUnavailable
from logferry.reconcile.summary import ItemKind
from logferry.store.missing import MissingEntry, MissingKind, MissingState

MAX_SOURCES = 200  # expansions on one page: a site with more sources filters by state first


def columns() -> list[dict[str, Any]]:
    return [
        {"name": "id", "label": t("Id"), "field": "id", "align": "left"},
        {"name": "item", "label": t("Item"), "field": "item", "align": "left"},
        {"name": "range", "label": t("Seqs"), "field": "range", "align": "left"},
        {"name": "count", "label": t("Count"), "field": "count"},
        {"name": "kind", "label": t("Kind"), "field": "kind", "align": "left"},
        {"name": "state", "label": t("State"), "field": "state", "align": "left"},
        {"name": "found", "label": t("Found (UTC)"), "field": "found", "align": "left"},
        {"name": "resends", "label": t("Resends"), "field": "resends"},
    ]


def kind_text(kind: MissingKind) -> str:
    """A kind as a person reads it; the API and the CLI keep the names (``missing_at_collector``…)."""
    names = {
        MissingKind.MISSING_AT_COLLECTOR: t("missing at the collector"),
        MissingKind.DIGEST_MISMATCH: t("different at the collector"),
        MissingKind.LOST: t("lost"),
        MissingKind.MISSING_AT_DEVICE: t("missing at the device"),
    }
    return names.get(kind, kind.value)  # a kind added later shows its name until it has a text here


def state_text(state: MissingState) -> str:
    """A state as a person reads it (the filter's keys stay the English values the API takes)."""
    names = {
        MissingState.OPEN: t("open"), MissingState.RESENT: t("resent"),
        MissingState.ACKNOWLEDGED: t("acknowledged"), MissingState.RESOLVED: t("resolved"),
        MissingState.RECOVERED: t("recovered"),
    }  # fmt: skip
    return names.get(state, state.value)  # a state added later shows its name until it has a text here


def item_text(item: ItemKind) -> str:
    return t("file") if item is ItemKind.FILE else t("record")


def kinds_text(kinds: dict[str, int]) -> str:
    """``lost 1, missing at the collector 1``: each kind as read, with its entries; an unknown kind as is."""
    known = {k.value: k for k in MissingKind}
    return ", ".join(f"{kind_text(known[k]) if k in known else k} {n:,}" for k, n in sorted(kinds.items()))


def row(e: MissingEntry) -> dict[str, Any]:
    return {
        "id": e.id, "source": e.source, "item": item_text(e.item), "range": f"{e.first_seq}–{e.last_seq}",
        "count": e.count, "kind": kind_text(e.kind), "state": state_text(e.state), "found": when(e.found_ns),
        "resends": e.resends,
    }  # fmt: skip


def _entries(n: int) -> str:
    return t("{n} entry", n=f"{n:,}") if n == 1 else t("{n} entries", n=f"{n:,}")


class MissingPage:
    def __init__(self, view: RelayView) -> None:
        self.view = view
        self.tables: dict[str, ui.table] = {}

    async def build(self) -> None:
        writable = access.can_write()
        with frame(t("Missing")):
            with ui.row().classes("items-end gap-3 flex-wrap"):
                states = {"": t("any state")} | {s.value: state_text(s) for s in MissingState}
                self.state = ui.select(states, value="open", label=t("State")).classes("w-44")
                self.state.mark("missing-state").on_value_change(self.refresh)
                reconcile = ui.button(t("Reconcile now"), icon="sync", on_click=self.ask_reconcile)
                reconcile.mark("reconcile-now").set_enabled(writable)
            self.report = ui.label("").classes("text-sm opacity-70").mark("reconcile-report")
            self.summary = ui.label("").mark("missing-span")
            self.groups = ui.column().classes("w-full gap-2").mark("missing-groups")
        await self.refresh()

    async def refresh(self) -> None:
        state = MissingState(self.state.value) if self.state.value else None
        grouped = (await missing_sources(self.view, state, None)).items
        writable = access.can_write()
        self.groups.clear()
        self.tables = {}
        with self.groups:
            for g in grouped[:MAX_SOURCES]:
                title = t("{source} — {entries}, {seqs} seqs ({kinds})", source=g.source, entries=_entries(
                    g.entries), seqs=f"{g.seqs:,}", kinds=kinds_text(g.kinds))  # fmt: skip
                with ui.expansion(title, value=len(grouped) == 1).classes("w-full border rounded") as box:
                    box.mark(f"group-{g.source}")
                    entries = await self.view.reconciler.missing_list(state=state, source=g.source,
                                                                       limit=PAGE_SIZE)  # fmt: skip
                    self._group_actions(g.source, writable, MissingKind.MISSING_AT_DEVICE.value in g.kinds)
                    table = ui.table(columns=columns(), rows=[row(e) for e in entries], row_key="id",
                                     selection="multiple", pagination=0)  # fmt: skip
                    table.classes("w-full").props("hide-bottom dense").mark(f"missing-table-{g.source}")
                    self.tables[g.source] = table
                    if g.entries > len(entries):
                        ui.label(
                            t(
                                "showing the newest {shown} of {total}; narrow by state to see the rest",
                                shown=len(entries),
                                total=f"{g.entries:,}",
                            )
                        ).classes("text-xs opacity-60")
        total = sum(g.entries for g in grouped)
        self.summary.set_text(
            t("nothing matches") if not grouped
            else t("{entries} in {sources} sources", entries=_entries(total), sources=len(grouped))
        )  # fmt: skip
        last = self.view.reconciler.last_report
        self.report.set_text(
            t("no reconciliation since the relay started") if last is None
            else t("last reconciliation: {found}, {sources} sources, {seconds} s",
                   found=t("in sync") if last.clean else t("{n} new entries", n=last.new_entries),
                   sources=last.sources, seconds=f"{last.duration_s:.2f}")
        )  # fmt: skip

    def _group_actions(self, source: str, writable: bool, device_gaps: bool) -> None:
        with ui.row().classes("gap-2"):
            buttons = (
                ("resend", t("Resend selected"), lambda s=source: self.ask_resend(s)),
                ("ack", t("Acknowledge selected"), lambda s=source: self.ask_ack(s)),
                ("ask", t("Ask the device"), lambda s=source: self.ask_device(s)),
            )
            for name, label, handler in buttons:
                button = ui.button(label, on_click=handler).props("outline dense")
                button.mark(f"{name}-{source}").set_enabled(writable)
            if device_gaps:
                hint = t("missing at the device: the agent said it no longer has these; asking again may "
                         "still find them (a restored spool)")  # fmt: skip
                ui.label(hint).classes("text-xs opacity-60")

    def selected_ids(self, source: str) -> list[int]:
        table = self.tables.get(source)
        return [] if table is None else [int(r["id"]) for r in table.selected]

    def ask_resend(self, source: str) -> None:
        ids = self.selected_ids(source)
        if not ids:
            ui.notify(t("Select entries in the table first."))
            return
        confirm(t("Resend {entries} to the collector?", entries=_entries(len(ids))), t("Resend"),
                lambda: self.run(self.resend, ids))  # fmt: skip

    async def resend(self, who: str, ids: list[int]) -> None:
        result = await actions.resend_missing(self.view, ids, who)
        skipped = t("; {n} could not be resent", n=len(result.skipped)) if result.skipped else ""
        ui.notify(t("Resent {entries}: {records} records, {files} files{skipped}.",
                    entries=_entries(result.entries), records=f"{result.records:,}",
                    files=f"{result.files:,}", skipped=skipped), type="positive")  # fmt: skip

    def ask_ack(self, source: str) -> None:
        ids = self.selected_ids(source)
        if not ids:
            ui.notify(t("Select entries in the table first."))
            return
        confirm(t("Acknowledge {entries} as they are? They will never be reported again.",
                  entries=_entries(len(ids))), t("Acknowledge"), lambda: self.run(self.acknowledge, ids),
                danger=True)  # fmt: skip

    async def acknowledge(self, who: str, ids: list[int]) -> None:
        n = await actions.acknowledge_missing(self.view, ids, who)
        ui.notify(t("Acknowledged {entries}.", entries=_entries(n)), type="positive")

    def ask_device(self, source: str) -> None:
        ids = self.selected_ids(source)
        what = (t("the {entries} selected", entries=_entries(len(ids))) if ids
                else t("every hole in its seqs"))  # fmt: skip
        agent = source.removesuffix("/files")
        confirm(t("Ask the device {source} to resend {what}?", source=agent, what=what), t("Ask"),
                lambda: self.run(self.ask, ids, agent))  # fmt: skip

    async def ask(self, who: str, ids: list[int], source: str) -> None:
        try:
            asked = await actions.ask_device(self.view, who, ids=ids, source=None if ids else source)
        except (NothingToAsk, DeviceNotConnected) as exc:
            ui.notify(str(exc), type="warning", multi_line=True)
            return
        ui.notify(t("Asked {sources} for {seqs} seqs; what arrives is journaled as usual.",
                    sources=", ".join(asked.sources), seqs=f"{asked.seqs:,}"), type="positive")  # fmt: skip

    async def run(self, act: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Check the operator, run ``act(who, *args)``, refresh; a viewer is told so and nothing moves."""
        try:
            who = access.require_operator()
        except access.NotAllowed as exc:
            access.refuse(exc)  # says why; an ended session goes back to the sign-in page
            return
        await act(who, *args)
        await self.refresh()

    def ask_reconcile(self) -> None:
        confirm(t("Reconcile with the collector now?"), t("Reconcile"), lambda: self.run(self.reconcile))

    async def reconcile(self, who: str) -> None:
        try:
            report = await actions.reconcile_now(self.view, who)
        except (ReconcileUnavailable, TransportError, ProtocolError) as exc:
            ui.notify(t("Cannot reconcile now: {error}. Check that the collector ({collector}) runs; the "
                        "Overview shows the link.", error=str(exc), collector=self.view.config.collector),
                      type="negative", multi_line=True)  # fmt: skip
            return
        found = t("in sync") if report.clean else t("{n} new entries to review", n=report.new_entries)
        ui.notify(t("Reconciled {sources} sources: {found}.", sources=report.sources, found=found),
                  type="positive")  # fmt: skip


async def build(view: RelayView) -> None:
    await MissingPage(view).build()


register(
    "ko",
    {
        "Id": "번호", "Item": "항목", "Seqs": "순번", "Count": "개수", "Kind": "종류", "State": "상태",
        "Found (UTC)": "발견 시각 (UTC)", "Resends": "재전송 횟수",
        "missing at the collector": "수집기에 없음", "different at the collector": "수집기와 다름",
        "lost": "유실", "missing at the device": "장치에 없음",
        "open": "열림", "resent": "재전송됨", "acknowledged": "확인 처리됨", "resolved": "해결됨",
        "recovered": "복구됨",
        "file": "파일", "record": "레코드",
        "{n} entry": "항목 {n}개", "{n} entries": "항목 {n}개",
        "Missing": "누락", "any state": "모든 상태", "Reconcile now": "지금 대조",
        "{source} — {entries}, {seqs} seqs ({kinds})": "{source} — {entries}, 순번 {seqs}개 ({kinds})",
        "showing the newest {shown} of {total}; narrow by state to see the rest":
            "전체 {total}개 중 최신 {shown}개 표시; 나머지는 상태로 좁혀 보세요",
        "nothing matches": "일치하는 항목 없음",
        "{entries} in {sources} sources": "소스 {sources}개에 {entries}",
        "no reconciliation since the relay started": "릴레이 시작 후 대조 없음",
        "last reconciliation: {found}, {sources} sources, {seconds} s":
            "마지막 대조: {found}, 소스 {sources}개, {seconds}초",
        "in sync": "일치", "{n} new entries": "새 항목 {n}개",
        "Resend selected": "선택 항목 재전송", "Acknowledge selected": "선택 항목 확인 처리",
        "Ask the device": "장치에 요청",
        "missing at the device: the agent said it no longer has these; asking again may still find them "
        "(a restored spool)": "장치에 없음: 에이전트가 더 이상 없다고 알렸습니다. 다시 요청하면 "
                              "(복원된 스풀에서) 찾을 수도 있습니다",
        "Select entries in the table first.": "먼저 표에서 항목을 선택하세요.",
        "Resend {entries} to the collector?": "{entries}을(를) 수집기로 재전송할까요?", "Resend": "재전송",
        "; {n} could not be resent": "; {n}개는 재전송할 수 없음",
        "Resent {entries}: {records} records, {files} files{skipped}.":
            "{entries} 재전송: 레코드 {records}건, 파일 {files}개{skipped}.",
        "Acknowledge {entries} as they are? They will never be reported again.":
            "{entries}을(를) 현재 상태로 확인 처리할까요? 다시는 보고되지 않습니다.",
        "Acknowledge": "확인 처리", "Acknowledged {entries}.": "{entries} 확인 처리했습니다.",
        "the {entries} selected": "선택한 {entries}", "every hole in its seqs": "순번의 모든 빈 곳",
        "Ask the device {source} to resend {what}?": "장치 {source}에 {what}의 재전송을 요청할까요?",
        "Ask": "요청",
        "Asked {sources} for {seqs} seqs; what arrives is journaled as usual.":
            "{sources}에 순번 {seqs}개를 요청했습니다. 도착하는 항목은 평소처럼 저널에 기록됩니다.",
        "Reconcile with the collector now?": "지금 수집기와 대조할까요?", "Reconcile": "대조",
        "Cannot reconcile now: {error}. Check that the collector ({collector}) runs; the Overview shows "
        "the link.": "지금 대조할 수 없습니다: {error}. 수집기({collector})가 실행 중인지 확인하세요. 개요에 "
                     "연결 상태가 나옵니다.",
        "{n} new entries to review": "검토할 새 항목 {n}개",
        "Reconciled {sources} sources: {found}.": "소스 {sources}개 대조 완료: {found}.",
    },
)  # fmt: skip
