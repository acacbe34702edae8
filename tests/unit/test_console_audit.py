"""The Audit page and the audit log's search (text, action, operator, time) on a real audit log, through
the same filter ``GET /api/audit`` builds; the page is driven by NiceGUI's ``User`` simulation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.storage import Storage
from nicegui.testing.user import User
from nicegui.testing.user_simulation import user_simulation

from logferry.api.launch import RelayView
from logferry.api.problems import ApiError
from logferry.api.routes_audit import audit_filter
from logferry.console.mount import relay_root
from logferry.store.audit import AuditFilter
from tests.unit.console_views import relay_view


@pytest.fixture
async def view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RelayView]:
    monkeypatch.setattr(Storage, "path", tmp_path / "nicegui")
    async with relay_view(tmp_path) as v:
        for who, action, target, n in (
            ("kim", "held.release", {"keys": ["edge-1:4"]}, 1),
            ("lee", "held.delete", {"filter": {"rule": "hold-cards"}}, 120),
            ("kim", "missing.resend", {"ids": [3, 4]}, 2),
        ):
            entry = await v.audit.begin(who, action, target)
            await v.audit.finish(entry, n)
        failed = await v.audit.begin("lee", "reconcile", {})
        await v.audit.finish(failed, 0, error="ReconcileUnavailable: not connected")
        yield v


async def test_store_filters(view: RelayView) -> None:
    audit = view.audit
    assert await audit.count(AuditFilter(operator="kim")) == 2
    assert await audit.count(AuditFilter(action="held.")) == 2  # a prefix ending in "."
    assert await audit.count(AuditFilter(action="held")) == 0  # exact otherwise
    assert await audit.count(AuditFilter(q="hold-cards", operator="lee")) == 1
    assert await audit.count(AuditFilter(since_ns=time.time_ns() + 10**9)) == 0
    assert await audit.count(audit_filter(None, None, None, "2020-01-01T00:00:00Z", None)) == 4
    with pytest.raises(ApiError, match="until must be later"):
        audit_filter(None, None, None, "2026-01-02", "2026-01-01")
    assert await audit.operators_and_actions() == (
        ["kim", "lee"],
        ["held.delete", "held.release", "missing.resend", "reconcile"],
    )


async def rows_when(user: User, n: int, operator: str = "") -> list[dict[str, object]]:
    """The table's rows once it shows ``n`` rows (all by ``operator`` if given): a refresh follows a click."""
    for _ in range(150):
        [table] = user.find(marker="audit-table").elements
        assert isinstance(table, ui.table)
        if len(table.rows) == n and all(r["operator"] == operator for r in table.rows if operator):
            return list(table.rows)
        await asyncio.sleep(0.02)
    raise AssertionError(f"the audit table never showed {n} rows")


async def test_audit_page_searches_by_text_action_operator_and_time(view: RelayView) -> None:
    async with user_simulation(root=relay_root(view)) as user:
        await user.open("/audit")
        await user.should_see("1–4 of 4")
        rows = await rows_when(user, 4)
        assert [r["action"] for r in rows] == ["reconcile", "missing.resend", "held.delete", "held.release"]
        assert rows[0]["state"] == "failed" and "not connected" in str(rows[0]["detail"])
        assert rows[2]["count"] == "120" and "hold-cards" in str(rows[2]["target"])

        user.find(marker="audit-operator").click()
        user.find("kim").click()
        user.find(marker="audit-search").click()
        await user.should_see("1–2 of 2")

        user.find(marker="audit-action").click()
        user.find("missing.resend").click()
        user.find(marker="audit-search").click()
        [only] = await rows_when(user, 1)
        assert only["operator"] == "kim" and only["action"] == "missing.resend"

        user.find(marker="audit-action").click()
        user.find("any action").click()
        user.find(marker="audit-operator").click()
        user.find("any operator").click()
        user.find(marker="audit-q").type("hold-cards")
        user.find(marker="audit-search").click()
        [match] = await rows_when(user, 1, operator="lee")
        assert match["action"] == "held.delete"

        user.find(marker="audit-q").clear()
        user.find(marker="audit-since").type("2999-01-01T00:00:00")
        user.find(marker="audit-search").click()
        await user.should_see("nothing matches")
        user.find(marker="audit-since").clear().type("not a time")
        user.find(marker="audit-search").click()
        await user.should_see("is not a time")
        user.find(marker="audit-since").clear()
        user.find(marker="audit-quick").click()
        user.find("last hour").click()
        user.find(marker="audit-search").click()
        await user.should_see("1–4 of 4")
