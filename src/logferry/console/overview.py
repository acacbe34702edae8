"""The relay's Overview page: the link to the collector, rates in and out with live charts, held / outbox /
backlog sizes, the lag to the collector, connected devices with last seen, and records by fate.

Every figure is what the REST API answers at the moment of the refresh: rates, totals and lag come from
``routes_status.relay_rates`` (``GET /api/rates``), sizes from the journal's stats (``GET /api/status``),
devices from the peer table (``GET /api/devices``). The charts are ``ui.echart`` line charts (ECharts ships
inside NiceGUI and is served from ``/_nicegui/…`` of this port: no CDN) of the last minutes of the relay's
sampled rates, redrawn every :data:`REFRESH_S`. This page keeps no counter of its own and must never change
a store.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from logferry.api.launch import RelayView
from logferry.api.routes_status import relay_rates
from logferry.api.schemas import Rates
from logferry.console.i18n import register, t
from logferry.console.layout import frame, size, stat, when
from logferry.model import Fate

REFRESH_S = 3.0
CHART_S = 600.0  # the charts show the last ten minutes (what the relay keeps)


def device_columns() -> list[dict[str, Any]]:
    return [
        {"name": "source", "label": t("Source"), "field": "source", "align": "left"},
        {"name": "address", "label": t("Address"), "field": "address", "align": "left"},
        {"name": "connected_at", "label": t("Connected at (UTC)"), "field": "connected_at", "align": "left"},
        {"name": "last_seen", "label": t("Last seen (UTC)"), "field": "last_seen", "align": "left"},
        {"name": "batches", "label": t("Batches"), "field": "batches"},
        {"name": "records", "label": t("Records"), "field": "records"},
    ]


def fate_text(fate: Fate) -> str:
    """A fate's name in the page's language (the literals are here so the i18n test sees each one)."""
    names = {
        Fate.FORWARDED: t("forwarded"), Fate.REDACTED: t("redacted"), Fate.HELD: t("held"),
        Fate.DROPPED: t("dropped"), Fate.RELEASED: t("released"), Fate.PURGED: t("purged"),
    }  # fmt: skip
    return names[fate]


def fate_columns() -> list[dict[str, Any]]:
    return [
        {"name": "source", "label": t("Source"), "field": "source", "align": "left"},
        *({"name": f.name.lower(), "label": fate_text(f), "field": f.name.lower()} for f in Fate),
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


def per_second(records: float, nbytes: float) -> str:
    """``1,234 rec/s · 56.7 KiB/s``."""
    return t("{records} rec/s · {bytes}/s", records=f"{records:,.0f}", bytes=size(int(nbytes)))


def lag_text(rates: Rates) -> str:
    lag = rates.lag
    if lag.oldest_unacked_ns is None:
        return t("none: the collector has everything")
    return t(
        "{seconds} s · {records} records unacked", seconds=f"{lag.lag_s:,.1f}", records=f"{lag.records:,}"
    )


def chart_options(title: str, unit: str) -> dict[str, Any]:
    """An ECharts line chart of two series (in, out) against time; data is filled by :func:`chart_series`."""
    return {
        "title": {"text": title, "textStyle": {"fontSize": 13}},
        "animation": False,  # redrawn every few seconds: an animation would never settle
        "tooltip": {"trigger": "axis"},
        "legend": {"data": [t("in"), t("out")], "right": 0, "top": 0},  # not over the time axis
        "grid": {"left": 60, "right": 16, "top": 36, "bottom": 28},
        "xAxis": {"type": "time"},
        "yAxis": {"type": "value", "name": unit, "min": 0},
        "series": [
            {"name": t("in"), "type": "line", "showSymbol": False, "data": []},
            {"name": t("out"), "type": "line", "showSymbol": False, "data": []},
        ],
    }


def chart_series(rates: Rates, field: str) -> tuple[list[list[float]], list[list[float]]]:
    """(in, out) points ``[epoch ms, value]`` for ``field`` = ``records`` or ``bytes``."""
    series_in = [[r.at_ns / 1e6, float(getattr(r, f"{field}_in"))] for r in rates.history]
    series_out = [[r.at_ns / 1e6, float(getattr(r, f"{field}_out"))] for r in rates.history]
    return series_in, series_out


async def build(view: RelayView) -> None:
    with frame(t("Overview")):
        with ui.row().classes("gap-4 flex-wrap"):
            link = stat(t("Collector"), "stat-collector")
            devices = stat(t("Devices connected"), "stat-devices")
            rate_in = stat(t("Received (from devices)"), "stat-rate-in")
            rate_out = stat(t("Forwarded (acked by the collector)"), "stat-rate-out")
            lag = stat(t("Lag to the collector"), "stat-lag")
        with ui.row().classes("gap-4 flex-wrap"):
            held = stat(t("Held items"), "stat-held")
            outbox = stat(t("Outbox (not yet acked)"), "stat-outbox")
            backlog = stat(t("Backlog on disk"), "stat-backlog")
            forwarded = stat(t("Forwarded + released"), "stat-forwarded")
            dropped = stat(t("Dropped"), "stat-dropped")
        last_error = ui.label("").classes("text-sm text-red-700").mark("collector-error")
        with ui.row().classes("w-full gap-4 no-wrap"):
            records_chart = ui.echart(chart_options(t("Records per second"), "rec/s")).classes("w-1/2 h-64")
            records_chart.mark("chart-records")
            bytes_chart = ui.echart(chart_options(t("Bytes per second"), "B/s")).classes("w-1/2 h-64")
            bytes_chart.mark("chart-bytes")
        ui.label(t("Connected devices")).classes("text-lg font-semibold")
        device_table = ui.table(columns=device_columns(), rows=[], row_key="source").classes("w-full")
        device_table.mark("devices-table")
        ui.label(t("Records by fate")).classes("text-lg font-semibold")
        fate_table = ui.table(columns=fate_columns(), rows=[], row_key="source").classes("w-full")
        fate_table.mark("fates-table")

    async def refresh() -> None:
        stats = await view.journal.stats()
        rates = await relay_rates(view, CHART_S)
        rows, totals = await fate_rows(view)
        status = view.sender.status
        state = t("connected") if status.connected else t("not connected")
        link.set_text(f"{state} · {view.sender.target}")
        last_error.set_text("" if status.connected or not status.last_error else status.last_error)
        devices.set_text(f"{view.peers.connected:,}")
        rate_in.set_text(per_second(rates.latest.records_in, rates.latest.bytes_in))
        rate_out.set_text(per_second(rates.latest.records_out, rates.latest.bytes_out))
        lag.set_text(lag_text(rates))
        held.set_text(f"{stats.held:,}")
        outbox.set_text(
            t("{records} records · {batches} batches", records=f"{stats.outbox_unacked_records:,}",
              batches=f"{stats.outbox_unacked_batches:,}")
        )  # fmt: skip
        backlog.set_text(size(stats.outbox_unacked_bytes))
        forwarded.set_text(f"{totals['forwarded'] + totals['redacted'] + totals['released']:,}")
        dropped.set_text(f"{totals['dropped']:,}")
        for chart, field in ((records_chart, "records"), (bytes_chart, "bytes")):
            chart.options["series"][0]["data"], chart.options["series"][1]["data"] = chart_series(
                rates, field
            )
            chart.update()
        device_table.rows = device_rows(view)
        device_table.update()
        fate_table.rows = rows
        fate_table.update()

    await refresh()
    ui.timer(REFRESH_S, refresh)


register(
    "ko",
    {
        "Source": "소스",
        "forwarded": "전달됨",
        "redacted": "마스킹 후 전달",
        "held": "보류됨",
        "dropped": "폐기됨",
        "released": "해제됨",
        "purged": "삭제됨",
        "Address": "주소",
        "Connected at (UTC)": "연결 시각 (UTC)",
        "Last seen (UTC)": "마지막 수신 (UTC)",
        "Batches": "배치",
        "Records": "레코드",
        "{records} rec/s · {bytes}/s": "{records} 건/초 · {bytes}/초",
        "none: the collector has everything": "없음: 수집기가 모두 받음",
        "{seconds} s · {records} records unacked": "{seconds}초 · 미확인 레코드 {records}건",
        "in": "수신",
        "out": "전달",
        "Collector": "수집기",
        "Devices connected": "연결된 장치",
        "Received (from devices)": "수신 (장치에서)",
        "Forwarded (acked by the collector)": "전달 (수집기 확인)",
        "Lag to the collector": "수집기 지연",
        "Held items": "보류 항목",
        "Outbox (not yet acked)": "발신함 (미확인)",
        "Backlog on disk": "디스크 대기량",
        "Forwarded + released": "전달 + 해제",
        "Dropped": "폐기",
        "Records per second": "초당 레코드",
        "Bytes per second": "초당 바이트",
        "Connected devices": "연결된 장치 목록",
        "Records by fate": "처리 결과별 레코드",
        "connected": "연결됨",
        "not connected": "연결 안 됨",
        "{records} records · {batches} batches": "레코드 {records}건 · 배치 {batches}개",
    },
)
