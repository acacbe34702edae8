"""Relay file retention against a real journal and content store: once over ``file_keep_bytes`` it removes
the content acknowledged longest ago down to a tenth below the bound, a content is as old as its newest
acknowledged item, a pass that cannot be over the bound reads nothing, and a bound far exceeded is worked
off in one ``collect`` however many ``PASS_CONTENTS`` transactions it takes."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from logferry.model import Fate
from logferry.store import file_retention, journal_files
from logferry.store.content import ContentStore
from logferry.store.file_retention import FileRetention
from logferry.store.journal import Journal
from logferry.store.journal_files import FileItem
from logferry.store.sqlite import Durability

SRC = "dev/files"
SIZE = 1000


class Chain:
    """A relay's journal and content store with files forwarded and acknowledged one at a time."""

    def __init__(self, journal: Journal, content: ContentStore) -> None:
        self.journal = journal
        self.content = content
        self.seq = 0
        self.sha: dict[int, bytes] = {}

    async def ack(self, key: int, tmp: Path) -> int:
        """A new item of content ``key`` (the same key: the same content), forwarded and acknowledged."""
        data = hashlib.sha256(str(key).encode()).digest() * (SIZE // 32)
        sha = hashlib.sha256(data).digest()
        path = tmp / f"c{key}.bin"
        path.write_bytes(data)
        self.content.put_file(path, sha)
        self.seq += 1
        self.sha[self.seq] = sha
        item = FileItem(SRC, self.seq, f"f{self.seq}", len(data), 0, sha, Fate.FORWARDED, "", self.seq, False)
        q = self.seq
        await self.journal.write_with(lambda c: journal_files.commit(c, item))
        await self.journal.write_with(lambda c: journal_files.mark_sent(c, SRC, q, 1000 + q))
        return len(data)

    async def pruned(self) -> list[int]:
        sql = "SELECT seq FROM file_items WHERE pruned = 1 ORDER BY seq"
        return await self.journal.read_with(lambda c: [int(q) for (q,) in c.execute(sql)])

    def kept(self) -> list[int]:
        return [q for q, h in self.sha.items() if self.content.has(h)]


@contextlib.asynccontextmanager
async def relay(tmp: Path, keep_files: int) -> AsyncIterator[tuple[FileRetention, Chain]]:
    """A journal, a content store and their retention, bounded at ``keep_files`` contents."""
    journal = await Journal.open(tmp / "j.db", Durability.NORMAL)
    content = ContentStore(tmp / "files")
    try:
        yield FileRetention(journal, content, keep_bytes=keep_files * SIZE), Chain(journal, content)
    finally:
        await journal.close()
        content.close()


async def test_over_the_bound_the_oldest_go_down_to_a_tenth_below_it(tmp_path: Path) -> None:
    async with relay(tmp_path, 10) as (retention, chain):
        for key in range(1, 11):
            await chain.ack(key, tmp_path)
        assert await retention.collect() == 0  # 10 contents: at the bound, not over it
        retention.notify(await chain.ack(11, tmp_path))
        assert await retention.collect() == 2  # 11 over 10: down to 9
        assert chain.kept() == list(range(3, 12)) and await chain.pruned() == [1, 2]
        retention.notify(await chain.ack(12, tmp_path))
        assert await retention.collect() == 0 and chain.kept() == list(range(3, 13))  # 10 again: kept
        retention.notify(await chain.ack(13, tmp_path))
        assert await retention.collect() == 2 and chain.kept() == list(range(5, 14))


async def test_a_content_is_as_old_as_its_newest_item(tmp_path: Path) -> None:
    async with relay(tmp_path, 3) as (retention, chain):
        for key in (1, 2, 3, 4, 1):  # seq 5 has the content of seq 1 again: the newest of all
            await chain.ack(key, tmp_path)
        retention.notify()  # the bytes not said: counted
        assert await retention.collect() == 2  # 4 distinct contents over 3: down to 2 (a tenth below 3)
        assert chain.kept() == [1, 4, 5] and await chain.pruned() == [2, 3]


async def test_below_the_bound_a_pass_reads_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[int] = []
    real = file_retention.kept_bytes
    monkeypatch.setattr(file_retention, "kept_bytes", lambda conn: counted.append(1) or real(conn))
    async with relay(tmp_path, 5) as (retention, chain):
        await chain.ack(1, tmp_path)
        assert await retention.collect() == 0 and len(counted) == 1  # the first pass counts
        for key in (2, 3, 4, 5):
            retention.notify(await chain.ack(key, tmp_path))
            assert await retention.collect() == 0
        assert len(counted) == 1  # 5 contents can be no more than the bound: nothing was read
        retention.notify(await chain.ack(6, tmp_path))
        assert await retention.collect() == 2 and len(counted) == 2


async def test_a_bound_far_exceeded_is_worked_off_in_one_collect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_retention, "PASS_CONTENTS", 3)
    async with relay(tmp_path, 10) as (retention, chain):
        for key in range(1, 21):
            await chain.ack(key, tmp_path)
        retention.notify()
        assert await retention.collect() == 11  # 20 down to 9, three at a time
        assert chain.kept() == list(range(12, 21)) and await chain.pruned() == list(range(1, 12))
