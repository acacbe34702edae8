"""Search, histogram and facets of ``store/record_queries.py`` on a real record store: field filters, time
range (inclusive since, exclusive until), paging, bucket counts and widths, facet counts, the scan bound, and
the rowid bound that a time range puts on a full-text query."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from logferry.model import Level, make_record
from logferry.store import record_queries as rq
from logferry.store.record_queries import RecordFilter, RecordQueries
from logferry.store.records import RecordStore, SearchQueryError
from logferry.store.sqlite import Durability

NS = 1_000_000_000
T0 = 1_780_000_200 * NS  # a 5-minute boundary


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RecordStore]:
    s = await RecordStore.open(tmp_path / "records.db", Durability.NORMAL)
    # 120 records, one every 30 s over an hour: every 4th an error on host b, the others info on host a.
    for source in ("edge-1", "edge-2"):
        records = [
            make_record(i, T0 + (i - 1) * 60 * NS + (30 * NS if source == "edge-2" else 0),
                        int(Level.ERROR if i % 4 == 0 else Level.INFO), "b" if i % 4 == 0 else "a",
                        "/var/log/app.log" if source == "edge-1" else "/var/log/db.log",
                        f"payment failed order={i}" if i % 4 == 0 else f"GET /orders 200 n={i}")
            for i in range(1, 61)
        ]  # fmt: skip
        await s.commit("relay-1", source, records)
    await s.index_pending(10_000)
    yield s
    await s.close()


async def test_search_filters_time_range_and_pages(store: RecordStore) -> None:
    q = RecordQueries(store)
    every = await q.search(RecordFilter(), 1000)
    assert len(every) == 120 and every[0].record.ts_ns > every[-1].record.ts_ns  # newest first
    errors = await q.search(RecordFilter(text="payment", level_max=int(Level.ERROR), host="b"), 1000)
    assert len(errors) == 30 and {f.record.host for f in errors} == {"b"}
    window = RecordFilter(ts_min_ns=T0 + 10 * 60 * NS, ts_max_ns=T0 + 20 * 60 * NS)
    inside = await q.search(window, 1000)
    assert len(inside) == 20  # minutes 10..19 of both sources: since inclusive, until exclusive
    assert min(f.record.ts_ns for f in inside) == T0 + 10 * 60 * NS
    page1, page2 = await q.search(window, 15, 0), await q.search(window, 15, 15)
    assert len(page1) == 15 and len(page2) == 5
    assert not {f.record.seq for f in page1 if f.source == "edge-1"} & {
        f.record.seq for f in page2 if f.source == "edge-1"
    }
    by_path = await q.search(RecordFilter(path="/var/log/db.log", text="payment"), 1000)
    assert len(by_path) == 15 and {f.source for f in by_path} == {"edge-2"}
    with pytest.raises(SearchQueryError, match="invalid search query"):
        await q.search(RecordFilter(text='"unclosed'), 10)


async def test_histogram_buckets_cover_the_range(store: RecordStore) -> None:
    q = RecordQueries(store)
    h = await q.histogram(RecordFilter(ts_min_ns=T0, ts_max_ns=T0 + 3600 * NS), buckets=12)
    assert h.width_s == 300 and len(h.buckets) == 12 and h.start_ns == T0
    assert [b.count for b in h.buckets] == [10] * 12 and h.total == 120 and not h.partial
    errors = await q.histogram(RecordFilter(text="payment", ts_min_ns=T0, ts_max_ns=T0 + 3600 * NS), 12)
    assert sum(b.count for b in errors.buckets) == 30
    whole = await q.histogram(RecordFilter(), 60)  # no range: the stored records' span
    assert whole.total == 120 and whole.width_s == 60 and whole.start_ns == T0
    empty = await q.histogram(RecordFilter(ts_min_ns=T0 - 600 * NS, ts_max_ns=T0), 10)
    assert empty.total == 0 and len(empty.buckets) == 10


async def test_facets_count_values_and_say_when_bounded(store: RecordStore) -> None:
    q = RecordQueries(store)
    f = await q.facets(RecordFilter(text="payment"))
    assert {v.value: v.count for v in f.fields["source"]} == {"edge-1": 15, "edge-2": 15}
    assert [(v.value, v.count) for v in f.fields["level"]] == [(int(Level.ERROR), 30)]
    assert [(v.value, v.count) for v in f.fields["host"]] == [("b", 30)]
    assert f.scanned == 30 and not f.partial
    bounded = await RecordQueries(store, max_scan=50).facets(RecordFilter())
    assert bounded.partial and sum(v.count for v in bounded.fields["source"]) == 50
    h = await RecordQueries(store, max_scan=50).histogram(RecordFilter(), 60)
    assert h.partial and h.total == 50 and h.buckets[-1].count > 0 and h.buckets[0].count == 0  # newest kept


async def test_a_time_range_bounds_the_full_text_scan_by_arrival(store: RecordStore) -> None:
    first, last = await store.read_with(
        lambda c: c.execute("SELECT MIN(id), MAX(id) FROM records").fetchone()
    )
    assert await store.read_with(lambda c: rq.first_rowid_received(c, 0)) == first
    assert await store.read_with(lambda c: rq.first_rowid_received(c, 2**62)) == last + 1
    assert rq.bucket_width_s(3600 * NS, 60) == 60 and rq.bucket_width_s(30 * 86400 * NS, 60) == 43200


async def test_source_counts_are_public(store: RecordStore) -> None:
    counts = await store.source_counts()
    assert [(c.source, c.count, c.max_seq) for c in counts] == [("edge-1", 60, 60), ("edge-2", 60, 60)]
