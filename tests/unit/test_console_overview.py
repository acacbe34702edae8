"""The relay console's Overview: rates in and out, lag to the collector, and the live charts, on a real
journal with real counters (no browser): the figures shown are the ones ``GET /api/rates`` answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.storage import Storage
from nicegui.testing.user_simulation import user_simulation

from logferry.api.launch import RelayView
from logferry.api.rates import RateHistory, Throughput
from logferry.api.routes_status import relay_rates
from logferry.console.mount import relay_root
from logferry.model import Fate, Level, make_record
from logferry.store.journal import Decision
from tests.unit.console_views import relay_view


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RelayView]:
    monkeypatch.setattr(Storage, "path", tmp_path / "nicegui")
    async with relay_view(tmp_path) as v:
        records = [make_record(s, 1_000 * s, int(Level.INFO), "h", "/p", f"line {s}") for s in (1, 2, 3)]
        await v.journal.commit("edge-1", [Decision(r, Fate.FORWARDED) for r in records])
        v.peers.opened("edge-1", "127.0.0.1:40001")
        v.peers.received("edge-1", 3)
        yield v


async def test_rates_come_from_the_counters_and_the_lag_from_the_outbox(view: RelayView) -> None:
    clock = FakeClock()
    view.rates = RateHistory(view.throughput, interval_s=2.0, clock=clock)
    view.rates.sample()
    view.throughput.came_in(2_000, 400_000)
    view.throughput.went_out(1_000, 100_000)
    clock.now += 2.0
    view.rates.sample()
    rates = await relay_rates(view)
    assert (rates.latest.records_in, rates.latest.bytes_in) == (1_000.0, 200_000.0)
    assert (rates.latest.records_out, rates.latest.bytes_out) == (500.0, 50_000.0)
    assert rates.totals.records_in == 2_000 and len(rates.history) == 1
    assert rates.lag.records == 3 and rates.lag.oldest_unacked_ns is not None and rates.lag.lag_s >= 0

    async with user_simulation(root=relay_root(view)) as user:
        await user.open("/")
        await user.should_see(marker="stat-rate-in", content="1,000 rec/s · 195.3 KiB/s")
        await user.should_see(marker="stat-rate-out", content="500 rec/s · 48.8 KiB/s")
        await user.should_see(marker="stat-lag", content="records unacked")
        await user.should_see(marker="stat-outbox", content="3 records · 1 batches")
        [devices] = user.find(marker="devices-table").elements
        assert isinstance(devices, ui.table)
        [device] = devices.rows
        assert (device["source"], device["address"]) == ("edge-1", "127.0.0.1:40001")
        assert device["last_seen"].startswith("20")  # a UTC time, shown as last seen
        [chart] = user.find(marker="chart-records").elements
        assert isinstance(chart, ui.echart)
        series_in, series_out = chart.options["series"]
        assert [p[1] for p in series_in["data"]] == [1_000.0]
        assert [p[1] for p in series_out["data"]] == [500.0]


async def test_a_drained_outbox_has_no_lag(view: RelayView) -> None:
    pending = await view.journal.outbox_pending(0, 10)
    await view.journal.outbox_ack([b.id for b in pending])
    rates = await relay_rates(view)
    assert rates.lag.oldest_unacked_ns is None and rates.lag.lag_s == 0
    assert rates.latest.records_in == 0  # before two samples: zeros, not an error
    async with user_simulation(root=relay_root(view)) as user:
        await user.open("/")
        await user.should_see(marker="stat-lag", content="none: the collector has everything")


def test_the_rate_history_is_a_bounded_ring() -> None:
    clock = FakeClock()
    counters = Throughput()
    history = RateHistory(counters, interval_s=1.0, keep=3, clock=clock)
    assert history.sample() is None  # the first sample only sets the baseline
    for _ in range(5):
        counters.came_in(10, 100)
        clock.now += 1.0
        history.sample()
    assert len(history.history()) == 3 and history.latest().records_in == 10.0
    clock.now += 1.0
    assert history.sample() == history.latest() and history.latest().records_in == 0.0
