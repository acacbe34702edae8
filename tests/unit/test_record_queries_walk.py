"""The time-first plan of ``record_queries.search`` for common words gives exactly what the FTS-driven plan
gives — same rows, same order, same pages — even when records arrive far out of time order (the plan's
speed relies on arrival following time; its answer must not), with every filter, and when it gives up."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from logferry.model import Level, make_record
from logferry.store import record_queries as rq
from logferry.store.record_queries import RecordFilter, RecordQueries
from logferry.store.records import RecordStore
from logferry.store.sqlite import Durability

NS = 1_000_000_000
T0 = 1_780_000_000 * NS
WORDS = ("alpha", "beta", "gamma", "delta")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RecordStore]:
    s = await RecordStore.open(tmp_path / "records.db", Durability.NORMAL)
    rng = random.Random(3)
    for source in ("edge-1", "edge-2"):
        records = []
        for i in range(1, 1501):
            # Arrival order is seq order; record times are mostly increasing, some hours late or early, and
            # some records share a time (ties are ordered by arrival, newest first).
            jitter = rng.choice((0, 0, 0, -3600, 3600, 7)) * NS
            words = " ".join(w for w in WORDS if rng.random() < 0.5) or "none"
            level = int(Level.ERROR if i % 5 == 0 else Level.INFO)
            records.append(make_record(i, T0 + (i // 3) * NS + jitter, level, "h", "/p", f"{words} n={i}"))
        await s.commit("relay-1", source, records)
    await s.index_pending(10_000)
    yield s
    await s.close()


FILTERS = [
    RecordFilter(text="alpha"),
    RecordFilter(text="alpha AND beta"),
    RecordFilter(text='"beta gamma"'),
    RecordFilter(text="gam*", source="edge-2"),
    RecordFilter(text="delta", level_max=int(Level.ERROR)),
    RecordFilter(text="alpha", ts_min_ns=T0 + 100 * NS, ts_max_ns=T0 + 300 * NS),
    RecordFilter(text="beta", ts_min_ns=T0 + 3000 * NS),
    RecordFilter(text="none"),
]


def _keys(found: list[rq.StoredRecord]) -> list[tuple[str, int]]:
    return [(f.source, f.record.seq) for f in found]


@pytest.mark.parametrize("flt", FILTERS, ids=[f"{f.text}" for f in FILTERS])
async def test_time_first_plan_equals_fts_driven_plan(
    store: RecordStore, flt: RecordFilter, monkeypatch: pytest.MonkeyPatch
) -> None:
    q = RecordQueries(store)
    monkeypatch.setattr(rq, "RARE_MATCHES", 10**9)  # every word is rare: the FTS-driven plan
    expected = [_keys(await q.search(flt, 50, offset)) for offset in (0, 50, 400)]
    assert expected[0]
    monkeypatch.setattr(rq, "RARE_MATCHES", 5)  # every word is common: the time-first plan
    monkeypatch.setattr(rq, "WALK_CHUNK", 37)  # many small steps, ties across step boundaries
    assert [_keys(await q.search(flt, 50, offset)) for offset in (0, 50, 400)] == expected
    monkeypatch.setattr(rq, "MAX_WALK", 40)  # gives up early: the FTS-driven plan answers
    assert [_keys(await q.search(flt, 50, offset)) for offset in (0, 50, 400)] == expected
