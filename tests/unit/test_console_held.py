"""The relay console's Held page and actions, on a real journal and audit log (no browser, no network):
NiceGUI's ``User`` simulation drives the page; the actions are also called directly.

What must hold: the table shows one page of real held items and the total; filters narrow it; every
release/delete asks first with the count, moves exactly what was asked, and is audited as the REST route
audits it (operator "console"); selected keys that are no longer held change nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from nicegui import ui
from nicegui.storage import Storage
from nicegui.testing.user import User
from nicegui.testing.user_simulation import user_simulation

from logferry.api.launch import RelayView
from logferry.console import access, actions, held
from logferry.console.actions import HeldVerb, HeldView, StaleKeys
from logferry.console.layout import PAGE_SIZE
from logferry.console.mount import relay_root
from logferry.model import Fate, Level, make_record
from logferry.store.journal import Decision
from tests.unit.console_views import relay_view


def decision(seq: int, msg: str, level: Level, rule: str = "") -> Decision:
    record = make_record(seq, 1_000 * seq, int(level), "host-a", "/var/log/app.log", msg, {"n": str(seq)})
    return Decision(record, Fate.HELD if rule else Fate.FORWARDED, rule)


@pytest.fixture
async def view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RelayView]:
    monkeypatch.setattr(Storage, "path", tmp_path / "nicegui")  # NiceGUI's own files stay in tmp
    async with relay_view(tmp_path) as v:
        await _commit_held(v)
        yield v


async def _commit_held(view: RelayView) -> None:
    """Four held records (three by hold-cards, one by hold-secrets) and one forwarded, on two sources."""
    journal = view.journal
    await journal.commit("edge-1", [
        decision(1, "charge card=4111111111111111 order=a1", Level.ERROR, "hold-cards"),
        decision(2, "GET /orders 200", Level.INFO),
        decision(3, "charge card=5500000000000004 order=b2", Level.INFO, "hold-cards"),
        decision(4, "secret token=abc", Level.WARNING, "hold-secrets"),
    ])  # fmt: skip
    await journal.commit(
        "edge-2", [decision(1, "charge card=4000000000000002 order=c3", Level.ERROR, "hold-cards")]
    )


def table_rows(user: User, marker: str) -> list[dict[str, Any]]:
    [table] = user.find(marker=marker).elements
    assert isinstance(table, ui.table)
    return list(table.rows)


async def rows_when(
    user: User, marker: str, ok: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 3.0
) -> list[dict[str, Any]]:
    """The table's rows once ``ok`` holds: a refresh runs after the click returns."""
    deadline = time.monotonic() + timeout_s
    while not ok(rows := table_rows(user, marker)):
        assert time.monotonic() < deadline, f"{marker} rows never matched: {rows}"
        await asyncio.sleep(0.02)
    return rows


async def test_actions_audit_like_the_rest_route_and_refuse_stale_keys(view: RelayView) -> None:
    assert await actions.held_count(view, HeldView()) == 4
    assert await actions.held_count(view, HeldView(rule="hold-cards", level="error")) == 2
    choices = await actions.held_choices(view)
    assert (choices.rules, choices.sources) == (["hold-cards", "hold-secrets"], ["edge-1", "edge-2"])

    assert await actions.settle_held(view, HeldVerb.RELEASE, [("edge-1", 3), ("edge-1", 3)], "console") == 1
    with pytest.raises(StaleKeys, match="1 of 2 items are not held any more"):
        await actions.settle_held(view, HeldVerb.DELETE, [("edge-1", 3), ("edge-1", 4)], "console")
    assert await actions.held_count(view, HeldView()) == 3  # the stale action moved nothing

    chosen = HeldView(source="edge-2", q="order=c3")
    assert await actions.settle_held(view, HeldVerb.DELETE, chosen, "console") == 1
    entries = await view.audit.page()
    assert [(e.operator, e.action, e.state.value, e.count, e.target) for e in entries] == [
        ("console", "held.delete", "done", 1, {"filter": {"source": "edge-2", "q": "order=c3"}}),
        ("console", "held.release", "done", 1, {"keys": ["edge-1:3"]}),
    ]
    counters = await view.journal.counters()
    assert counters[("edge-1", Fate.RELEASED, "hold-cards")] == 1
    assert counters[("edge-2", Fate.PURGED, "hold-cards")] == 1


async def test_held_page_filters_and_releases_all_matching_after_confirm(
    view: RelayView, caplog: pytest.LogCaptureFixture
) -> None:
    async with user_simulation(root=relay_root(view)) as user:
        await user.open("/held")
        await user.should_see("1–4 of 4")
        assert {r["key"] for r in table_rows(user, "held-table")} == {
            "edge-1:1",
            "edge-1:3",
            "edge-1:4",
            "edge-2:1",
        }

        user.find(marker="held-q").type("card=")
        user.find(marker="held-search").click()
        await user.should_see("1–3 of 3")
        user.find(marker="held-level").click()
        user.find("error or worse").click()
        user.find(marker="held-search").click()
        await user.should_see("1–2 of 2")

        user.find(marker="release-matching").click()
        await user.should_see("Release 2 held items (all matching the filter) to the collector?")
        user.find(marker="confirm-cancel").click()
        assert await actions.held_count(view, HeldView()) == 4  # cancel does nothing

        user.find(marker="release-matching").click()
        user.find(marker="confirm-ok").click()
        await user.should_see("2 held items released to the collector")
        await user.should_see("nothing matches")
    assert await actions.held_count(view, HeldView()) == 2
    [entry] = await view.audit.page()
    assert (entry.operator, entry.action, entry.count) == ("console", "held.release", 2)
    assert entry.target == {"filter": {"q": "card=", "level": "error"}}
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_held_page_deletes_the_selected_items(view: RelayView) -> None:
    async with user_simulation(root=relay_root(view)) as user:
        await user.open("/held")
        await user.should_see("1–4 of 4")  # the page builds asynchronously: wait for its rows
        user.find(marker="delete-selected").click()
        await user.should_see("Select items in the table first")
        [table] = user.find(marker="held-table").elements
        assert isinstance(table, ui.table)
        table.selected = [r for r in table.rows if r["key"] in ("edge-1:4", "edge-2:1")]
        user.find(marker="delete-selected").click()
        await user.should_see("Delete for good 2 held items?")
        user.find(marker="confirm-ok").click()
        await user.should_see("2 held items deleted")
        assert {r["key"] for r in table_rows(user, "held-table")} == {"edge-1:1", "edge-1:3"}
    counters = await view.journal.counters()
    assert counters[("edge-1", Fate.PURGED, "hold-secrets")] == 1


async def test_overview_shows_the_journal_figures(view: RelayView) -> None:
    async with user_simulation(root=relay_root(view)) as user:
        await user.open("/")
        await user.should_see("not connected · 127.0.0.1:9")
        await user.should_see(marker="stat-held", content="4")
        [edge1, _edge2] = table_rows(user, "fates-table")
        assert (edge1["source"], edge1["held"], edge1["forwarded"]) == ("edge-1", 3, 1)


async def test_held_time_filter_quick_range_and_detail_with_redaction(view: RelayView) -> None:
    base = 1_764_064_800 * 1_000_000_000  # 2025-11-25T10:00:00Z
    at = [base, base + 3_600 * 10**9, time.time_ns() - 60 * 10**9]  # 10:00, 11:00, a minute ago
    await view.journal.commit("edge-3", [
        Decision(make_record(i + 1, ts, int(Level.ERROR), "host-t", "/t.log", f"timed {i} password=hunter2",
                             {"user": "kim"}), Fate.HELD, "hold-timed")
        for i, ts in enumerate(at)
    ])  # fmt: skip
    async with user_simulation(root=relay_root(view)) as user:
        await user.open("/held")
        await user.should_see("1–7 of 7")
        user.find(marker="held-since").type("2025-11-25T10:30:00Z")
        user.find(marker="held-until").type("2025-11-25T12:00:00")
        user.find(marker="held-search").click()
        await user.should_see("1–1 of 1")
        assert [r["key"] for r in table_rows(user, "held-table")] == ["edge-3:2"]

        user.find(marker="held-until").clear().type("yesterday")
        user.find(marker="held-search").click()
        await user.should_see("is not a time")
        user.find(marker="held-until").clear()
        user.find(marker="held-since").clear()
        user.find(marker="held-quick").click()
        user.find("last hour").click()
        user.find(marker="held-search").click()
        [recent] = await rows_when(user, "held-table", lambda rows: [r["key"] for r in rows] == ["edge-3:3"])

        user.find(marker="held-table").trigger("rowClick", [{}, recent, 0])
        await user.should_see(marker="held-detail")
        await user.should_see("hold-timed")
        await user.should_see("user = kim")
        await user.should_see("timed 2 password=hunter2")
        await user.should_see("releasing it forwards it unredacted")

        user.find(marker="delete-matching").click()
        await user.should_see("Delete for good 1 held item (all matching the filter)?")
        user.find(marker="confirm-ok").click()
        await user.should_see("1 held item deleted (audited as console)")
    [entry] = await view.audit.page()
    assert entry.action == "held.delete" and entry.count == 1
    assert set(entry.target["filter"]) == {"since"}  # the quick range is audited as the time it meant
    assert await actions.held_count(view, HeldView(source="edge-3")) == 2


async def test_a_viewer_cannot_release(view: RelayView, monkeypatch: pytest.MonkeyPatch) -> None:
    viewer = access.Person("vera", access.Role.VIEWER)
    monkeypatch.setattr(access, "who", lambda: viewer)
    async with user_simulation(root=relay_root(view)) as user:
        await user.open("/held")
        await user.should_see("1–4 of 4")
        [button] = user.find(marker="release-matching").elements
        assert not button.enabled  # a courtesy; the handler's require_operator() is the rule
        page_act = held.HeldPage(view)
        page_act.refresh = _no_refresh  # type: ignore[method-assign]
        await page_act.act(HeldVerb.RELEASE, HeldView())
        await user.should_see("vera is a viewer")
    assert await actions.held_count(view, HeldView()) == 4
    assert await view.audit.page() == []


async def test_the_pager_walks_the_pages_and_keeps_the_filter(view: RelayView) -> None:
    extra = [
        decision(100 + i, f"charge card=4111111111111111 page={i}", Level.ERROR, "hold-paged")
        for i in range(60)
    ]
    await view.journal.commit("edge-9", extra)
    async with user_simulation(root=relay_root(view)) as user:
        await user.open("/held")
        await user.should_see(f"1–{PAGE_SIZE} of 64")
        [previous] = user.find(marker="held-previous").elements
        assert not previous.enabled  # nothing before the first page
        user.find("Next").click()
        await user.should_see(f"{PAGE_SIZE + 1}–64 of 64")
        [following] = user.find(marker="held-next").elements
        assert previous.enabled and not following.enabled
        user.find(marker="held-q").type("page=")
        user.find(marker="held-search").click()  # a new search starts at the first page again
        await user.should_see(f"1–{PAGE_SIZE} of 60")
        user.find(marker="held-next").click()
        await user.should_see(f"{PAGE_SIZE + 1}–60 of 60")
        user.find("Previous").click()
        await user.should_see(f"1–{PAGE_SIZE} of 60")


async def _no_refresh() -> None:
    return None
