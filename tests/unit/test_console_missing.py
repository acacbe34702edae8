"""The relay console's Missing page on real stores (no browser): entries grouped by source with counts,
and "ask the device" sending the agent's session a request for exactly the chosen seqs, audited as the
REST route audits it. The agent's session is a fake that records what it was asked (a real socket is
in tests/integration/test_api_missing.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.storage import Storage
from nicegui.testing.user import User
from nicegui.testing.user_simulation import user_simulation

from logferry.api.audited import DeviceNotConnected, NothingToAsk
from logferry.api.launch import RelayView
from logferry.console import actions, missing
from logferry.console.mount import relay_root
from logferry.model import Fate, Level, make_record
from logferry.reconcile.summary import ItemKind
from logferry.store.journal import Decision
from logferry.store.missing import MissingKind
from tests.unit.console_views import relay_view


class AgentSession:
    """What the relay's serve loop hands AgentGaps for a connected agent: records each request."""

    def __init__(self) -> None:
        self.asked: list[list[tuple[int, int]]] = []

    async def __call__(self, ranges: list[tuple[int, int]]) -> None:
        self.asked.append(ranges)


@pytest.fixture
async def view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RelayView]:
    monkeypatch.setattr(Storage, "path", tmp_path / "nicegui")
    async with relay_view(tmp_path) as v:
        spans = [*range(1, 11), *range(21, 31)]  # 11..20 never arrived
        records = [make_record(s, s, int(Level.INFO), "h", "/p", f"line {s}") for s in spans]
        await v.journal.commit("dev-a", [Decision(r, Fate.FORWARDED) for r in records])
        await v.reconciler.missing.add_device_gaps("dev-a", [(16, 20)])
        found = {MissingKind.MISSING_AT_COLLECTOR: [(5, 9)], MissingKind.LOST: [(50, 50)]}
        await v.reconciler.missing.update("edge-1", ItemKind.RECORD, (1, 100), found)
        yield v


def group_rows(user: User, source: str) -> list[dict[str, object]]:
    [table] = user.find(marker=f"missing-table-{source}").elements
    assert isinstance(table, ui.table)
    return list(table.rows)


async def test_grouped_by_source_with_counts(view: RelayView) -> None:
    async with user_simulation(root=relay_root(view)) as user:
        await user.open("/missing")
        await user.should_see("3 entries in 2 sources")
        await user.should_see("dev-a — 1 entry, 5 seqs (missing at the device 1)")
        await user.should_see("edge-1 — 2 entries, 6 seqs (lost 1, missing at the collector 1)")
        assert {r["kind"] for r in group_rows(user, "edge-1")} == {"lost", "missing at the collector"}
        assert [r["range"] for r in group_rows(user, "dev-a")] == ["16–20"]


def test_kinds_read_as_words_while_the_api_keeps_its_names() -> None:
    readable = ["missing at the collector", "different at the collector", "lost", "missing at the device"]
    assert [missing.kind_text(k) for k in MissingKind] == readable
    assert [k.value for k in MissingKind] == ["missing_at_collector", "digest_mismatch", "lost",
                                              "missing_at_device"]  # fmt: skip
    # The group title counts by the API's names (its order); a kind this page does not know shows as is.
    assert missing.kinds_text({"digest_mismatch": 2, "lost": 1, "newer_kind": 3}) == (
        "different at the collector 2, lost 1, newer_kind 3"
    )


async def test_ask_the_device_for_an_entry_and_for_every_hole(view: RelayView) -> None:
    assert view.gaps is not None
    session = AgentSession()
    async with user_simulation(root=relay_root(view)) as user:
        await user.open("/missing")
        await user.should_see("3 entries in 2 sources")
        user.find(marker="ask-dev-a").click()
        await user.should_see("Ask the device dev-a to resend every hole in its seqs?")
        user.find(marker="confirm-ok").click()
        await user.should_see("dev-a not connected now")  # nothing sent, audited as failed

        view.gaps.attach("dev-a", "127.0.0.1:40002", session)
        [table] = user.find(marker="missing-table-dev-a").elements
        assert isinstance(table, ui.table)
        table.selected = list(table.rows)
        user.find(marker="ask-dev-a").click()
        await user.should_see("Ask the device dev-a to resend the 1 entry selected?")
        user.find(marker="confirm-ok").click()
        await user.should_see("Asked dev-a for 5 seqs")
    assert session.asked == [[(16, 20)]]

    asked = await actions.ask_device(view, "kim", source="dev-a")  # the REST route's function
    assert asked.ranges == {"dev-a": [(11, 20)]} and asked.seqs == 10
    assert session.asked[-1] == [(11, 20)]
    entries = await view.audit.page()
    assert [(e.operator, e.action, e.state.value, e.count, e.target) for e in entries] == [
        ("kim", "missing.ask", "done", 10, {"ids": [], "source": "dev-a"}),
        ("console", "missing.ask", "done", 5, {"ids": [entries[1].target["ids"][0]]}),
        ("console", "missing.ask", "failed", 0, {"ids": [], "source": "dev-a"}),
    ]

    view.gaps.detach("dev-a", "127.0.0.1:40002")
    with pytest.raises(DeviceNotConnected):
        await actions.ask_device(view, "kim", source="dev-a")
    with pytest.raises(NothingToAsk):  # an entry of another kind names no device hole
        lost = await view.reconciler.missing.entries(kind=MissingKind.LOST)
        await actions.ask_device(view, "kim", ids=[lost[0].id])
