"""The collector console's Search page on a real record store, driven by NiceGUI's ``User`` simulation:
FTS5 query and level filter, paging by one-more-row, the "not searchable yet" note, and a bad query's
explanation instead of an error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.storage import Storage
from nicegui.testing.user_simulation import user_simulation

from logferry.api.launch import CollectorView
from logferry.config import CollectorConfig
from logferry.console.layout import PAGE_SIZE
from logferry.console.mount import collector_root
from logferry.model import Level, make_record
from logferry.roles.server import PeerTable
from logferry.store.audit import AuditLog
from logferry.store.records import RecordStore
from logferry.store.sqlite import Durability
from logferry.transport.serve import SessionCounters


@pytest.fixture
async def view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CollectorView]:
    monkeypatch.setattr(Storage, "path", tmp_path / "nicegui")
    store = await RecordStore.open(tmp_path / "records.db", Durability.NORMAL)
    audit = await AuditLog.open(tmp_path / "audit.db", Durability.NORMAL)
    records = [
        make_record(s, 1_000 * s, int(Level.ERROR if s % 10 == 0 else Level.INFO), "h", "/app.log",
                    f"payment failed order={s}" if s % 10 == 0 else f"GET /orders 200 n={s}")
        for s in range(1, PAGE_SIZE + 21)
    ]  # fmt: skip
    await store.commit("relay-1", "edge-1", records)
    await store.index_pending(10_000)
    await store.commit("relay-1", "edge-1", [make_record(999, 10**9, 6, "h", "/app.log", "late payment")])
    yield CollectorView(
        name="collector-test", token="", peers=PeerTable(), counters=SessionCounters(), audit=audit,
        store=store, config=CollectorConfig(),
    )  # fmt: skip
    await audit.close()
    await store.close()


async def test_search_pages_filters_and_explains_bad_queries(view: CollectorView) -> None:
    async with user_simulation(root=collector_root(view)) as user:
        await user.open("/")
        await user.should_see(f"1–{PAGE_SIZE}")  # every record, newest first; a next page exists
        await user.should_see("not searchable yet: 1 stored")
        [table] = user.find(marker="search-table").elements
        assert isinstance(table, ui.table)
        assert table.rows[0]["key"] == "edge-1:999" and len(table.rows) == PAGE_SIZE
        user.find(marker="search-next").click()
        await user.should_see(f"{PAGE_SIZE + 1}–{PAGE_SIZE + 21}")

        user.find(marker="search-q").type('"payment failed"')
        user.find(marker="search-level").click()
        user.find("error or worse").click()
        user.find(marker="search-go").click()
        await user.should_see("1–7 of 7")
        assert [r["key"] for r in table.rows][:2] == ["edge-1:70", "edge-1:60"]

        user.find(marker="search-q").type(' AND "unclosed')
        user.find(marker="search-go").click()
        await user.should_see('Quote words with special characters: "user=kim".')
        assert table.rows == []
