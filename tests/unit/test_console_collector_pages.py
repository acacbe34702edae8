"""The collector console's Search (histogram, facets, time range), Analysis and Files pages on real stores,
driven by NiceGUI's ``User`` simulation; and the Files page's download link answered by the REST route."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from nicegui import ui
from nicegui.storage import Storage
from nicegui.testing.user_simulation import user_simulation

from logferry.analysis.follower import Follower
from logferry.analysis.settings import AnalysisSettings
from logferry.analysis.store import AnalysisStore
from logferry.api.launch import CollectorView
from logferry.api.routes_files import files_router
from logferry.config import CollectorConfig
from logferry.console import analysis as analysis_page
from logferry.console.mount import collector_root
from logferry.model import Level, make_record
from logferry.roles.server import PeerTable
from logferry.store.audit import AuditLog
from logferry.store.file_manifests import FileManifests
from logferry.store.records import RecordStore
from logferry.store.sqlite import Durability
from logferry.transport.serve import SessionCounters

NS = 1_000_000_000
T0 = 1_780_002_000 * NS
CONTENT = b"line one\nline two\n" * 100


@pytest.fixture
async def view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CollectorView]:
    monkeypatch.setattr(Storage, "path", tmp_path / "nicegui")
    store = await RecordStore.open(tmp_path / "records.db", Durability.NORMAL)
    audit = await AuditLog.open(tmp_path / "audit.db", Durability.NORMAL)
    manifests = await FileManifests.open(tmp_path, Durability.NORMAL)
    analysis = await AnalysisStore.open(tmp_path, Durability.NORMAL)
    for source, host in (("edge-1", "web-1"), ("edge-2", "db-1")):
        records = [
            make_record(i, T0 + i * 10 * NS, int(Level.ERROR if i % 5 == 0 else Level.INFO), host, "/app.log",
                        f"payment failed order={i}" if i % 5 == 0 else f"GET /orders 200 n={i}")
            for i in range(1, 121)
        ]  # fmt: skip
        await store.commit("relay-1", source, records)
    await store.index_pending(10_000)
    sha = hashlib.sha256(CONTENT).digest()
    target = manifests.content.path_for(sha)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(CONTENT)
    await manifests.add("edge-1/files", 1, "/data/out/report.csv", len(CONTENT), T0, sha, "relay-1")
    follower = Follower(store, analysis, AnalysisSettings(warmup_records=0), clock_ns=lambda: T0)
    while await follower.step():
        pass
    yield CollectorView(
        name="collector-test", token="", peers=PeerTable(), counters=SessionCounters(), audit=audit,
        store=store, config=CollectorConfig(), files=manifests, analysis=follower,
    )  # fmt: skip
    await analysis.close()
    await manifests.close()
    await audit.close()
    await store.close()


async def test_search_histogram_facets_and_time_range(view: CollectorView) -> None:
    async with user_simulation(root=collector_root(view)) as user:
        await user.open("/")
        await user.should_see("240 matches")
        [chart] = user.find(marker="search-histogram").elements
        assert isinstance(chart, ui.echart)
        assert sum(chart.options["series"][0]["data"]) == 240
        user.find(marker="search-q").type("payment")
        user.find(marker="search-go").click()
        await user.should_see("48 matches")
        user.find(marker="facet-host-db-1").click()  # a facet value filters
        await user.should_see("24 matches")
        [table] = user.find(marker="search-table").elements
        assert isinstance(table, ui.table)
        assert {r["host"] for r in table.rows} == {"db-1"} and len(table.rows) == 24
        user.find(marker="search-since").type("2026-05-28T21:10:00")  # 600 s after T0: records 60..120
        user.find(marker="search-go").click()
        await user.should_see("13 matches")
        user.find(marker="search-until").type("not a time")
        user.find(marker="search-go").click()
        await user.should_see("is not a time")


async def test_analysis_page_shows_templates_alerts_and_rates(view: CollectorView) -> None:
    async with user_simulation(root=collector_root(view)) as user:
        await user.open("/analysis")
        await user.should_see("1–2 of 2")  # the templates table's pager, once the page has read
        [table] = user.find(marker="analysis-template-table").elements
        assert isinstance(table, ui.table)
        templates = {r["template"]: r["count"] for r in table.rows}
        assert templates == {"GET /orders 200 <*>": "192", "payment failed <*>": "48"}
        [alerts] = user.find(marker="analysis-alert-table").elements
        assert isinstance(alerts, ui.table)
        assert {r["kind"] for r in alerts.rows} == {"new template"}  # warm-up 0: both templates alert
        [chart] = user.find(marker="analysis-rates").elements
        assert isinstance(chart, ui.echart)
        assert sorted(s["name"] for s in chart.options["series"]) == ["edge-1", "edge-2"]
        user.find(marker="analysis-q").type("payment")
        user.find(marker="analysis-go").click()
        await user.should_see("1–1 of 1")


async def test_analysis_shares_trends_and_rates_read_right(view: CollectorView) -> None:
    async with user_simulation(root=collector_root(view)) as user:
        await user.open("/analysis")
        await user.should_see("1–2 of 2")
        [every] = user.find(marker="analysis-template-table").elements
        [fresh] = user.find(marker="analysis-new-table").elements
        assert isinstance(every, ui.table) and isinstance(fresh, ui.table)
        shares = {r["template"]: r["share"] for r in every.rows}
        assert shares == {"GET /orders 200 <*>": "80.0%", "payment failed <*>": "20.0%"}
        # the new templates (every record of them is in the interval) show the same share, not 0.0%
        assert {r["template"]: r["share"] for r in fresh.rows} == shares
        for r in [*every.rows, *fresh.rows]:  # 24 hours, the newest holding every record: a full block
            assert len(r["trend"]) == 24 and r["trend"].endswith("█") and set(r["trend"][:-1]) == {"▁"}
            assert r["trend_title"].endswith(" " + r["count"])
        [chart] = user.find(marker="analysis-rates").elements
        assert isinstance(chart, ui.echart)
        records_ms = (T0 + 10 * NS) // 10**6, (T0 + 1200 * NS) // 10**6
        x = chart.options["xAxis"]
        assert x["min"] < records_ms[0] and records_ms[1] < x["max"] < records_ms[1] + 4 * 60_000
        assert all(s["showSymbol"] for s in chart.options["series"])  # a single window still shows

        user.find(marker="analysis-interval").click()
        user.find("last 24h").click()  # 20 minutes of records in a day: read again at 1-minute windows
        for _ in range(150):
            points = [len(s["data"]) for s in chart.options["series"]]
            if points and min(points) >= 20:
                break
            await asyncio.sleep(0.02)
        assert points == [21, 21], points


def test_sparkline_scales_per_template_and_keeps_empty_hours_visible() -> None:
    assert analysis_page.sparkline([0, 0, 0]) == "▁▁▁"
    assert analysis_page.sparkline([0, 1, 7, 0]) == "▁▂█▁"  # any record at all lifts an hour off the floor
    assert analysis_page.sparkline([500, 1000]) == analysis_page.sparkline([5, 10]) == "▅█"


async def test_files_page_lists_and_links_the_download(view: CollectorView) -> None:
    sha = hashlib.sha256(CONTENT).hexdigest()
    async with user_simulation(root=collector_root(view)) as user:
        await user.open("/files")
        await user.should_see("1–1 of 1")
        [table] = user.find(marker="files-table").elements
        assert isinstance(table, ui.table)
        [only] = table.rows
        assert (
            only["path"] == "/data/out/report.csv"
            and only["sha256"] == sha
            and only["content"] == "/api/files/edge-1/files/1/content"
        )
        # a long path is cut in its cell with the whole path on hover; the sha256 never is
        assert {"body-cell-path", "body-cell-download"} <= set(table.slots)
        user.find(marker="files-name").type("nothing-like-this")
        user.find(marker="files-go").click()
        await user.should_see("nothing matches")
    app = FastAPI()
    app.include_router(files_router(view))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://127.0.0.1") as client:
        got = await client.get(only["content"])
    assert got.status_code == 200 and got.content == CONTENT
    assert got.headers["x-logferry-sha256"] == sha and "report.csv" in got.headers["content-disposition"]
