"""Spool: numbering, pending, acks over a prefix, checkpoints, pruning, room, reopen, kill -9 safety."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
from pathlib import Path

from logferry.model import Codec, Entry, decode_body
from logferry.store.spool import Spool
from logferry.store.sqlite import Durability


def entries(n: int, tag: str = "m") -> list[Entry]:
    return [Entry(1_000 + i, 6, "host", "/var/log/app.log", f"{tag} {i}", {"k": str(i)}) for i in range(n)]


async def test_append_numbers_and_pending_lists_unacked(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "s.db", Durability.NORMAL)
    assert await spool.append(entries(3), {"a": b"10"}) == (1, 3)
    assert await spool.append(entries(2), {"a": b"20"}) == (4, 5)
    assert await spool.append(entries(4), {"b": b"7"}) == (6, 9)
    assert spool.next_seq == 10
    batches = await spool.pending(0, 10)
    assert [(b.first_seq, b.last_seq, b.count) for b in batches] == [(1, 3, 3), (4, 5, 2), (6, 9, 4)]
    recs = decode_body(batches[1].body, batches[1].codec, 1 << 20)
    assert [r.seq for r in recs] == [4, 5]
    assert recs[0].digest  # numbered() filled the payload digest
    assert [b.first_seq for b in await spool.pending(3, 1)] == [4]
    assert await spool.checkpoints() == {"a": b"20", "b": b"7"}
    assert await spool.acked_checkpoints() == {}
    stats = await spool.stats()
    assert (stats.next_seq, stats.unacked_batches, stats.unacked_records) == (10, 3, 9)
    await spool.close()


async def test_ack_moves_checkpoints_only_over_acked_prefix(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "s.db", Durability.NORMAL)
    await spool.append(entries(3), {"a": b"10"})
    await spool.append(entries(2), {"a": b"20", "b": b"1"})
    await spool.append(entries(4), {"a": b"30"})
    await spool.ack([(4, 5)])  # the middle batch first: no prefix yet
    assert spool.acked_through == 0
    assert await spool.acked_checkpoints() == {}
    assert [b.first_seq for b in await spool.pending(0, 10)] == [1, 6]
    await spool.ack([(1, 2)])  # only part of batch 1..3: not acked
    assert spool.acked_through == 0
    await spool.ack([(1, 3)])
    assert spool.acked_through == 5
    assert await spool.acked_checkpoints() == {"a": b"20", "b": b"1"}
    await spool.ack([(6, 9), (1, 9)])  # overlapping and repeated ranges are harmless
    assert spool.acked_through == 9
    assert await spool.acked_checkpoints() == {"a": b"30", "b": b"1"}
    assert await spool.pending(0, 10) == []
    assert (await spool.stats()).unacked_bytes == 0 == spool.unacked_bytes
    await spool.close()


async def test_prune_keeps_newest_acked_batches_for_resends(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "s.db", Durability.NORMAL, keep_acked_bytes=1)
    for _ in range(5):
        await spool.append(entries(10))
    await spool.ack([(1, 30)])
    stats = await spool.stats()
    assert stats.kept_batches == 2  # the three acked batches exceed the 1-byte bound; the unacked stay
    assert await spool.records(1, 30) == []
    assert [r.seq for r in await spool.records(38, 43)] == [38, 39, 40, 41, 42, 43]
    await spool.close()


async def test_records_reads_kept_range(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "s.db", Durability.NORMAL, codec=Codec.ZSTD)
    await spool.append(entries(5, "x"))
    await spool.append(entries(5, "y"))
    got = await spool.records(4, 7)
    assert [(r.seq, r.msg) for r in got] == [(4, "x 3"), (5, "x 4"), (6, "y 0"), (7, "y 1")]
    await spool.close()


async def test_wait_for_room_blocks_until_acked(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "s.db", Durability.NORMAL, max_unacked_bytes=100)
    await spool.append(entries(20))
    assert spool.unacked_bytes >= 100
    waiter = asyncio.create_task(spool.wait_for_room())
    await asyncio.sleep(0.02)
    assert not waiter.done()
    await spool.ack([(1, 20)])
    await asyncio.wait_for(waiter, 2)
    await spool.close()


async def test_checkpoint_without_entries(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "s.db", Durability.NORMAL)
    assert await spool.append([], {"a": b"5"}) == (1, 0)
    assert await spool.acked_checkpoints() == {"a": b"5"}  # nothing before it is unacked
    await spool.append(entries(1), {"a": b"6"})
    await spool.append([], {"a": b"7"})
    assert await spool.checkpoints() == {"a": b"7"}
    assert await spool.acked_checkpoints() == {"a": b"5"}
    await spool.close()


async def test_reopen_resumes_seq_ack_and_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    spool = await Spool.open(path, Durability.FULL)
    await spool.append(entries(4), {"f": b"1"})
    await spool.append(entries(4), {"f": b"2"})
    await spool.ack([(1, 4)])
    await spool.close()
    spool = await Spool.open(path, Durability.FULL)
    assert (spool.next_seq, spool.acked_through) == (9, 4)
    assert await spool.checkpoints() == {"f": b"2"}
    assert await spool.acked_checkpoints() == {"f": b"1"}
    assert await spool.append(entries(1)) == (9, 9)
    assert [b.first_seq for b in await spool.pending(0, 10)] == [5, 9]
    await spool.close()


CHILD = r"""
import asyncio, sys
from logferry.model import Entry
from logferry.store.spool import Spool
from logferry.store.sqlite import Durability

async def main(path):
    spool = await Spool.open(path, Durability.NORMAL)
    n = 0
    while True:
        batch = [Entry(n, 6, "h", "/log", f"line {n} {i}" * 5) for i in range(50)]
        first, last = await spool.append(batch, {"file": str(spool.next_seq + 49).encode()})
        print(last, flush=True)
        n += 1

asyncio.run(main(sys.argv[1]))
"""


async def test_kill_9_leaves_whole_batches_and_consistent_next_seq(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(path), stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    confirmed = 0
    for _ in range(40):  # the child prints after each committed append
        confirmed = int(await asyncio.wait_for(child.stdout.readline(), 10))
    child.send_signal(signal.SIGKILL)
    await asyncio.wait_for(child.wait(), 10)
    spool = await Spool.open(path, Durability.NORMAL)
    last = spool.next_seq - 1
    assert last >= confirmed  # every acknowledged append survived
    batches = await spool.pending(0, 10_000)
    assert batches[0].first_seq == 1
    assert all(b.count == 50 and b.last_seq - b.first_seq == 49 for b in batches)
    assert all(a.last_seq + 1 == b.first_seq for a, b in itertools.pairwise(batches))
    assert batches[-1].last_seq == last
    recs = await spool.records(1, last)
    assert [r.seq for r in recs] == list(range(1, last + 1))
    assert await spool.checkpoints() == {"file": str(last).encode()}  # read position matches the records
    await spool.close()


async def test_an_empty_checkpoint_value_forgets_the_key_once_acked(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "spool.db")
    try:
        await spool.append([Entry(1, 6, "h", "p", "a")], {"tail:1:2": b"pos"})
        await spool.append([Entry(1, 6, "h", "p", "b")], {"tail:1:2": b""})  # the file was rotated away
        assert await spool.checkpoints() == {}
        await spool.ack([(1, 2)])
        assert await spool.acked_checkpoints() == {}
        rows = await spool._db.read(lambda c: c.execute("SELECT count(*) FROM checkpoints").fetchone())
        assert rows == (0,)
    finally:
        await spool.close()
