"""File reconciliation and relay file retention against real stores in a temporary folder: the collector
answers kind 2 (a deleted manifest, vanished content and corrupted content all differ; a corrupt file
lists a poisoned digest; a good copy brings it back), and the relay keeps acknowledged content only up to
its bound and removes a purged file's content unless another item needs it."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from logferry.model import Fate
from logferry.protocol.messages import (
    FileOffer,
    ItemsAnswer,
    ItemsQuery,
    RangeSummary,
    ReconcileAnswer,
    ReconcileQuery,
)
from logferry.reconcile.collector_side import ReconcileResponder
from logferry.reconcile.summary import Summary
from logferry.store import journal_files
from logferry.store.content import ContentStore
from logferry.store.file_manifests import FileManifests
from logferry.store.file_retention import FileRetention
from logferry.store.journal import Journal
from logferry.store.journal_files import FileItem
from logferry.store.records import RecordStore
from logferry.store.sqlite import Durability

SRC = "dev/files"


def blob(tmp: Path, i: int, size: int = 5000) -> tuple[Path, bytes]:
    data = hashlib.sha256(str(i).encode()).digest() * (size // 32)
    path = tmp / f"in{i}.bin"
    path.write_bytes(data)
    return path, hashlib.sha256(data).digest()


async def ask(responder: ReconcileResponder, items: dict[int, bytes]) -> list[int]:
    s = Summary.of((q, h[:8]) for q, h in items.items())
    answer = await responder.answer(ReconcileQuery(1, 2, [RangeSummary(SRC, 0, 1023, *s.as_tuple())]))
    assert isinstance(answer, ReconcileAnswer)
    return [d.index for d in answer.differ]


async def test_collector_answers_files_and_finds_damage_behind_its_back(tmp_path: Path) -> None:
    manifests = await FileManifests.open(tmp_path / "c", Durability.NORMAL)
    store = await RecordStore.open(tmp_path / "c" / "records.db", Durability.NORMAL)
    responder = ReconcileResponder(store, 1 << 20, manifests)
    try:
        sent: dict[int, bytes] = {}
        for seq in (1, 2, 3):
            path, sha = blob(tmp_path, seq)
            manifests.content.put_file(path, sha)
            await manifests.add(SRC, seq, str(path), path.stat().st_size, 0, sha, "relay")
            sent[seq] = sha
        assert await ask(responder, sent) == []

        target = manifests.content.path_for(sent[2])
        with target.open("r+b") as f:
            f.write(b"rot")
        os.utime(target, ns=(0, 12345))  # a different mtime, as any write gives
        assert await ask(responder, sent) == [0]
        answer = await responder.answer(ItemsQuery(2, 2, SRC, 0, 1023))
        assert isinstance(answer, ItemsAnswer)
        assert answer.digests == sent[1][:8] + b"\xff" * 8 + sent[3][:8]
        assert manifests.bad == {sent[2]}

        # The relay's copy comes back: damaged content set aside, the good one stored, in sync again.
        manifests.content.quarantine(sent[2])
        manifests.content.put_file(tmp_path / "in2.bin", sent[2])
        await manifests.add(SRC, 2, "x", 5000 // 32 * 32, 0, sent[2], "relay")
        assert await ask(responder, sent) == []

        manifests.content.remove(sent[3])  # vanished content
        assert await ask(responder, sent) == [0]
        conn = sqlite3.connect(tmp_path / "c" / "files.db")
        with conn:
            conn.execute("DELETE FROM files WHERE seq = 1")  # a manifest deleted behind the store
        conn.close()
        answer = await responder.answer(ItemsQuery(3, 2, SRC, 0, 1023))
        assert isinstance(answer, ItemsAnswer)
        assert [tuple(r) for r in answer.ranges] == [(2, 3)] and answer.digests[8:] == b"\xff" * 8
    finally:
        await store.close()
        await manifests.close()


async def test_relay_keeps_acked_content_within_its_bound_and_drops_purged(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "j.db", Durability.NORMAL)
    content = ContentStore(tmp_path / "files")
    retention = FileRetention(journal, content, keep_bytes=12_000)
    try:
        shas: dict[int, bytes] = {}
        for seq in range(1, 6):
            path, sha = blob(tmp_path, seq)
            content.put_file(path, sha)
            shas[seq] = sha
            fate = Fate.HELD if seq == 5 else Fate.FORWARDED
            item = FileItem(SRC, seq, f"f{seq}", 4992, 0, sha, fate, "", seq, False)
            await journal.write_with(lambda c, i=item: journal_files.commit(c, i))
            if fate is Fate.FORWARDED:
                await journal.write_with(lambda c, q=seq: journal_files.mark_sent(c, SRC, q, 1000 + q))
        retention.notify()
        assert await retention.collect() == 2  # 4992 B each: the 2 newest acked fit in 12,000 B
        assert [content.has(shas[q]) for q in range(1, 6)] == [False, False, True, True, True]
        assert await journal.purge([(SRC, 5)]) == 1
        assert await retention.collect() == 1
        assert not content.has(shas[5])
        pruned = await journal.read_with(
            lambda c: [int(p) for (p,) in c.execute("SELECT pruned FROM file_items ORDER BY seq")]
        )
        assert pruned == [1, 1, 0, 0, 1]
    finally:
        await journal.close()


async def test_manifests_are_kept_once_per_id_and_say_which_were_new(tmp_path: Path) -> None:
    manifests = await FileManifests.open(tmp_path / "c", Durability.NORMAL)
    try:
        offers = []
        for seq in (1, 2, 3):
            path, sha = blob(tmp_path, seq)
            manifests.content.put_file(path, sha)
            offers.append(FileOffer(SRC, seq, str(path), path.stat().st_size, 0, sha))
        one, two, three = offers
        assert await manifests.add_many([one, two, one], "relay") == [True, True, False]  # once per call too
        assert await manifests.add_many([two, three], "relay") == [False, True]
        found, total = await manifests.page(source=SRC)
        assert total == 3 and sorted(f.seq for f in found) == [1, 2, 3]
    finally:
        await manifests.close()
