"""Database: group commit, backpressure, migrations, open errors, close draining. Real files, no mocks."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from logferry.errors import StoreError
from logferry.store.sqlite import Database, Durability, rows_by_id

SCHEMA = ["CREATE TABLE t(x INTEGER PRIMARY KEY);"]


def insert(x: int) -> Callable[[sqlite3.Connection], int]:
    def fn(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t VALUES (?)", (x,))
        return x

    return fn


def all_x(conn: sqlite3.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")]


async def test_group_commit_failing_callable_fails_alone(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "g.db", SCHEMA, Durability.NORMAL, "test")
    gate = threading.Event()
    seen_tx: list[bool] = []

    def blocker(conn: sqlite3.Connection) -> None:
        gate.wait(5)

    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (100)")
        raise ValueError("boom")

    def watch(conn: sqlite3.Connection) -> int:
        seen_tx.append(conn.in_transaction)
        conn.execute("INSERT INTO t VALUES (7)")
        return 7

    first = asyncio.create_task(db.write(blocker))
    await asyncio.sleep(0.02)  # the writer is now inside ``blocker``; the next writes queue up as one group
    tasks = [asyncio.create_task(db.write(insert(i))) for i in range(1, 4)]
    bad = asyncio.create_task(db.write(half_then_fail))
    dup = asyncio.create_task(db.write(insert(1)))
    tail = asyncio.create_task(db.write(watch))
    await asyncio.sleep(0.02)
    gate.set()
    await first
    assert await asyncio.gather(*tasks) == [1, 2, 3]
    with pytest.raises(ValueError, match="boom"):
        await bad
    with pytest.raises(StoreError, match="UNIQUE"):
        await dup
    assert await tail == 7
    assert seen_tx == [True]
    assert await db.read(all_x) == [1, 2, 3, 7]  # 100 was rolled back with its savepoint
    await db.close()


async def test_lone_failing_write_rolls_back(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "l.db", SCHEMA, Durability.NORMAL, "test")

    def fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("nope")

    with pytest.raises(RuntimeError):
        await db.write(fail)
    assert await db.write(insert(2)) == 2
    assert await db.read(all_x) == [2]
    await db.close()


async def test_bounded_queue_applies_backpressure(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "b.db", SCHEMA, Durability.NORMAL, "test", max_queued_writes=2)
    gate = threading.Event()
    blocked = asyncio.create_task(db.write(lambda c: gate.wait(5)))
    others = [asyncio.create_task(db.write(insert(i))) for i in range(5)]
    await asyncio.sleep(0.05)
    assert db.pending_writes == 2  # the other four wait for room instead of queueing
    assert not any(t.done() for t in others)
    gate.set()
    await blocked
    assert sorted(await asyncio.gather(*others)) == [0, 1, 2, 3, 4]
    assert db.pending_writes == 0
    await db.close()


async def test_reads_run_while_writer_is_busy(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "r.db", SCHEMA, Durability.NORMAL, "test")
    await db.write(insert(1))
    gate = threading.Event()
    busy = asyncio.create_task(db.write(lambda c: (c.execute("INSERT INTO t VALUES (2)"), gate.wait(5))))
    await asyncio.sleep(0.02)
    assert await asyncio.wait_for(db.read(all_x), 2) == [1]  # snapshot without the uncommitted row
    with pytest.raises(StoreError, match="readonly"):
        await db.read(lambda c: c.execute("INSERT INTO t VALUES (9)"))
    gate.set()
    await busy
    assert await db.read(all_x) == [1, 2]
    await db.close()


async def test_migrations_apply_once_in_order(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    db = await Database.open(path, SCHEMA, Durability.FULL, "test")
    await db.write(insert(5))
    await db.close()
    more = [*SCHEMA, "ALTER TABLE t ADD COLUMN y TEXT DEFAULT 'new';"]
    db = await Database.open(path, more, Durability.FULL, "test")
    assert await db.read(lambda c: c.execute("SELECT x, y FROM t").fetchall()) == [(5, "new")]
    assert await db.read(lambda c: c.execute("PRAGMA user_version").fetchone()[0]) == 2
    await db.close()


async def test_database_newer_than_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    db = await Database.open(path, [*SCHEMA, "CREATE TABLE u(y);"], Durability.FULL, "spool")
    await db.close()
    with pytest.raises(StoreError, match=r"schema version 2 was written by a newer logferry.*knows up to 1"):
        await Database.open(path, SCHEMA, Durability.FULL, "spool")


async def test_unwritable_directory_names_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    path = blocker / "sub" / "spool.db"
    with pytest.raises(StoreError, match="cannot create directory") as info:
        await Database.open(path, SCHEMA, Durability.FULL, "spool")
    assert str(path) in str(info.value)
    assert "writable" in str(info.value)


async def test_not_a_database_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a SQLite database or is damaged; move it aside") as info:
        await Database.open(path, SCHEMA, Durability.FULL, "journal")
    assert str(path) in str(info.value)


async def test_other_kind_of_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    db = await Database.open(path, SCHEMA, Durability.FULL, "spool", application_id=1)
    await db.close()
    with pytest.raises(StoreError, match="another kind of store"):
        await Database.open(path, SCHEMA, Durability.FULL, "journal", application_id=2)


async def test_close_drains_queued_writes_then_refuses(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    db = await Database.open(path, SCHEMA, Durability.FULL, "test")
    writes = [asyncio.create_task(db.write(insert(i))) for i in range(20)]
    await asyncio.sleep(0)  # let them all queue
    await db.close()
    assert sorted(await asyncio.gather(*writes)) == list(range(20))
    with pytest.raises(StoreError, match="closed"):
        await db.write(insert(99))
    db = Database.open_sync(path, SCHEMA, Durability.FULL, "test")
    assert db.read_sync(all_x) == list(range(20))
    assert db.write_sync(insert(20)) == 20
    db.close_sync()


def test_rows_by_id_finds_exactly_the_stored_ids_over_many_queries() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE items(source TEXT, seq INTEGER, v TEXT, PRIMARY KEY (source, seq))")
    stored = {("a", seq) for seq in range(0, 3000, 3)} | {("b", seq) for seq in range(1, 1200, 2)}
    conn.executemany("INSERT INTO items VALUES (?, ?, ?)", [(s, q, f"{s}{q}") for s, q in stored])
    asked = [("a", q) for q in range(2000)] + [("b", q) for q in range(1500)] + [("c", 1), ("a", 9)]
    rows = list(rows_by_id(conn, "items", "v", asked))
    got = {(s, q) for s, q, _v in rows}
    assert got == stored & set(asked)
    assert len(rows) == len(got)  # an id asked twice is still one row
    assert all(v == f"{s}{q}" for s, q, v in rows)
    assert list(rows_by_id(conn, "items", "v", [])) == []
