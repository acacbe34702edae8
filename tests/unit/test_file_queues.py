"""The file senders' queues: the agent's file queue and the relay's file outbox hand out what is not
in flight, oldest first; the agent's queue hands small contents read when they were queued from memory
(once, within its budget); the relay journals a group of files in one pass (counters and tallies added
once)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from logferry.model import Fate
from logferry.reconcile.summary import BucketTally, ItemKind
from logferry.reconcile.tables import bucket_sum
from logferry.store import journal_files
from logferry.store.file_queue import FileQueueStore, FileState
from logferry.store.journal import Journal
from logferry.store.journal_files import FileItem
from logferry.store.sqlite import Durability

SRC = "dev/files"


def sha(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest()


async def test_the_agent_queue_leaves_out_files_in_flight(tmp_path: Path) -> None:
    queue = await FileQueueStore.open(tmp_path / "files.db", SRC, Durability.NORMAL)
    try:
        seqs = await queue.add_many([(f"/d/f{i}", i, 1, sha(i)) for i in range(1, 11)])
        assert seqs == list(range(1, 11))
        assert [f.seq for f in await queue.next_files(4)] == [1, 2, 3, 4]
        busy = {(SRC, 1), (SRC, 2), (SRC, 4), ("other/files", 5)}  # another source's seq 5 is not ours
        assert [f.seq for f in await queue.next_files(4, busy)] == [3, 5, 6, 7]
        assert [f.seq for f in await queue.next_files(100, busy)] == [3, 5, 6, 7, 8, 9, 10]
        await queue.settle_many([3, 5], FileState.ACKED)
        got = await queue.next_files(3, busy)
        assert [f.seq for f in got] == [6, 7, 8]
        assert got[0].path == "/d/f6" and got[0].local == "/d/f6" and got[0].sha256 == sha(6)
        everything = {(SRC, s) for s in range(1, 11)}
        assert await queue.next_files(5, everything) == []
    finally:
        await queue.close()


async def test_the_agent_queue_hands_out_what_was_hashed_once_within_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("logferry.store.file_queue.RECENT_BYTES", 250)
    queue = await FileQueueStore.open(tmp_path / "files.db", SRC, Durability.NORMAL)
    try:
        datas = [bytes([i]) * 100 for i in range(4)]
        files = [(f"/d/f{i}", 100, 1, hashlib.sha256(d).digest()) for i, d in enumerate(datas)]
        contents: list[bytes | None] = [datas[0], datas[1], None, datas[3]]  # f2: a large file, not read
        assert await queue.add_many(files, contents) == [1, 2, 3, 4]
        got = {f.seq: f for f in await queue.next_files(10)}
        # 300 bytes over a budget of 250: the oldest (f0) was let go and is read from its file again
        # What it hands out it hashed for the manifest (sent as it is); the rest is read from the file.
        assert all(f.load is None for f in got.values())
        assert got[1].checked is None and got[3].checked is None
        assert got[2].checked is not None and got[2].checked() == datas[1]
        assert got[2].checked() is None  # once: a second send reads the file
        # settled files let go of what they kept; a version queued already keeps nothing
        assert await queue.add_many([files[3]], [datas[3]]) == [None]
        await queue.settle_many([4], FileState.ACKED)
        assert got[4].checked is not None and got[4].checked() is None
        assert queue._recent_bytes == 0
    finally:
        await queue.close()


def item(seq: int, fate: Fate = Fate.FORWARDED, received_ns: int = 0, source: str = SRC) -> FileItem:
    return FileItem(source, seq, f"f{seq}", 10, 1, sha(seq), fate, "", received_ns or seq, False)


async def test_the_relay_outbox_is_read_in_order_without_what_is_in_flight(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "j.db", Durability.NORMAL)
    try:
        # Received out of seq order, one held and one dropped: the outbox is by arrival, forwarded only.
        items = [item(5, received_ns=1), item(1, received_ns=2), item(2, Fate.HELD, 3),
                 item(3, Fate.DROPPED, 4), item(4, received_ns=5), item(6, received_ns=6),
                 item(7, source="b/files", received_ns=7)]  # fmt: skip
        await journal.write_with(lambda c: journal_files.commit_many(c, items))

        def outbox(limit: int, busy: set[tuple[str, int]]) -> list[tuple[str, int]]:
            return [(f.source, f.seq) for f in journal_files.outbox(conn, limit, busy)]

        with sqlite3.connect(tmp_path / "j.db") as conn:
            assert outbox(10, set()) == [(SRC, 5), (SRC, 1), (SRC, 4), (SRC, 6), ("b/files", 7)]
            assert outbox(2, {(SRC, 5), (SRC, 4)}) == [(SRC, 1), (SRC, 6)]
            assert outbox(10, {(SRC, 5), (SRC, 1), (SRC, 4), (SRC, 6)}) == [("b/files", 7)]
            first = journal_files.outbox(conn, 1)[0]
            assert first == item(5, received_ns=1)  # every column read back as it was journaled
            # In order by the partial index: no sort of every waiting file at each read.
            plan = conn.execute(
                f"EXPLAIN QUERY PLAN SELECT 1 FROM file_items INDEXED BY file_items_waiting "
                f"WHERE {journal_files._WAITING} ORDER BY received_ns LIMIT 5"
            ).fetchall()
            assert not any("TEMP B-TREE" in str(row) for row in plan)
        await journal.write_with(lambda c: journal_files.mark_sent(c, SRC, 5, 99))
        released = await journal.read_with(lambda c: journal_files.outbox(c, 10))
        assert [f.seq for f in released] == [1, 4, 6, 7]
    finally:
        await journal.close()


async def test_a_group_is_journaled_once_with_its_counters_and_tallies(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "j.db", Durability.NORMAL)
    try:
        group = [
            item(1),
            item(2),
            item(3, Fate.HELD),
            item(1),
            item(4, Fate.DROPPED),
            item(9, source="b/files"),
        ]
        written = await journal.write_with(lambda c: journal_files.commit_many(c, group))
        assert written == [True, True, True, False, True, True]  # seq 1 twice in one group: once
        again = await journal.write_with(lambda c: journal_files.commit_many(c, [item(2), item(5)]))
        assert again == [False, True]
        assert await journal.write_with(lambda c: journal_files.commit(c, item(5))) is False

        def read(c: sqlite3.Connection) -> tuple[list[tuple[str, int, int]], int, object, object]:
            counters = [tuple(r) for r in c.execute("SELECT source, fate, n FROM counters ORDER BY 1, 2")]
            rows = c.execute("SELECT count(*) FROM file_items").fetchone()[0]
            ours = bucket_sum(c, SRC, ItemKind.FILE, 0, 10)
            theirs = bucket_sum(c, "b/files", ItemKind.FILE, 0, 10)
            return counters, rows, ours, theirs  # type: ignore[return-value]

        counters, rows, ours, theirs = await journal.read_with(read)
        assert rows == 6
        assert counters == [("b/files", int(Fate.FORWARDED), 1), (SRC, int(Fate.FORWARDED), 3),
                            (SRC, int(Fate.HELD), 1), (SRC, int(Fate.DROPPED), 1)]  # fmt: skip
        # Tallied: forwarded files only (digest = first 8 bytes of the sha256), as one at a time would.
        want = dict(BucketTally().add_all([(s, sha(s)[:8]) for s in (1, 2, 5)]).items())[0]
        assert ours == want
        assert theirs == dict(BucketTally().add_all([(9, sha(9)[:8])]).items())[0]
    finally:
        await journal.close()
