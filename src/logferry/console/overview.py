"""The relay's Overview page: the link to the collector, held and outbox sizes, fate counters, connected
devices — refreshed every few seconds from the same objects ``GET /api/status`` and ``/api/devices`` read.

Every figure comes from the journal, the sender's status or the peer table at the moment of the refresh;
this page keeps no counter of its own and must never change a store.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from logferry.api.launch import RelayView
from logferry.console.layout import frame, size, stat, when
from logferry.model import Fate

REFRESH_S = 3.0

DEVICE_COLUMNS: list[dict[str, Any]] = [
    {"name": "source", "label": "Source", "field": "source", "align": "left"},
    {"name": "address", "label": "Address", "field": "address", "align": "left"},
    {"name": "connected_at", "label": "Connected at (UTC)", "field": "connected_at", "align": "left"},
    {"name": "last_seen", "label": "Last seen (UTC)", "field": "last_seen", "align": "left"},
    {"name": "batches", "label": "Batches", "field": "batches"},
    {"name": "records", "label": "Records", "field": "records"},
]
FATE_COLUMNS: list[dict[str, Any]] = [
    {"name": "source", "label": "Source", "field": "source", "align": "left"},
    *({"name": f.name.lower(), "label": f.name.capitalize(), "field": f.name.lower()} for f in Fate),
]


async def fate_rows(view: RelayView) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Records per source and fate (rules summed), and the totals per fate."""
    per_source: dict[str, dict[str, Any]] = {}
    totals = {f.name.lower(): 0 for f in Fate}
    for (source, fate, _rule), n in (await view.journal.counters()).items():
        row = per_source.setdefault(source, {"source": source} | {f.name.lower(): 0 for f in Fate})
        row[fate.name.lower()] += n
        totals[fate.name.lower()] += n
    return [per_source[s] for s in sorted(per_source)], totals


def device_rows(view: RelayView) -> list[dict[str, Any]]:
    return [
        {
            "source": p.source,
            "address": p.address,
            "connected_at": when(p.connected_ns),
            "last_seen": when(p.last_seen_ns),
            "batches": p.batches,
            "records": p.records,
        }
        for p in view.peers.peers.values()
        if p.connected
    ]


async def build(view: RelayView) -> None:
    with frame("Overview"):
        with ui.row().classes("gap-4 flex-wrap"):
            link = stat("Collector", "stat-collector")
            devices = stat("Devices connected", "stat-devices")
            held = stat("Held items", "stat-held")
            outbox = stat("Outbox (not yet acked)", "stat-outbox")
            forwarded = stat("Forwarded + released", "stat-forwarded")
            dropped = stat("Dropped", "stat-dropped")
        last_error = ui.label("").classes("text-sm text-red-700").mark("collector-error")
        ui.label("Connected devices").classes("text-lg font-semibold")
        device_table = ui.table(columns=DEVICE_COLUMNS, rows=[], row_key="source").classes("w-full")
        device_table.mark("devices-table")
        ui.label("Records by fate").classes("text-lg font-semibold")
        fate_table = ui.table(columns=FATE_COLUMNS, rows=[], row_key="source").classes("w-full")
        fate_table.mark("fates-table")

    async def refresh() -> None:
        stats = await view.journal.stats()
        rows, totals = await fate_rows(view)
        status = view.sender.status
        link.set_text(("connected" if status.connected else "not connected") + f" · {view.sender.target}")
        last_error.set_text("" if status.connected or not status.last_error else status.last_error)
        devices.set_text(f"{view.peers.connected:,}")
        held.set_text(f"{stats.held:,}")
        outbox.set_text(
            f"{stats.outbox_unacked_records:,} records · {stats.outbox_unacked_batches:,} batches · "
            f"{size(stats.outbox_unacked_bytes)}"
        )
        forwarded.set_text(f"{totals['forwarded'] + totals['redacted'] + totals['released']:,}")
        dropped.set_text(f"{totals['dropped']:,}")
        device_table.rows = device_rows(view)
        device_table.update()
        fate_table.rows = rows
        fate_table.update()

    await refresh()
    ui.timer(REFRESH_S, refresh)
