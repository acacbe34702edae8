"""Journal: dedupe on resend, one fate per seq, held store, release/purge, fast path, outbox."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from logferry.model import Codec, Entry, Fate, Record, decode_body, encode_body, make_record, with_payload
from logferry.store.journal import Decision, HeldFilter, Journal
from logferry.store.sqlite import Durability


def rec(seq: int, level: int = 6, msg: str | None = None) -> Record:
    return make_record(
        seq, 1_000 + seq, level, "host", "/var/log/app.log", msg or f"message {seq}", {"n": str(seq)}
    )


def decide(r: Record) -> Decision:
    """A toy rule set: errors are held, every 5th is dropped, every 7th is redacted."""
    if r.level <= 3:
        return Decision(r, Fate.HELD, "errors")
    if r.seq % 5 == 0:
        return Decision(r, Fate.DROPPED, "noise")
    if r.seq % 7 == 0:
        return Decision(with_payload(r, msg="***"), Fate.REDACTED, "secrets")
    return Decision(r, Fate.FORWARDED)


def decisions(first: int, last: int) -> list[Decision]:
    return [decide(rec(s, level=3 if s % 4 == 0 else 6)) for s in range(first, last + 1)]


async def open_journal(tmp_path: Path, keep_acked_outbox_bytes: int = 64 << 20) -> Journal:
    return await Journal.open(
        tmp_path / "j.db", Durability.NORMAL, keep_acked_outbox_bytes=keep_acked_outbox_bytes
    )


async def assert_one_fate_each(journal: Journal, source: str, first: int, last: int) -> list[Fate]:
    runs = await journal.fates(source, first, last)
    per_seq = [s for f, la, _, _ in runs for s in range(f, la + 1)]
    assert per_seq == list(range(first, last + 1))  # no hole, no seq twice
    return [fate for f, la, fate, _ in runs for _ in range(f, la + 1)]


async def test_commit_journals_every_seq_once(tmp_path: Path) -> None:
    journal = await open_journal(tmp_path)
    assert await journal.commit("dev1", decisions(1, 40)) == [(1, 40)]
    assert journal.acked_through("dev1") == 40
    fates = await assert_one_fate_each(journal, "dev1", 1, 40)
    assert fates[3] is Fate.HELD and fates[4] is Fate.DROPPED and fates[6] is Fate.REDACTED
    counts = await journal.counters()
    assert sum(counts.values()) == 40
    assert counts[("dev1", Fate.HELD, "errors")] == 10 == await journal.held_count()
    [batch] = await journal.outbox_pending(0, 10)
    out = decode_body(batch.body, batch.codec, 1 << 20)
    assert [r.seq for r in out] == [s for s, f in zip(range(1, 41), fates, strict=True) if f in (1, 2)]
    assert next(r for r in out if r.seq == 7).msg == "***"
    assert (batch.first_seq, batch.last_seq, batch.count) == (out[0].seq, out[-1].seq, len(out))
    await journal.close()


async def test_resend_is_deduped_by_overlap(tmp_path: Path) -> None:
    journal = await open_journal(tmp_path)
    await journal.commit("dev1", decisions(1, 10))
    assert await journal.commit("dev1", decisions(6, 15)) == [(6, 15)]  # dupes are acked: they are durable
    assert await journal.commit("dev1", decisions(1, 15)) == [(1, 15)]
    await assert_one_fate_each(journal, "dev1", 1, 15)
    assert sum((await journal.counters()).values()) == 15
    batches = await journal.outbox_pending(0, 10)
    assert len(batches) == 2 and batches[1].first_seq > 10
    await journal.close()


async def test_gap_holds_acked_through_until_filled(tmp_path: Path) -> None:
    journal = await open_journal(tmp_path)
    await journal.commit("dev1", decisions(1, 5))
    await journal.commit("dev1", decisions(11, 15))
    assert journal.acked_through("dev1") == 5
    assert await journal.commit("dev1", decisions(3, 12)) == [(3, 12)]  # fills 6..10 only
    assert journal.acked_through("dev1") == 15
    await assert_one_fate_each(journal, "dev1", 1, 15)
    await journal.close()
    journal = await open_journal(tmp_path)
    assert journal.acked_through("dev1") == 15
    assert journal.acked_through("other") == 0
    await journal.close()


async def test_unordered_batch_with_repeats(tmp_path: Path) -> None:
    journal = await open_journal(tmp_path)
    ds = decisions(1, 6)
    assert await journal.commit("d", [ds[3], ds[0], ds[3], ds[1], ds[2], ds[5]]) == [(1, 4), (6, 6)]
    assert journal.acked_through("d") == 4
    await assert_one_fate_each(journal, "d", 1, 4)
    assert await journal.fates("d", 5, 5) == []
    await journal.close()


async def test_fast_path_stores_body_untouched_and_refuses_resends(tmp_path: Path) -> None:
    journal = await open_journal(tmp_path)
    body = encode_body([rec(s) for s in range(1, 101)], Codec.ZSTD)
    assert await journal.commit_forward_body("dev2", 1, 100, 100, Codec.ZSTD, body)
    [batch] = await journal.outbox_pending(0, 10)
    assert batch.body == body and batch.codec is Codec.ZSTD
    assert journal.acked_through("dev2") == 100
    # A resend overlapping what is journaled: nothing written, the caller falls back to commit().
    again = encode_body([rec(s) for s in range(51, 151)])
    assert not await journal.commit_forward_body("dev2", 51, 150, 100, Codec.MSGPACK, again)
    assert not await journal.commit_forward_body("dev2", 151, 160, 3, Codec.MSGPACK, again)  # not contiguous
    assert len(await journal.outbox_pending(0, 10)) == 1
    fallback = [Decision(r, Fate.FORWARDED) for r in decode_body(again, Codec.MSGPACK, 1 << 20)]
    assert await journal.commit("dev2", fallback) == [(51, 150)]
    assert await assert_one_fate_each(journal, "dev2", 1, 150) == [Fate.FORWARDED] * 150
    assert (await journal.counters())[("dev2", Fate.FORWARDED, "")] == 150
    await journal.close()


async def test_commit_entries_numbers_inputs_without_agent(tmp_path: Path) -> None:
    journal = await open_journal(tmp_path)
    lines = [Entry(i, 6, "h", "syslog", f"line {i}") for i in range(5)]
    assert await journal.commit_entries("syslog:10.0.0.1", lines, decide) == [(1, 5)]
    assert await journal.commit_entries("syslog:10.0.0.1", lines[:2], decide) == [(6, 7)]
    assert journal.acked_through("syslog:10.0.0.1") == 7
    fates = await assert_one_fate_each(journal, "syslog:10.0.0.1", 1, 7)
    assert fates[4] is Fate.DROPPED
    await journal.close()


async def test_held_filters_and_pages(tmp_path: Path) -> None:
    journal = await open_journal(tmp_path)
    ds = [
        Decision(rec(s, level=s % 8, msg=f"disk {s} 100%_full" if s % 2 else f"ok {s}"), Fate.HELD, "r")
        for s in range(1, 21)
    ]
    ds += [Decision(rec(s), Fate.HELD, "other") for s in range(21, 26)]
    await journal.commit("a", ds)
    await journal.commit("b", [Decision(rec(1), Fate.HELD, "r")])
    assert await journal.held_count() == 26
    assert await journal.held_count(HeldFilter(rule="r")) == 21
    assert await journal.held_count(HeldFilter(rule="r", source="a")) == 20
    assert await journal.held_count(HeldFilter(source="a", level_max=3)) == 11
    assert await journal.held_count(HeldFilter(text="100%_FULL")) == 10  # LIKE wildcards are escaped
    assert await journal.held_count(HeldFilter(text="0%x")) == 0
    assert await journal.held_count(HeldFilter(source="a", ts_min_ns=1_005, ts_max_ns=1_010)) == 5
    page = await journal.held_page(HeldFilter(source="a"), limit=3, offset=1)
    assert [h.record.seq for h in page] == [24, 23, 22]
    got = await journal.held_get("a", 3)
    assert got is not None and got.rule == "r" and got.record == rec(3, level=3, msg="disk 3 100%_full")
    assert await journal.held_get("a", 99) is None
    await journal.close()


async def test_release_and_purge_move_fates(tmp_path: Path) -> None:
    journal = await open_journal(tmp_path)
    await journal.commit("dev1", decisions(1, 40))  # 4, 8, ... 40 held by "errors"
    assert await journal.release(HeldFilter(ts_max_ns=1_021)) == 5  # 4..20
    assert await journal.purge([("dev1", 24), ("dev1", 28), ("dev1", 99)]) == 2
    assert await journal.held_count() == 3
    fates = await assert_one_fate_each(journal, "dev1", 1, 40)
    assert [fates[s - 1] for s in (4, 20, 24, 28, 32)] == [
        Fate.RELEASED,
        Fate.RELEASED,
        Fate.PURGED,
        Fate.PURGED,
        Fate.HELD,
    ]
    counts = await journal.counters()
    assert counts[("dev1", Fate.HELD, "errors")] == 3
    assert counts[("dev1", Fate.RELEASED, "errors")] == 5
    assert counts[("dev1", Fate.PURGED, "errors")] == 2
    assert sum(counts.values()) == 40
    batches = await journal.outbox_pending(0, 10)
    released = decode_body(batches[-1].body, batches[-1].codec, 1 << 20)
    assert [r.seq for r in released] == [4, 8, 12, 16, 20]
    assert released[0] == rec(4, level=3)  # digest and fields survive the held store
    assert await journal.release(HeldFilter(rule="nothing")) == 0
    assert await journal.purge(HeldFilter(), limit=2) == 2  # a bounded bulk action: call until 0
    assert await journal.purge(HeldFilter(), limit=2) == 1
    assert await journal.purge(HeldFilter(), limit=2) == 0
    await journal.close()


async def test_outbox_ack_prunes_acked_beyond_retention(tmp_path: Path) -> None:
    journal = await open_journal(tmp_path, keep_acked_outbox_bytes=1)
    for i in range(4):
        await journal.commit("d", [Decision(rec(s), Fate.FORWARDED) for s in range(i * 10 + 1, i * 10 + 11)])
    ids = [b.id for b in await journal.outbox_pending(0, 10)]
    await journal.outbox_ack(ids[1:3])
    assert [b.id for b in await journal.outbox_pending(0, 10)] == [ids[0], ids[3]]
    assert [r.seq for r in await journal.outbox_records("d", 9, 12)] == [9, 10]  # 11..20 pruned
    assert [b.id for b in await journal.outbox_pending(ids[0], 10)] == [ids[3]]
    stats = await journal.stats()
    assert (stats.outbox_unacked_batches, stats.outbox_unacked_records) == (2, 20)
    assert stats.outbox_kept_bytes == 0 and stats.acked_through == {"d": 40}
    await journal.close()


async def test_every_seq_one_fate_under_mixed_traffic(tmp_path: Path) -> None:
    journal = await open_journal(tmp_path)
    for first in (1, 51, 26, 101, 90, 151):  # overlapping resends and gaps
        await journal.commit("x", decisions(first, first + 49))
    await journal.release(HeldFilter(level_max=3, ts_min_ns=1_060))
    fates = await assert_one_fate_each(journal, "x", 1, 200)
    counts = await journal.counters()
    assert Counter({f: n for (_, f, _), n in counts.items() if n}) == Counter(fates)
    await journal.close()
