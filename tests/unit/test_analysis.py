"""The analysis miner on real stores: templates and their counts, hourly buckets, new-template and
error-rate alerts, and a restart (with and without a saved drain3 state) that resumes without counting a
record twice or mining it again."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from logferry.analysis import queries as aq
from logferry.analysis.alerts import AlertKind, complete_through
from logferry.analysis.follower import Follower
from logferry.analysis.settings import AnalysisSettings
from logferry.analysis.store import AnalysisStore, CursorMoved
from logferry.api.metrics import SnapshotCollector, analysis_samples
from logferry.model import Level, make_record
from logferry.store.records import RecordStore
from logferry.store.sqlite import Durability

NS = 1_000_000_000
T0 = 1_780_002_000 * NS  # 10 s steps from here; an hour boundary is at 1_780_002_000 (x 3600)
SETTINGS_KW: dict[str, Any] = dict(batch_rows=70, window_s=60, baseline_windows=10, error_rate_factor=3.0,
                                   error_rate_min=0.2, min_window_records=5, warmup_records=100)  # fmt: skip
SETTINGS = AnalysisSettings(**SETTINGS_KW)


def message(i: int) -> tuple[int, str]:
    if i % 10 == 0:
        return int(Level.WARNING), f"db slow query took {i} ms table=orders"
    return int(Level.INFO), f"GET /api/orders 200 user{i % 7} took {i % 90} ms"


async def add(store: RecordStore, first: int, last: int, source: str = "edge-1",
              level_msg: tuple[int, str] | None = None) -> None:  # fmt: skip
    records = []
    for i in range(first, last + 1):
        level, msg = level_msg or message(i)
        records.append(make_record(i, T0 + i * 10 * NS, level, "h", "/app.log", msg))
    await store.commit("relay-1", source, records)


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[RecordStore, AnalysisStore]]:
    records = await RecordStore.open(tmp_path / "records.db", Durability.NORMAL)
    analysis = await AnalysisStore.open(tmp_path, Durability.NORMAL)
    yield records, analysis
    await analysis.close()
    await records.close()


async def drain(f: Follower) -> int:
    total = 0
    while n := await f.step():
        total += n
    return total


def clock(at_s: int) -> int:
    return at_s * NS


async def test_templates_counts_and_trend(stores: tuple[RecordStore, AnalysisStore]) -> None:
    records, analysis = stores
    await add(records, 1, 500)
    follower = Follower(records, analysis, SETTINGS, clock_ns=lambda: T0 + 6000 * NS)
    assert await drain(follower) == 500 and await follower.lag() == 0
    page = await analysis.read_with(lambda c: aq.templates(c, None, None, "", 10, 0))
    assert page.records == 500 and page.total == 2
    top, second = page.items
    assert top.count == 450 and "GET /api/orders 200" in top.template and "<*>" in top.template
    assert second.count == 50 and second.template == "db slow query took <*> ms table=orders"
    assert top.share == pytest.approx(0.9) and second.first_ns == T0 + 100 * NS
    assert second.last_ns == T0 + 5000 * NS
    assert sum(top.trend) + sum(second.trend) == 500  # the 24 hours up to the newest hour hold them all
    status = await analysis.read_with(aq.status)
    assert (status.cursor, status.mined, status.templates) == (500, 500, 2)
    assert status.alerts == {"new_template": 0, "error_rate": 0}  # both templates came during warm-up


async def test_new_template_and_error_rate_alerts(stores: tuple[RecordStore, AnalysisStore]) -> None:
    records, analysis = stores
    await add(records, 1, 300)  # 50 minutes of ~10 % warnings, no errors: the baseline
    now = T0 + 4000 * NS
    follower = Follower(records, analysis, SETTINGS, clock_ns=lambda: now)
    await drain(follower)
    # Minute 50..51: every record an error with a message never seen before, then normal traffic again.
    await add(records, 301, 312, level_msg=(int(Level.ERROR), "payment gateway refused the card"))
    await add(records, 313, 330)
    await drain(follower)
    found, total = await analysis.read_with(lambda c: aq.alerts(c, None, None, 10, 0))
    kinds = sorted(a.kind.value for a in found)
    assert kinds == ["error_rate", "new_template"], found
    rate = next(a for a in found if a.kind is AlertKind.ERROR_RATE)
    assert rate.source == "edge-1" and rate.value >= 0.5 and rate.value > 3 * rate.baseline
    new = next(a for a in found if a.kind is AlertKind.NEW_TEMPLATE)
    assert "payment gateway refused the card" in new.detail
    fresh = await analysis.read_with(lambda c: aq.new_templates(c, T0 + 3000 * NS, 10))
    assert [t.template for t in fresh] == ["payment gateway refused the card"]
    # Judging again (the clock moved on, nothing new) raises nothing twice.
    assert await analysis.judge_quiet(SETTINGS, now + 3600 * NS) == 0
    assert (await analysis.read_with(lambda c: aq.alerts(c, None, None, 10, 0)))[1] == total
    series = await analysis.read_with(lambda c: aq.error_rates(c, T0, T0 + 4000 * NS, 60))
    assert [s.source for s in series] == ["edge-1"] and sum(p.errors for p in series[0].points) == 12


async def test_a_quiet_source_is_judged_by_the_clock() -> None:
    assert complete_through(newest_s=600, now_s=650, width_s=60) == 540  # window 600 still open
    assert complete_through(newest_s=600, now_s=780, width_s=60) == 600  # its end is a window past


@pytest.mark.parametrize("saved", [True, False])
async def test_restart_resumes_without_counting_twice(
    tmp_path: Path, stores: tuple[RecordStore, AnalysisStore], saved: bool
) -> None:
    records, analysis = stores
    await add(records, 1, 400)
    first = Follower(records, analysis, SETTINGS, clock_ns=lambda: T0)
    assert await first.step() == 70
    assert await first.step() == 70
    if saved:
        await first.save()  # a snapshot at 140; the next steps are replayed after the restart
    assert await first.step() == 70  # 210 mined, then the process "dies" (no save)
    before = await analysis.read_with(lambda c: aq.templates(c, None, None, "", 10, 0))

    second = Follower(records, analysis, SETTINGS, clock_ns=lambda: T0)
    await second.resume()
    assert second.cursor == 210
    with pytest.raises(CursorMoved):  # a batch mined from a stale cursor is refused, not double counted
        await analysis.commit(0, second.miner.mine([]), SETTINGS)  # type: ignore[union-attr]
    assert await drain(second) == 190
    after = await analysis.read_with(lambda c: aq.templates(c, None, None, "", 10, 0))
    assert after.records == 400 and sum(t.count for t in after.items) == 400
    assert [t.id for t in after.items] == [t.id for t in before.items]  # the same templates, resumed

    # The same 400 records mined in one go give exactly the same counts.
    other = await AnalysisStore.open(tmp_path / "fresh", Durability.NORMAL)
    try:
        await drain(Follower(records, other, SETTINGS, clock_ns=lambda: T0))
        again = await other.read_with(lambda c: aq.templates(c, None, None, "", 10, 0))
        assert [(t.template, t.count) for t in again.items] == [(t.template, t.count) for t in after.items]
    finally:
        await other.close()


async def test_mining_speed(stores: tuple[RecordStore, AnalysisStore]) -> None:
    """Records mined (and committed) per second, printed for the report; a floor catches a regression."""
    records, analysis = stores
    await add(records, 1, 20_000)
    follower = Follower(records, analysis, AnalysisSettings(batch_rows=2000), clock_ns=lambda: T0)
    started = time.perf_counter()
    assert await drain(follower) == 20_000
    rate = 20_000 / (time.perf_counter() - started)
    snap_started = time.perf_counter()
    await follower.save()
    print(f"mined {rate:,.0f} records/s; snapshot {time.perf_counter() - snap_started:.3f} s")
    assert rate > 2_000


DAY_NS = 86_400 * NS
OLD = T0 - 40 * DAY_NS  # 40 days before the "recent" traffic: past a 30-day retention


async def add_at(store: RecordStore, base_ns: int, first: int, last: int,
                 level_msg: tuple[int, str] | None = None) -> None:  # fmt: skip
    records = []
    for i in range(first, last + 1):
        level, msg = level_msg or message(i)
        records.append(make_record(i, base_ns + i * 10 * NS, level, "h", "/app.log", msg))
    await store.commit("relay-1", "edge-1", records)


async def table_rows(analysis: AnalysisStore) -> dict[str, int]:
    def run(conn: sqlite3.Connection) -> dict[str, int]:
        tables = ("templates", "template_hours", "source_windows", "alerts")
        return {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables}

    return await analysis.read_with(run)


async def metrics_text(follower: Follower) -> str:
    """The analysis part of the collector's /metrics, as Prometheus would read it."""
    collector = SnapshotCollector()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    collector.samples = await analysis_samples(follower)
    return generate_latest(registry).decode()


async def test_retention_prunes_old_rows_and_keeps_recent_counts(
    stores: tuple[RecordStore, AnalysisStore],
) -> None:
    records, analysis = stores
    now = [OLD + 4000 * NS]  # a fake clock the test moves
    settings = AnalysisSettings(**{**SETTINGS_KW, "keep_days": 30})
    follower = Follower(records, analysis, settings, clock_ns=lambda: now[0])
    # 40 days ago: a baseline, then an error spike with a new message (alerts, raised then).
    await add_at(records, OLD, 1, 300)
    await add_at(records, OLD, 301, 312, level_msg=(int(Level.ERROR), "payment gateway refused the card"))
    await add_at(records, OLD, 313, 330)
    await drain(follower)
    assert (await analysis.read_with(lambda c: aq.alerts(c, None, None, 10, 0)))[1] >= 2
    # Today: ordinary traffic only.
    now[0] = T0 + 8000 * NS
    await add_at(records, T0, 331, 700)
    await drain(follower)
    since, until = T0, T0 + 8000 * NS
    recent = await analysis.read_with(lambda c: aq.templates(c, since, until, "", 10, 0))
    rates = await analysis.read_with(lambda c: aq.error_rates(c, since, until, 60))
    every = await analysis.read_with(lambda c: aq.templates(c, None, None, "", 10, 0))
    before = await table_rows(analysis)

    # Nothing is old enough yet by a clock 40 days back; by today's clock the old era goes.
    now[0] = OLD + 5000 * NS
    assert await follower.prune() == 0
    now[0] = T0 + 8000 * NS
    deleted = await follower.prune()
    after = await table_rows(analysis)
    assert deleted == sum(before.values()) - sum(after.values()) > 0
    assert f"logferry_collector_analysis_pruned_rows_total {deleted}.0" in await metrics_text(follower)
    assert after["templates"] == before["templates"] >= 3  # templates stay, with all-time counts
    assert after["alerts"] == 0  # all were raised 40 days ago
    cutoff_s = (T0 + 8000 * NS) // NS - 30 * 86_400

    def oldest(conn: sqlite3.Connection) -> tuple[int, int]:
        (hour,) = conn.execute("SELECT MIN(hour) FROM template_hours").fetchone()
        (start,) = conn.execute("SELECT MIN(start) FROM source_windows").fetchone()
        return int(hour), int(start)

    hour, start = await analysis.read_with(oldest)
    assert hour > cutoff_s - 3600 and start > cutoff_s - 60 and hour <= T0 // NS + 3600
    # What is shown for a recent interval, and all-time template counts and first seen, are unchanged.
    assert await analysis.read_with(lambda c: aq.templates(c, since, until, "", 10, 0)) == recent
    assert await analysis.read_with(lambda c: aq.error_rates(c, since, until, 60)) == rates
    kept = await analysis.read_with(lambda c: aq.templates(c, None, None, "", 10, 0))
    assert [(t.id, t.count, t.first_ns, t.last_ns) for t in kept.items] == [
        (t.id, t.count, t.first_ns, t.last_ns) for t in every.items
    ]
    assert min(t.first_ns for t in kept.items) == OLD + 10 * NS
    assert await follower.prune() == 0  # a second pass finds nothing
    assert f"logferry_collector_analysis_pruned_rows_total {deleted}.0" in await metrics_text(follower)


async def test_retention_works_in_bounded_batches_and_can_be_off(
    stores: tuple[RecordStore, AnalysisStore],
) -> None:
    records, analysis = stores
    await add_at(records, OLD, 1, 400)
    await drain(Follower(records, analysis, SETTINGS, clock_ns=lambda: OLD + 5000 * NS))
    before = await table_rows(analysis)
    off = AnalysisSettings(**{**SETTINGS_KW, "keep_days": 0})
    assert await Follower(records, analysis, off, clock_ns=lambda: T0).prune() == 0
    # One transaction deletes at most `limit` rows per table (here: 1 hour row, 1 window).
    assert await analysis.prune(T0 // NS, 60, 1) == 2
    assert sum(before.values()) - sum((await table_rows(analysis)).values()) == 2


async def test_mining_waits_while_search_catches_up(stores: tuple[RecordStore, AnalysisStore]) -> None:
    records, analysis = stores
    await add(records, 1, 100)
    behind = [True]
    follower = Follower(records, analysis, SETTINGS, clock_ns=lambda: T0, catching_up=lambda: behind[0])
    task = asyncio.create_task(follower.run())
    try:
        await asyncio.sleep(0.5)  # well under CATCH_UP_WAIT_S: not a record mined yet
        assert follower.mined_total == 0
        behind[0] = False
        for _ in range(500):  # within 10 s: it mines as soon as search is not behind any more
            if follower.mined_total == 100:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert await analysis.cursor() == 100
