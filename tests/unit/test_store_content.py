"""The content-addressed file store: partials resume, only verified content reaches its address."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import shutil
import sqlite3
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from logferry.store.content import DIRECT_MIN_BYTES, HASH_BESIDE_BYTES, ContentMismatch, ContentStore
from logferry.store.small_content import PAGE_BYTES

DATA = bytes(range(256)) * 1000
SHA = hashlib.sha256(DATA).digest()


def test_a_partial_resumes_across_a_restart_and_commits_by_rename(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    part = store.open_partial("dev/files", 1, SHA, len(DATA))
    part.write(0, DATA[:1000])
    part.close()  # the process dies here
    assert not store.has(SHA)  # a crash leaves no file at the content address
    again = ContentStore(tmp_path).open_partial("dev/files", 1, SHA, len(DATA))
    assert again.size == 1000  # the resume offset
    again.write(1000, DATA[1000:])
    path = store.commit(again, SHA)
    assert path == store.path_for(SHA) and path.read_bytes() == DATA
    assert not list(store.partials.iterdir()) and store.verify(SHA)


def test_a_mismatch_never_reaches_the_address_and_starts_over(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    part = store.open_partial("dev/files", 2, SHA, len(DATA))
    part.write(0, b"x" * len(DATA))
    with pytest.raises(ContentMismatch):
        store.commit(part, SHA)
    assert not store.has(SHA) and not list(store.partials.iterdir())


def test_identical_content_is_stored_once_and_damage_is_seen(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    for seq in (1, 2):
        part = store.open_partial("dev/files", seq, SHA, len(DATA))
        part.write(0, DATA)
        store.commit(part, SHA)
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "LAYOUT"] == [store.path_for(SHA)]
    with store.path_for(SHA).open("r+b") as f:
        f.write(b"\xff")
    assert not store.verify(SHA)
    store.quarantine(SHA)
    assert not store.has(SHA)


def test_a_longer_partial_of_another_version_is_not_continued(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    part = store.open_partial("dev/files", 3, SHA, len(DATA))
    part.write(0, DATA)
    part.close()
    assert store.open_partial("dev/files", 3, SHA, 10).size == 0


def test_small_files_are_stored_in_groups_and_a_mismatch_is_refused_alone(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    small = [bytes([i]) * (100 + i) for i in range(5)]
    items = [(d, hashlib.sha256(d).digest()) for d in small]
    items.append((b"tampered", SHA))  # content that does not hash to its offer
    items.append(items[0])  # the same content twice in one group is stored once
    verdicts = store.put_many(items)
    assert [v is None for v in verdicts] == [True] * 5 + [False, True]
    assert isinstance(verdicts[5], ContentMismatch)
    assert all(store.path_for(h).read_bytes() == d for d, h in items[:5])
    assert not store.has(SHA)
    assert not list(tmp_path.glob("incoming/*/*"))  # no temporary name is left behind
    assert store.put_many(items[:1]) == [None]  # held already: nothing is written again


def test_a_partial_reports_what_is_durable(tmp_path: Path) -> None:
    part = ContentStore(tmp_path).open_partial("dev/files", 1, SHA, len(DATA))
    part.write(0, DATA[:5000])
    assert part.synced == 0
    assert part.sync_data() == 5000 == part.synced
    part.close()
    assert part.sync_data() == 5000  # closed: nothing to do, and no error
    with pytest.raises(ValueError, match="closed"):
        part.write(5000, DATA[5000:6000])


@pytest.mark.parametrize("where", ["disk", "tmpfs"])
def test_large_pieces_go_around_the_page_cache_and_mix_with_others(tmp_path: Path, where: str) -> None:
    """Aligned pieces of 1 MiB and more are written directly where the filesystem allows it (tmpfs
    refuses: every piece goes through the page cache); either way the file holds exactly what was
    written, small, unaligned and resumed pieces included."""
    if where == "tmpfs" and not Path("/dev/shm").is_dir():
        pytest.skip("this machine has no /dev/shm (tmpfs)")
    root = tmp_path if where == "disk" else Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        data = os.urandom(3 * DIRECT_MIN_BYTES + 5000)
        sha = hashlib.sha256(data).digest()
        store = ContentStore(root)
        part = store.open_partial("dev/files", 7, sha, len(data))
        if where == "disk":
            assert part._direct >= 0  # ext4 (this project's machines) takes direct writes
        cuts = [0, DIRECT_MIN_BYTES, DIRECT_MIN_BYTES + 100, 2 * DIRECT_MIN_BYTES + 100]
        for start, end in itertools.pairwise(cuts):
            part.write(start, data[start:end])  # direct, then small, then large but unaligned
        part.close()  # a restart: the rest resumes at an unaligned offset
        again = ContentStore(root).open_partial("dev/files", 7, sha, len(data))
        assert again.size == cuts[-1]
        again.write(cuts[-1], data[cuts[-1] :])
        assert store.commit(again, sha).read_bytes() == data
    finally:
        if where == "tmpfs":
            shutil.rmtree(root)


def test_a_large_piece_refused_while_it_was_being_hashed_leaves_the_hash_of_what_was_written(
    tmp_path: Path,
) -> None:
    """Large pieces are hashed beside their write: a piece refused (wrong offset) must leave no trace."""
    data = os.urandom(2 * HASH_BESIDE_BYTES + 10)
    sha = hashlib.sha256(data).digest()
    store = ContentStore(tmp_path)
    part = store.open_partial("dev/files", 8, sha, len(data))
    part.write(0, data[:HASH_BESIDE_BYTES])
    with pytest.raises(ValueError, match="write at"):
        part.write(HASH_BESIDE_BYTES + 1, data[HASH_BESIDE_BYTES:])  # one byte off: refused
    part.write(HASH_BESIDE_BYTES, data[HASH_BESIDE_BYTES:])
    assert part.sha256 == sha
    assert store.commit(part, sha).read_bytes() == data


SMALL_MAX = 4096


def _items(*datas: bytes) -> list[tuple[bytes, bytes]]:
    return [(d, hashlib.sha256(d).digest()) for d in datas]


def _rows(root: Path) -> int:
    with contextlib.closing(sqlite3.connect(root / "small.sqlite")) as conn:
        return int(conn.execute("SELECT count(*) FROM content").fetchone()[0])


def test_small_content_becomes_rows_and_larger_content_files(tmp_path: Path) -> None:
    store = ContentStore(tmp_path, small_max_bytes=SMALL_MAX)
    small, edge, large = b"a" * 100, b"b" * SMALL_MAX, b"c" * (SMALL_MAX + 1)
    items = _items(small, edge, large)
    assert store.put_many(items) == [None, None, None]
    (_, hs), (_, he), (_, hl) = items
    assert not store.path_for(hs).exists() and not store.path_for(he).exists()
    assert store.path_for(hl).read_bytes() == large and store.load_small(hl) is None
    assert store.is_small(hs) and store.is_small(he) and not store.is_small(hl)
    assert store.load_small(hs) == small and store.load_small(he) == edge
    assert all(store.has(h) and store.verify(h) for _, h in items)
    assert _rows(tmp_path) == 2
    assert [p.name for p in tmp_path.rglob("*") if p.is_file() and p.parent != tmp_path] == [hl.hex()]
    store.close()


def test_rows_are_read_from_an_offset_in_pieces(tmp_path: Path) -> None:
    store = ContentStore(tmp_path, small_max_bytes=SMALL_MAX)
    data = bytes(range(256)) * 10
    [(_, h)] = items = _items(data)
    store.put_many(items)
    assert list(store.read(h, 0, 1000)) == [data[:1000], data[1000:2000], data[2000:]]
    assert b"".join(store.read(h, 2500)) == data[2500:]
    assert list(store.read(h, len(data))) == []
    with pytest.raises(FileNotFoundError):
        list(store.read(SHA))
    store.close()


def test_rows_are_stored_once_and_a_mismatch_is_refused(tmp_path: Path) -> None:
    store = ContentStore(tmp_path, small_max_bytes=SMALL_MAX)
    items = _items(b"one", b"two")
    tampered = (b"tampered", hashlib.sha256(b"other").digest())
    verdicts = store.put_many([items[0], tampered, items[1], items[0]])
    assert verdicts[0] is None and verdicts[2] is None and verdicts[3] is None
    assert isinstance(verdicts[1], ContentMismatch)
    assert not store.has(tampered[1]) and _rows(tmp_path) == 2
    assert store.put_many(items) == [None, None] and _rows(tmp_path) == 2  # held already
    store.close()


def test_a_file_at_the_address_is_not_stored_again_as_a_row(tmp_path: Path) -> None:
    [(data, h)] = items = _items(b"before the table")
    ContentStore(tmp_path).put_many(items)  # stored as a file (no table then)
    store = ContentStore(tmp_path, small_max_bytes=SMALL_MAX)
    assert store.put_many(items) == [None]
    assert not store.is_small(h) and store.path_for(h).read_bytes() == data and store.verify(h)
    store.close()


def test_a_chunked_arrival_of_content_held_as_a_row_is_not_stored_again(tmp_path: Path) -> None:
    store = ContentStore(tmp_path, small_max_bytes=SMALL_MAX)
    [(data, h)] = items = _items(b"x" * 3000)
    store.put_many(items)
    part = store.open_partial("dev/files", 1, h, len(data))
    part.write(0, data)
    store.commit(part, h)
    assert not store.path_for(h).exists() and store.is_small(h) and not list(store.partials.iterdir())
    store.close()


def test_rows_are_removed_and_damaged_rows_quarantined(tmp_path: Path) -> None:
    store = ContentStore(tmp_path, small_max_bytes=SMALL_MAX)
    (d1, h1), (_, h2) = items = _items(b"keep aside", b"remove me")
    store.put_many(items)
    store.remove(h2)
    assert not store.has(h2) and store.load_small(h2) is None and not store.verify(h2)
    store.remove(h2)  # removing what is gone is fine
    store.quarantine(h1)
    assert not store.has(h1) and (tmp_path / "damaged" / h1.hex()).read_bytes() == d1
    assert _rows(tmp_path) == 0
    store.close()


def test_a_damaged_row_fails_verification(tmp_path: Path) -> None:
    store = ContentStore(tmp_path, small_max_bytes=SMALL_MAX)
    [(_, h)] = items = _items(b"soon damaged")
    store.put_many(items)
    store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "small.sqlite")) as conn, conn:
        conn.execute("UPDATE content SET data = ? WHERE sha256 = ?", (b"soon dam4ged", h))
    store = ContentStore(tmp_path, small_max_bytes=SMALL_MAX)
    assert store.has(h) and not store.verify(h)
    store.close()


def test_rows_are_committed_when_put_many_returns(tmp_path: Path) -> None:
    store = ContentStore(tmp_path, small_max_bytes=SMALL_MAX)
    items = _items(*(bytes([i]) * (i + 1) for i in range(50)))
    store.put_many(items)
    # Another connection sees every row at once: the transaction committed (no close needed).
    assert _rows(tmp_path) == 50
    with contextlib.closing(sqlite3.connect(tmp_path / "small.sqlite")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    again = ContentStore(tmp_path, small_max_bytes=SMALL_MAX)
    assert all(again.load_small(h) == d for d, h in items)
    again.close()
    files_only = ContentStore(tmp_path)  # a table written before stays readable
    assert all(files_only.has(h) and files_only.verify(h) for _, h in items)
    files_only.close()


def test_a_new_table_takes_large_pages_and_an_older_one_keeps_its_own(tmp_path: Path) -> None:
    def page_size(root: Path) -> int:
        with contextlib.closing(sqlite3.connect(root / "small.sqlite")) as conn:
            return int(conn.execute("PRAGMA page_size").fetchone()[0])

    items = _items(*(bytes([i]) * 4096 for i in range(40)))
    new = ContentStore(tmp_path / "new", small_max_bytes=SMALL_MAX)
    new.put_many(items)
    new.close()
    assert page_size(tmp_path / "new") == PAGE_BYTES
    # A table made by an earlier version (SQLite's 4 KiB pages, WAL) is used as it is, rows and all.
    old = tmp_path / "old"
    old.mkdir()
    with contextlib.closing(sqlite3.connect(old / "small.sqlite")) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE content (sha256 BLOB PRIMARY KEY, data BLOB NOT NULL)")
        conn.execute("INSERT INTO content VALUES (?, ?)", (items[0][1], items[0][0]))
        conn.commit()
    store = ContentStore(old, small_max_bytes=SMALL_MAX)
    assert store.put_many(items) == [None] * len(items)
    assert all(store.load_small(h) == d and store.verify(h) for d, h in items)
    store.close()
    assert page_size(old) == 4096 and _rows(old) == len(items)


def test_a_closed_store_refuses_rows_with_an_oserror(tmp_path: Path) -> None:
    store = ContentStore(tmp_path, small_max_bytes=SMALL_MAX)
    store.close()
    with pytest.raises(OSError, match="closed"):
        store.put_many(_items(b"late"))


def test_threads_share_the_table(tmp_path: Path) -> None:
    store = ContentStore(tmp_path, small_max_bytes=SMALL_MAX)
    batches = [_items(*(f"{t}-{i}".encode() * 10 for i in range(40))) for t in range(8)]

    def work(items: list[tuple[bytes, bytes]]) -> bool:
        ok = all(v is None for v in store.put_many(items))
        ok = ok and all(store.load_small(h) == d and store.verify(h) for d, h in items)
        for _, h in items[::2]:
            store.remove(h)
        return ok and not any(store.has(h) for _, h in items[::2])

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, batches))
    assert _rows(tmp_path) == 8 * 20
    store.close()


def test_a_store_in_the_two_level_layout_is_moved_to_one_level_when_opened(tmp_path: Path) -> None:
    data = b"kept since last year"
    sha = hashlib.sha256(data).digest()
    hex_ = sha.hex()
    old = tmp_path / hex_[:2] / hex_[2:4]
    old.mkdir(parents=True)
    (old / hex_).write_bytes(data)
    (old / f".{hex_}.tmp").write_bytes(b"half")  # a put that never finished
    (tmp_path / "damaged").mkdir()  # not content: left alone
    store = ContentStore(tmp_path)
    assert store.path_for(sha) == tmp_path / hex_[:2] / hex_
    assert store.has(sha) and store.verify(sha) and b"".join(store.read(sha)) == data
    assert not old.exists() and (tmp_path / "damaged").is_dir()
    assert (tmp_path / "LAYOUT").read_text() == "2\n"
    (tmp_path / "incoming" / "1" / "leftover.7.tmp").write_bytes(b"x")  # a put a crash interrupted
    ContentStore(tmp_path)  # opened again: nothing to move, nothing lost, the leftover cleared
    assert store.has(sha) and not list((tmp_path / "incoming").glob("*/*"))


def test_a_sender_takes_rows_just_stored_from_memory_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ContentStore(tmp_path, small_max_bytes=SMALL_MAX)
    (d1, h1), (_, h2), (_, h3) = items = _items(b"one" * 100, b"two" * 100, b"three" * 100)
    store.put_many(items)
    with contextlib.closing(sqlite3.connect(tmp_path / "small.sqlite")) as conn, conn:
        conn.execute("UPDATE content SET data = ? WHERE sha256 = ?", (b"damaged", h1))
    # What is on disk is what verify and load_small see; the sender gets the row as it was stored, once.
    assert not store.verify(h1) and store.load_small(h1) == b"damaged"
    assert store.take_recent(h1) == d1
    assert store.take_recent(h1) is None  # taken: later reads come from the table (load_small)
    store.remove(h2)
    assert store.take_recent(h2) is None  # removed content is not handed out from memory
    store.quarantine(h3)
    assert store.take_recent(h3) is None
    # Bounded: the oldest rows kept in memory are dropped first, and then read from the table.
    monkeypatch.setattr("logferry.store.content.RECENT_BYTES", 1000)
    many = _items(*(bytes([i]) * 300 for i in range(10)))
    store.put_many(many)
    assert store._recent_bytes <= 1000 and list(store._recent) == [h for _, h in many[-3:]]
    assert [store.take_recent(h) for _, h in many] == [None] * 7 + [d for d, _ in many[-3:]]
    assert all(store.load_small(h) == d for d, h in many)
    assert store._recent_bytes == 0
    store.close()


def test_reads_do_not_wait_for_a_write_in_progress(tmp_path: Path) -> None:
    store = ContentStore(tmp_path, small_max_bytes=SMALL_MAX)
    [(data, h)] = items = _items(b"stored")
    store.put_many(items)
    assert store.small is not None
    with store.small._lock, ThreadPoolExecutor(1) as pool:  # an insert holds the writer (its flush)
        assert pool.submit(store.load_small, h).result(timeout=5) == data
        assert pool.submit(store.has, h).result(timeout=5)
    store.close()


def test_put_many_keeps_the_fingerprint_of_each_file_it_wrote_until_taken(tmp_path: Path) -> None:
    # The manifests record each new file's size and mtime from the write, not from a stat of the address.
    store = ContentStore(tmp_path)
    first = _items(*(bytes([i]) * (100 + i) for i in range(40)))  # two writer threads from 32 files on
    store.put_many(first)
    for data, h in first:
        st = store.path_for(h).stat()
        assert store.take_written(h) == (st.st_size, st.st_mtime_ns) == (len(data), st.st_mtime_ns)
        assert store.take_written(h) is None  # once
    again = _items(bytes([0]) * 100, b"new" * 50)
    store.put_many(again)
    assert store.take_written(again[0][1]) is None  # held already: nothing written
    assert store.take_written(again[1][1]) == (150, store.path_for(again[1][1]).stat().st_mtime_ns)
    store.close()
