"""Relay file retention with real processes: the content of acknowledged files is kept only up to
``file_keep_bytes`` (oldest removed first), and a file the collector loses after the relay pruned it is
reported lost, while one the relay still keeps is resent (policy auto)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.integration.files_chain import ITEMS, age, start_files_chain, write_file
from tests.integration.procs import Procs, query, wait_until

SIZE = 100_000


def test_acked_content_is_bounded_and_a_pruned_file_is_reported_lost(procs: Procs, tmp_path: Path) -> None:
    extra = 'reconcile_interval_s = 1\nresend_policy = "auto"\nfile_keep_bytes = 250000'
    chain = start_files_chain(procs, tmp_path, relay_extra=extra)
    want = {}
    for i in range(5):
        path = chain.folder / f"k{i}.bin"
        want[str(path)] = write_file(path, SIZE, seed=200 + i)
        age(path)
    chain.start_agent()
    wait_until(lambda: chain.stored() == want, 30, "5 files at the collector")
    journal = tmp_path / "relay" / "journal.db"
    kept = chain.relay_content  # files and small-table rows alike

    wait_until(lambda: len(kept()) == 2, 10, "only the 2 newest contents kept (250000 bytes bound)")
    order = query(
        journal, "SELECT seq, sha256, pruned FROM file_items WHERE source = ? ORDER BY sent_ns", ITEMS
    )
    assert [int(p) for _, _, p in order] == [1, 1, 1, 0, 0]  # oldest acknowledged first
    assert kept() == {bytes(h).hex() for _, h, _ in order[3:]}

    # The collector loses the oldest (pruned at the relay) and the newest (still kept) files.
    (old_seq, old_sha, _), (new_seq, new_sha, _) = order[0], order[-1]
    conn = sqlite3.connect(chain.files_db, timeout=30)
    with conn:
        conn.execute("DELETE FROM files WHERE source = ? AND seq IN (?, ?)", (ITEMS, old_seq, new_seq))
    conn.close()
    for sha in (old_sha, new_sha):
        chain.content_path(bytes(sha).hex()).unlink()
    missing = tmp_path / "relay" / "missing.db"

    def entries() -> set[tuple[str, int, int]]:
        rows = query(missing, "SELECT kind, first_seq, last_seq FROM missing WHERE item = 2")
        return {(str(k), int(f), int(la)) for k, f, la in rows}

    wait_until(lambda: len(entries()) == 2, 30, "two file entries")
    assert entries() == {("lost", old_seq, old_seq), ("missing_at_collector", new_seq, new_seq)}
    wait_until(lambda: len(chain.stored()) == 4, 30, "the kept file resent")
    assert chain.stored() == {p: h for p, h in want.items() if h != bytes(old_sha).hex()}
