"""The demo's deliberate damage: records and one whole file removed at the collector behind its back.

So that the relay's reconciliation has something to find, the demo — which owns the collector's data
directory — deletes a run of stored records and one stored file there while the collector runs, the way an
operator's ``sqlite3`` or a bad disk would (and as tests/integration/test_reconcile.py and
test_files_reconcile.py do): rows deleted in one transaction on the record store, the record store's own
delete triggers marking their reconciliation buckets dirty, already indexed rows also removed from the
full-text index (the index is external-content), a file's manifest row deleted and its content unlinked.
The relay, with ``resend_policy = "confirm"``, then lists them on its Missing page until an operator resends.

:func:`account` reads the stores read-only and says which removed items are still absent at the collector
and whether the relay lists each of them as missing, so the demo's final accounting stays truthful. This
module must never touch the relay's stores, and never remove anything the demo did not choose here.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logferry.reconcile.summary import ItemKind
from logferry.store.missing import MissingState

REMOVE_RECORDS = 12  # stored rows of one device, consecutive among its stored rows
FIRST_SEQ = 21  # leave the first lines alone: the removal is visibly in the middle of the stream
BUSY_MS = 30_000
# Absent and accounted for: waiting for an operator, resent and on the way, or acknowledged as lost.
LISTED = (MissingState.OPEN.value, MissingState.RESENT.value, MissingState.ACKNOWLEDGED.value)


@dataclass
class Removed:
    """What the demo removed at the collector (empty until :func:`remove_at_collector` ran)."""

    source: str = ""
    seqs: list[int] = field(default_factory=list)
    file_source: str = ""
    file_seq: int = 0
    file_path: str = ""

    @property
    def done(self) -> bool:
        return bool(self.seqs)


@dataclass(frozen=True)
class Accounting:
    """Where the removed items are now."""

    absent_records: int  # removed and not stored again (yet)
    absent_file: bool
    unlisted: int  # absent items the relay's missing list does not (yet) show (open, resent, acknowledged)


def _connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, timeout=BUSY_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={BUSY_MS}")
    return conn


def ready(collector: Path, source: str, file_source: str) -> bool:
    """Whether the collector stores enough of ``source`` as rows, and a file of ``file_source``."""
    try:
        rec = _read(collector / "records.db", "SELECT COUNT(*) FROM records WHERE source = ? AND seq >= ?",
                    source, FIRST_SEQ)  # fmt: skip
        files = _read(collector / "files.db", "SELECT COUNT(*) FROM files WHERE source = ?", file_source)
    except sqlite3.Error:
        return False  # a store being created or migrated
    return int(rec[0][0]) >= REMOVE_RECORDS and int(files[0][0]) >= 1


def remove_at_collector(collector: Path, source: str, file_source: str) -> Removed:
    """Delete ``REMOVE_RECORDS`` stored rows of ``source`` and the first stored file of ``file_source``."""
    removed = Removed(source=source, file_source=file_source)
    conn = _connect(collector / "records.db")
    try:
        conn.execute("BEGIN IMMEDIATE")  # the collector's writer waits: the index cannot move meanwhile
        rows = conn.execute(
            "SELECT id, seq, msg FROM records WHERE source = ? AND seq >= ? ORDER BY seq LIMIT ?",
            (source, FIRST_SEQ, REMOVE_RECORDS),
        ).fetchall()
        (indexed,) = conn.execute("SELECT fts_indexed_rowid FROM meta").fetchone()
        conn.executemany(
            "INSERT INTO records_fts(records_fts, rowid, msg) VALUES ('delete', ?, ?)",
            [(rid, msg) for rid, _, msg in rows if rid <= indexed],
        )
        conn.executemany("DELETE FROM records WHERE id = ?", [(rid,) for rid, _, _ in rows])
        conn.execute("COMMIT")
        removed.seqs = [int(seq) for _, seq, _ in rows]
    finally:
        conn.close()
    conn = _connect(collector / "files.db")
    try:
        conn.execute("BEGIN IMMEDIATE")
        seq, path, sha = conn.execute(
            "SELECT seq, path, sha256 FROM files WHERE source = ? ORDER BY seq LIMIT 1", (file_source,)
        ).fetchone()
        conn.execute("DELETE FROM files WHERE source = ? AND seq = ?", (file_source, seq))
        (others,) = conn.execute("SELECT COUNT(*) FROM files WHERE sha256 = ?", (sha,)).fetchone()
        conn.execute("COMMIT")
    finally:
        conn.close()
    removed.file_seq, removed.file_path = int(seq), str(path)
    digest = bytes(sha).hex()
    if not others:  # content is shared by identical files: keep it while another manifest needs it
        (collector / "files" / digest[:2] / digest).unlink(missing_ok=True)
    return removed


def _read(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    if not db.exists():
        raise sqlite3.OperationalError(f"{db} does not exist yet")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def account(root: Path, removed: Removed) -> Accounting:
    """Which removed items are absent at the collector now, and how many of those the relay does not list."""
    sql = "SELECT seq FROM records WHERE source = ? AND seq BETWEEN ? AND ?"
    rows = _read(root / "collector" / "records.db", sql, removed.source, min(removed.seqs), max(removed.seqs))
    present = {int(s) for (s,) in rows}
    absent = [s for s in removed.seqs if s not in present]
    file_back = _read(root / "collector" / "files.db", "SELECT 1 FROM files WHERE source = ? AND seq = ?",
                      removed.file_source, removed.file_seq)  # fmt: skip
    listed = _read(
        root / "relay" / "missing.db",
        "SELECT source, item, first_seq, last_seq FROM missing WHERE state IN (?, ?, ?)",
        *LISTED,
    )

    def is_listed(source: str, kind: ItemKind, seq: int) -> bool:
        return any(s == source and i == int(kind) and a <= seq <= b for s, i, a, b in listed)

    unlisted = sum(1 for s in absent if not is_listed(removed.source, ItemKind.RECORD, s))
    if not file_back and not is_listed(removed.file_source, ItemKind.FILE, removed.file_seq):
        unlisted += 1
    return Accounting(len(absent), not file_back, unlisted)
