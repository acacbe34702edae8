"""The relay's Missing page: what reconciliation found between the relay and the collector (and what agents
could not resend), with resend, acknowledge and "reconcile now".

The list and its total come from the relay's ``Reconciler`` and missing store, as ``GET /api/missing``
answers; the three actions are :mod:`logferry.console.actions` — each audited like its REST route — and each
asks first in a dialog that says how many entries it touches. This page must never touch the missing list or
the outbox except through those actions.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from logferry.api.launch import RelayView
from logferry.console import actions
from logferry.console.layout import PAGE_SIZE, confirm, frame, pager_text, when
from logferry.errors import ProtocolError, TransportError
from logferry.reconcile.relay_side import ReconcileUnavailable
from logferry.store.missing import MissingEntry, MissingState

COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "label": "Id", "field": "id", "align": "left"},
    {"name": "source", "label": "Source", "field": "source", "align": "left"},
    {"name": "item", "label": "Item", "field": "item", "align": "left"},
    {"name": "range", "label": "Seqs", "field": "range", "align": "left"},
    {"name": "count", "label": "Count", "field": "count"},
    {"name": "kind", "label": "Kind", "field": "kind", "align": "left"},
    {"name": "state", "label": "State", "field": "state", "align": "left"},
    {"name": "found", "label": "Found (UTC)", "field": "found", "align": "left"},
    {"name": "resends", "label": "Resends", "field": "resends"},
]
STATE_OPTIONS: dict[str, str] = {"": "any state"} | {s.value: s.value for s in MissingState}


def row(e: MissingEntry) -> dict[str, Any]:
    return {
        "id": e.id, "source": e.source, "item": e.item.name.lower(), "range": f"{e.first_seq}–{e.last_seq}",
        "count": e.count, "kind": e.kind.value, "state": e.state.value, "found": when(e.found_ns),
        "resends": e.resends,
    }  # fmt: skip


def _entries(n: int) -> str:
    return f"{n:,} entr" + ("y" if n == 1 else "ies")


class MissingPage:
    def __init__(self, view: RelayView) -> None:
        self.view = view
        self.offset = 0

    async def build(self) -> None:
        with frame("Missing"):
            with ui.row().classes("items-end gap-3 flex-wrap"):
                self.state = ui.select(STATE_OPTIONS, value="open", label="State").classes("w-44")
                self.state.mark("missing-state").on_value_change(self.search)
                ui.button("Reconcile now", icon="sync", on_click=self.ask_reconcile).mark("reconcile-now")
                ui.button("Resend selected", on_click=self.ask_resend).mark("resend-selected")
                ui.button("Acknowledge selected", color="warning", on_click=self.ask_ack).mark("ack-selected")
            self.report = ui.label("").classes("text-sm opacity-70").mark("reconcile-report")
            self.table = ui.table(
                columns=COLUMNS, rows=[], row_key="id", selection="multiple", pagination=0
            ).classes("w-full")
            self.table.props("hide-bottom dense").mark("missing-table")
            with ui.row().classes("items-center gap-2"):
                self.previous = ui.button("Previous", on_click=self.page_back).props("flat")
                self.span = ui.label("").mark("missing-span")
                self.next = ui.button("Next", on_click=self.page_on).props("flat")
        await self.refresh()

    async def refresh(self) -> None:
        state = MissingState(self.state.value) if self.state.value else None
        reconciler = self.view.reconciler
        total = await reconciler.missing.count(state=state, kind=None, source=None)
        entries = await reconciler.missing_list(
            state=state, kind=None, source=None, limit=PAGE_SIZE, offset=self.offset
        )
        self.table.rows = [row(e) for e in entries]
        self.table.selected = []
        self.table.update()
        self.span.set_text(pager_text(self.offset, len(entries), total))
        self.previous.set_enabled(self.offset > 0)
        self.next.set_enabled(self.offset + len(entries) < total)
        last = reconciler.last_report
        self.report.set_text(
            "no reconciliation since the relay started"
            if last is None
            else f"last reconciliation: {'in sync' if last.clean else f'{last.new_entries} new entries'}"
            f", {last.sources} sources, {last.duration_s:.2f} s"
        )

    async def search(self) -> None:
        self.offset = 0
        await self.refresh()

    async def page_back(self) -> None:
        self.offset = max(0, self.offset - PAGE_SIZE)
        await self.refresh()

    async def page_on(self) -> None:
        self.offset += PAGE_SIZE
        await self.refresh()

    def selected_ids(self) -> list[int]:
        return [int(r["id"]) for r in self.table.selected]

    def ask_resend(self) -> None:
        ids = self.selected_ids()
        if not ids:
            ui.notify("Select entries in the table first.")
            return
        confirm(f"Resend {_entries(len(ids))} to the collector?", "Resend", lambda: self.resend(ids))

    async def resend(self, ids: list[int]) -> None:
        result = await actions.resend_missing(self.view, ids)
        skipped = f"; {len(result.skipped)} could not be resent" if result.skipped else ""
        sent = f"{result.records:,} records, {result.files:,} files"
        ui.notify(f"Resent {_entries(result.entries)}: {sent}{skipped}.", type="positive")
        await self.refresh()

    def ask_ack(self) -> None:
        ids = self.selected_ids()
        if not ids:
            ui.notify("Select entries in the table first.")
            return
        confirm(
            f"Acknowledge {_entries(len(ids))} as they are? They will never be reported again.",
            "Acknowledge",
            lambda: self.acknowledge(ids),
            danger=True,
        )

    async def acknowledge(self, ids: list[int]) -> None:
        n = await actions.acknowledge_missing(self.view, ids)
        ui.notify(f"Acknowledged {_entries(n)}.", type="positive")
        await self.refresh()

    def ask_reconcile(self) -> None:
        confirm("Reconcile with the collector now?", "Reconcile", self.reconcile)

    async def reconcile(self) -> None:
        try:
            report = await actions.reconcile_now(self.view)
        except (ReconcileUnavailable, TransportError, ProtocolError) as exc:
            ui.notify(
                f"Cannot reconcile now: {exc}. Check that the collector ({self.view.config.collector}) runs; "
                "the Overview shows the link.",
                type="negative",
                multi_line=True,
            )
            return
        found = "in sync" if report.clean else f"{report.new_entries} new entries to review"
        ui.notify(f"Reconciled {report.sources} sources: {found}.", type="positive")
        await self.refresh()


async def build(view: RelayView) -> None:
    await MissingPage(view).build()
