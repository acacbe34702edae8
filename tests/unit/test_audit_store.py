"""The audit log: committed before the action, finished after, searchable, and it survives a reopen."""

from __future__ import annotations

from pathlib import Path

from logferry.store.audit import AuditLog, AuditState
from logferry.store.sqlite import Durability


async def test_begin_then_finish_records_who_what_how_many(tmp_path: Path) -> None:
    log = await AuditLog.open(tmp_path / "audit.db", Durability.NORMAL)
    try:
        entry = await log.begin("kim", "held.release", {"keys": ["dev-a:3"]})
        started = await log.get(entry)
        assert started is not None and started.state is AuditState.STARTED and started.count is None
        await log.finish(entry, 1)
        done = await log.get(entry)
        assert done is not None
        assert (done.operator, done.action, done.count, done.state) == (
            "kim",
            "held.release",
            1,
            AuditState.DONE,
        )
        assert done.target == {"keys": ["dev-a:3"]}
        assert done.finished_ns is not None and done.finished_ns >= done.at_ns
    finally:
        await log.close()


async def test_a_failed_action_keeps_its_error_and_a_finished_entry_is_never_rewritten(
    tmp_path: Path,
) -> None:
    log = await AuditLog.open(tmp_path / "audit.db", Durability.NORMAL)
    try:
        entry = await log.begin("ops", "held.delete", {"filter": {"rule": "hold-cards"}})
        await log.finish(entry, 3, error="StoreError: disk full")
        await log.finish(entry, 99)  # only a started entry takes an outcome
        got = await log.get(entry)
        assert got is not None and got.state is AuditState.FAILED
        assert (got.count, got.detail) == (3, "StoreError: disk full")
    finally:
        await log.close()


async def test_page_is_newest_first_and_q_searches_operator_action_and_target(tmp_path: Path) -> None:
    log = await AuditLog.open(tmp_path / "audit.db", Durability.NORMAL)
    try:
        for i in range(5):
            who = "kim" if i % 2 else "lee"
            await log.finish(await log.begin(who, "held.release", {"keys": [f"dev-{i}:1"]}), 1)
        page = await log.page(limit=2)
        assert [e.target["keys"][0] for e in page] == ["dev-4:1", "dev-3:1"]
        assert await log.count() == 5
        assert await log.count("kim") == 2
        assert [e.target["keys"][0] for e in await log.page("dev-2")] == ["dev-2:1"]
        assert await log.count("100%_") == 0  # LIKE wildcards in q are literal
        assert len(await log.page(limit=10, offset=4)) == 1
    finally:
        await log.close()


async def test_entries_survive_reopening(tmp_path: Path) -> None:
    log = await AuditLog.open(tmp_path / "audit.db")
    entry = await log.begin("kim", "held.release", {"filter": {}})
    await log.close()
    again = await AuditLog.open(tmp_path / "audit.db")
    try:
        got = await again.get(entry)
        assert got is not None and got.state is AuditState.STARTED  # outcome unknown: still visible
    finally:
        await again.close()
