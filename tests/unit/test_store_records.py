"""RecordStore: dedupe and conflicts, FTS indexing that trails storage, search, seq ranges, stats."""

from __future__ import annotations

from pathlib import Path

import pytest

from logferry.model import Record, make_record
from logferry.store.records import RecordStore, SearchQueryError
from logferry.store.sqlite import Durability


def rec(seq: int, msg: str | None = None, level: int = 6) -> Record:
    return make_record(
        seq, 1_000 + seq, level, "web1", "/var/log/nginx.log", msg or f"request {seq} ok", {"s": "1"}
    )


async def test_commit_dedupes_and_flags_conflicts(tmp_path: Path) -> None:
    store = await RecordStore.open(tmp_path / "r.db", Durability.NORMAL)
    first = await store.commit("relay1", "dev1", [rec(s) for s in range(1, 11)])
    assert (first.ranges, first.stored, first.duplicates, first.conflicts) == ([(1, 10)], 10, 0, 0)
    batch = [rec(s) for s in range(8, 13)] + [rec(5, "tampered")]
    again = await store.commit("relay2", "dev1", batch)
    assert (again.ranges, again.stored, again.duplicates, again.conflicts) == ([(5, 5), (8, 12)], 2, 3, 1)
    assert await store.count() == 12 == await store.count("dev1")
    assert await store.count("nobody") == 0
    kept = await store.get("dev1", 5)
    assert kept is not None and kept.record == rec(5) and kept.relay == "relay1"  # never overwritten
    [conflict] = await store.conflicts()
    assert conflict.record == rec(5, "tampered") and conflict.relay == "relay2"
    await store.commit("relay2", "dev1", [rec(5, "tampered")])
    assert len(await store.conflicts()) == 1  # the same conflicting payload is flagged once
    assert await store.get("dev1", 99) is None
    await store.close()


async def test_seq_in_batch_twice_is_a_duplicate(tmp_path: Path) -> None:
    store = await RecordStore.open(tmp_path / "r.db", Durability.NORMAL)
    result = await store.commit("r", "d", [rec(1), rec(2), rec(1)])
    assert (result.stored, result.duplicates) == (2, 1)
    await store.close()


async def test_fts_trails_ingestion_then_search_finds(tmp_path: Path) -> None:
    store = await RecordStore.open(tmp_path / "r.db", Durability.NORMAL)
    msgs = ["disk full on /var", "user alice logged in", "disk quota warning", "user bob logged out"]
    await store.commit("r", "d", [rec(i + 1, m, level=3 if "disk" in m else 6) for i, m in enumerate(msgs)])
    assert await store.search("disk") == []  # stored, not yet indexed
    assert (await store.stats()).fts_pending == 4
    assert await store.index_pending(2) == 2
    assert [s.record.seq for s in await store.search("disk")] == [1]
    assert await store.index_pending(100) == 2
    assert await store.index_pending(100) == 0
    assert [s.record.seq for s in await store.search("disk")] == [3, 1]  # newest first
    assert [s.record.seq for s in await store.search("user AND logged")] == [4, 2]
    assert [s.record.seq for s in await store.search("log*", level_max=6, ts_max_ns=1_004)] == [2]
    assert [s.record.seq for s in await store.search("", level_max=3)] == [3, 1]
    assert [s.record.seq for s in await store.search("", limit=2, offset=1)] == [3, 2]
    assert await store.search("disk", source="other") == []
    with pytest.raises(SearchQueryError, match="invalid search query"):
        await store.search('"unbalanced')
    stats = await store.stats()
    assert (stats.records, stats.sources, stats.conflicts, stats.fts_pending) == (4, 1, 0, 0)
    await store.close()


async def test_seqs_lists_held_ranges(tmp_path: Path) -> None:
    store = await RecordStore.open(tmp_path / "r.db", Durability.NORMAL)
    await store.commit("r", "d", [rec(s) for s in [*range(1, 6), *range(8, 10), 12]])
    await store.commit("r", "e", [rec(3)])
    assert await store.seqs("d") == [(1, 5), (8, 9), (12, 12)]
    assert await store.seqs("e") == [(3, 3)]
    assert await store.seqs("none") == []
    await store.close()


async def test_reopen_keeps_records_and_index_position(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = await RecordStore.open(path, Durability.FULL)
    await store.commit("r", "d", [rec(s) for s in range(1, 4)])
    await store.index_pending(2)
    await store.close()
    store = await RecordStore.open(path, Durability.FULL)
    assert await store.index_pending(10) == 1
    assert len(await store.search("request")) == 3
    assert (await store.commit("r", "d", [rec(2)])).duplicates == 1
    await store.close()


async def test_inbox_is_durable_at_once_and_becomes_deduped_rows(tmp_path: Path) -> None:
    from logferry.model import Codec, encode_body

    store = await RecordStore.open(tmp_path / "r.db", Durability.NORMAL)
    body = encode_body([rec(s) for s in range(1, 6)], Codec.ZSTD)
    await store.receive("relay1", "dev1", 5, Codec.ZSTD, body)
    await store.receive("relay1", "dev1", 5, Codec.ZSTD, body)  # a resend after a lost ack
    assert (store.inbox_records, await store.count()) == (10, 0)
    assert await store.inbox_oldest_ns() is not None
    await store.close()
    store = await RecordStore.open(tmp_path / "r.db", Durability.NORMAL)  # the inbox survives a restart
    assert store.inbox_records == 10 and store.inbox_bytes == 2 * len(body)
    assert await store.materialize(1, 1 << 20) == 5
    assert await store.materialize(10, 1 << 20) == 5
    assert await store.materialize(10, 1 << 20) == 0
    assert (store.inbox_records, store.inbox_bytes, await store.count()) == (0, 0, 5)
    assert await store.inbox_oldest_ns() is None
    got = await store.get("dev1", 3)
    assert got is not None and got.record == rec(3) and got.relay == "relay1"
    await store.close()
