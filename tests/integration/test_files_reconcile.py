"""File reconciliation with real processes: delete one stored file (manifest and content) and corrupt
another's content at the collector behind its back; the relay finds exactly those two, and resends them
(auto) or lists them for an operator whose resend through the API brings them back (confirm). Content is
checked end to end through the collector's download API. Damage that keeps a file's size and mtime is found
by the collector's scheduled re-hash (``file_rehash_interval_s``) and then listed the same way."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from tests.integration.files_chain import ITEMS, FilesChain, age, start_files_chain, write_file
from tests.integration.procs import Procs, query, wait_until

OPERATOR = {"X-Logferry-Operator": "kim"}


def _chain(
    procs: Procs, root: Path, policy: str, collector_args: tuple[str, ...] = ()
) -> tuple[FilesChain, dict[str, str]]:
    extra = f'reconcile_interval_s = 1\nresend_policy = "{policy}"'
    chain = start_files_chain(procs, root, relay_extra=extra, collector_args=collector_args)
    want: dict[str, str] = {}
    for i, size in enumerate((70_000, 300_000, 5_000, 1 << 20)):
        path = chain.folder / f"r{i}.bin"
        want[str(path)] = write_file(path, size, seed=100 + i)
        age(path)
    chain.start_agent(chunk_bytes=64 * 1024)
    wait_until(lambda: chain.stored() == want, 30, "4 files at the collector")
    journal = root / "relay" / "journal.db"
    wait_until(lambda: not query(journal, "SELECT 1 FROM file_items WHERE sent = 0"), 10, "all acknowledged")
    return chain, want


def _seq(chain: FilesChain, path: str) -> int:
    return int(query(chain.files_db, "SELECT seq FROM files WHERE path = ?", path)[0][0])


def _damage(chain: FilesChain, want: dict[str, str]) -> tuple[int, int]:
    """Delete r0's manifest row and content; overwrite part of r1's content. Returns their seqs."""
    gone, bad = str(chain.folder / "r0.bin"), str(chain.folder / "r1.bin")
    gone_seq, bad_seq = _seq(chain, gone), _seq(chain, bad)
    conn = sqlite3.connect(chain.files_db, timeout=30)
    try:
        with conn:
            conn.execute("DELETE FROM files WHERE source = ? AND seq = ?", (ITEMS, gone_seq))
    finally:
        conn.close()
    chain.content_path(want[gone]).unlink()
    with chain.content_path(want[bad]).open("r+b") as f:
        f.seek(1000)
        f.write(b"corrupted!")
    return gone_seq, bad_seq


def _file_entries(chain: FilesChain, state: str | None = None) -> list[tuple[Any, ...]]:
    db = chain.root / "relay" / "missing.db"
    sql = "SELECT id, kind, first_seq, last_seq, state FROM missing WHERE item = 2"
    return query(db, sql + " ORDER BY id") if state is None else query(db, sql + " AND state = ?", state)


def _downloaded(chain: FilesChain) -> dict[str, str]:
    """path -> sha256 hex of the bytes the collector's API serves for every stored file."""
    api = "http://" + chain.collector.address("api")
    page = httpx.get(f"{api}/api/files", params={"source": ITEMS, "limit": 50}, trust_env=False).json()
    out: dict[str, str] = {}
    for item in page["items"]:
        h = hashlib.sha256()
        with httpx.stream("GET", api + item["content"], trust_env=False) as got:
            if got.status_code != 200:
                continue
            for piece in got.iter_bytes():
                h.update(piece)
        out[item["path"]] = h.hexdigest()
    return out


def test_auto_restores_a_deleted_and_a_corrupted_file(procs: Procs, tmp_path: Path) -> None:
    chain, want = _chain(procs, tmp_path, "auto")
    gone_seq, bad_seq = _damage(chain, want)
    wait_until(lambda: len(_file_entries(chain)) == 2, 30, "two file entries in the missing list")
    found = {(kind, first, last) for _, kind, first, last, _ in _file_entries(chain)}
    assert found == {("missing_at_collector", gone_seq, gone_seq), ("digest_mismatch", bad_seq, bad_seq)}
    wait_until(lambda: _downloaded(chain) == want, 30, "both files back, byte-identical")
    wait_until(lambda: len(_file_entries(chain, "resolved")) == 2, 30, "both entries resolved")
    assert len(_file_entries(chain)) == 2  # nothing else was ever reported


def test_confirm_lists_them_and_a_resend_through_the_api_restores_them(procs: Procs, tmp_path: Path) -> None:
    chain, want = _chain(procs, tmp_path, "confirm")
    gone_seq, bad_seq = _damage(chain, want)
    api = "http://" + chain.relay.address("api")
    listed: list[dict[str, Any]] = []

    def two_listed() -> bool:
        nonlocal listed
        page = httpx.get(f"{api}/api/missing", params={"state": "open"}, trust_env=False).json()
        listed = [e for e in page["items"] if e["item"] == "file"]
        return len(listed) == 2

    wait_until(two_listed, 30, "two file entries listed by GET /api/missing")
    found = {(e["kind"], e["first_seq"], e["last_seq"]) for e in listed}
    assert found == {("missing_at_collector", gone_seq, gone_seq), ("digest_mismatch", bad_seq, bad_seq)}
    assert _downloaded(chain) != want  # confirm: nothing came back on its own
    answer = httpx.post(f"{api}/api/missing/resend", json={"ids": [e["id"] for e in listed]},
                        headers=OPERATOR, trust_env=False, timeout=30)  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["entries"] == 2 and answer.json()["files"] == 2
    wait_until(lambda: _downloaded(chain) == want, 30, "both files back, byte-identical")
    wait_until(lambda: len(_file_entries(chain, "resolved")) == 2, 30, "both entries resolved")


def test_a_scheduled_rehash_finds_damage_that_kept_size_and_mtime(procs: Procs, tmp_path: Path) -> None:
    chain, want = _chain(procs, tmp_path, "confirm", ("--set", "file_rehash_interval_s=1"))
    path = str(chain.folder / "r2.bin")
    seq, content = _seq(chain, path), chain.content_path(want[path])
    before = content.stat()
    with content.open("r+b") as f:  # bit rot: same size, and the mtime is put back
        f.seek(100)
        flipped = bytes(b ^ 0xFF for b in f.read(8))
        f.seek(100)
        f.write(flipped)
    os.utime(content, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (content.stat().st_size, content.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    wait_until(lambda: len(_file_entries(chain)) == 1, 30, "the damaged file in the missing list")
    [(_, kind, first, last, state)] = _file_entries(chain)
    assert (kind, first, last, state) == ("digest_mismatch", seq, seq, "open")
    assert "1 content missing or damaged" in chain.collector.log_text()
