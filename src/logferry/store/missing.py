"""The relay's missing list: every difference reconciliation or an agent reported, until it is settled.

One row per contiguous range of one source and one kind of problem:

- ``missing_at_collector``: forwarded, acknowledged, and no longer at the collector; the relay still has it.
- ``digest_mismatch``: the collector holds another payload under the id (tampered, corrupt).
- ``lost``: missing at the collector and the relay no longer has it either (outbox pruned).
- ``missing_at_device``: a hole in an agent's seqs that the agent could not resend.

States: ``open`` (found, nothing done), ``resent`` (the relay sent its copy again; stays until a
reconciliation no longer finds it), ``acknowledged`` (an operator accepted it, with who and when; never
reported again), ``resolved`` (a later reconciliation found it settled), ``recovered`` (a
``missing_at_device`` range whose seqs the relay's journal now has: the agent sent them after all, e.g. when
an operator asked the device; ``resolved_ns`` says when). When only part of a device range arrives, the
row keeps naming what is still missing and the arrived part gets a ``recovered`` row of its own (same
``found_ns``), so the rows of one finding still cover its whole range. The table lives in its own SQLite
file (``missing.db``) next to the journal, with the same single-writer discipline.

This module never deletes a row (history is evidence) and never reopens an acknowledged range; an
acknowledged range stays acknowledged even if its seqs arrive later (the operator's decision is kept).
"""

from __future__ import annotations

import enum
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec

from logferry.reconcile.summary import ItemKind
from logferry.store.runs import Range, coalesce
from logferry.store.sqlite import Database, Durability

MISSING_APPLICATION_ID = 0x4C464D73  # "LFMs"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE missing(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL, item INTEGER NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
        kind TEXT NOT NULL, state TEXT NOT NULL,
        found_ns INTEGER NOT NULL, seen_ns INTEGER NOT NULL,
        resent_ns INTEGER, resends INTEGER NOT NULL DEFAULT 0,
        acknowledged_by TEXT, acknowledged_ns INTEGER, resolved_ns INTEGER
    );
    CREATE INDEX missing_state ON missing(state, id);
    CREATE INDEX missing_range ON missing(source, item, kind, first_seq);
    """,
)


class MissingKind(enum.StrEnum):
    MISSING_AT_COLLECTOR = "missing_at_collector"
    DIGEST_MISMATCH = "digest_mismatch"
    LOST = "lost"
    MISSING_AT_DEVICE = "missing_at_device"


class MissingState(enum.StrEnum):
    OPEN = "open"
    RESENT = "resent"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    RECOVERED = "recovered"


_LIVE = (MissingState.OPEN.value, MissingState.RESENT.value)
_INSERT = (
    "INSERT INTO missing(source, item, first_seq, last_seq, kind, state, found_ns, seen_ns) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_COLUMNS = (
    "id, source, item, first_seq, last_seq, kind, state, found_ns, seen_ns, resent_ns, resends, "
    "acknowledged_by, acknowledged_ns, resolved_ns"
)


class MissingEntry(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One row of the missing list (fields in table order)."""

    id: int
    source: str
    item: ItemKind
    first_seq: int
    last_seq: int
    kind: MissingKind
    state: MissingState
    found_ns: int
    seen_ns: int
    resent_ns: int | None
    resends: int
    acknowledged_by: str | None
    acknowledged_ns: int | None
    resolved_ns: int | None

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1


class SourceTally(msgspec.Struct, frozen=True, gc=False):
    """How many entries (and seqs in them) of one kind one source has in the missing list."""

    source: str
    kind: MissingKind
    entries: int
    seqs: int


def _entry(row: tuple[object, ...]) -> MissingEntry:
    return msgspec.convert(row, MissingEntry)


class MissingStore:
    """The durable missing list. Create with ``await MissingStore.open(path)``; close with ``close()``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: Path | str, durability: Durability = Durability.FULL) -> MissingStore:
        db = await Database.open(
            path, MIGRATIONS, durability, "missing", application_id=MISSING_APPLICATION_ID
        )
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    async def update(
        self,
        source: str,
        item: ItemKind,
        scanned: Range,
        found: dict[MissingKind, list[Range]],
        now_ns: int | None = None,
    ) -> int:
        """Record one reconciliation of ``source`` over ``scanned``: ``found`` is every difference in it.

        A range found again keeps its row (state and all; ``seen_ns`` moves); a new one gets an open row;
        a live row inside ``scanned`` that was not found again is resolved. Acknowledged ranges are cut out
        of what is found first. Returns the number of new rows.
        """
        now = time.time_ns() if now_ns is None else now_ns
        lo, hi = scanned

        def run(conn: sqlite3.Connection) -> int:
            added = 0
            keep: set[int] = set()
            for kind, ranges in found.items():
                fresh = subtract(ranges, _acknowledged(conn, source, item, kind))
                for first, last in fresh:
                    row = conn.execute(
                        "SELECT id FROM missing WHERE source = ? AND item = ? AND kind = ? AND first_seq = ? "
                        "AND last_seq = ? AND state IN (?, ?)",
                        (source, int(item), kind.value, first, last, *_LIVE),
                    ).fetchone()
                    if row is not None:
                        keep.add(int(row[0]))
                        conn.execute("UPDATE missing SET seen_ns = ? WHERE id = ?", (now, row[0]))
                        continue
                    cur = conn.execute(
                        _INSERT,
                        (source, int(item), first, last, kind.value, MissingState.OPEN.value, now, now),
                    )
                    keep.add(int(cur.lastrowid or 0))
                    added += 1
            stale = conn.execute(
                "SELECT id FROM missing WHERE source = ? AND item = ? AND state IN (?, ?) AND kind != ? "
                "AND first_seq >= ? AND last_seq <= ?",
                (source, int(item), *_LIVE, MissingKind.MISSING_AT_DEVICE.value, lo, hi),
            ).fetchall()
            gone = [(now, r[0]) for r in stale if int(r[0]) not in keep]
            conn.executemany(
                f"UPDATE missing SET state = '{MissingState.RESOLVED.value}', resolved_ns = ? WHERE id = ?",
                gone,
            )
            return added

        return await self._db.write(run)

    async def add_device_gaps(self, source: str, ranges: Sequence[Range], now_ns: int | None = None) -> int:
        """Record seqs an agent could not resend (``missing_at_device``), skipping ranges already listed."""
        now = time.time_ns() if now_ns is None else now_ns
        kind = MissingKind.MISSING_AT_DEVICE

        def run(conn: sqlite3.Connection) -> int:
            known = [
                (int(f), int(la))
                for f, la in conn.execute(
                    "SELECT first_seq, last_seq FROM missing WHERE source = ? AND item = ? AND kind = ?",
                    (source, int(ItemKind.RECORD), kind.value),
                )
            ]
            fresh = subtract(coalesce(ranges), coalesce(known))
            conn.executemany(
                _INSERT,
                [(source, int(ItemKind.RECORD), f, la, kind.value, MissingState.OPEN.value, now, now)
                 for f, la in fresh],
            )  # fmt: skip
            return len(fresh)

        return await self._db.write(run)

    async def device_ranges(self, source: str) -> list[Range]:
        """Every seq range of ``source`` already reported missing at the device (any state)."""
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT first_seq, last_seq FROM missing WHERE source = ? AND kind = ?",
                (source, MissingKind.MISSING_AT_DEVICE.value),
            ).fetchall()
        )
        return coalesce((int(f), int(la)) for f, la in rows)

    async def live_device_ranges(self) -> dict[str, list[Range]]:
        """Per source: the seq ranges of its live (open or resent) ``missing_at_device`` entries."""
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT source, first_seq, last_seq FROM missing WHERE kind = ? AND state IN (?, ?)",
                (MissingKind.MISSING_AT_DEVICE.value, *_LIVE),
            ).fetchall()
        )
        out: dict[str, list[Range]] = {}
        for source, first, last in rows:
            out.setdefault(str(source), []).append((int(first), int(last)))
        return {s: coalesce(r) for s, r in out.items()}

    async def recover_device(self, source: str, journaled: Sequence[Range], now_ns: int | None = None) -> int:
        """The relay's journal now has ``journaled`` seqs of ``source``: close what they cover of its live
        ``missing_at_device`` entries as ``recovered``; returns how many seqs were closed.

        A live row wholly covered becomes ``recovered``; a row covered in part keeps its first piece still
        missing (same id, state and history), other missing pieces and the recovered pieces get rows of their
        own. Acknowledged rows are left alone.
        """
        now = time.time_ns() if now_ns is None else now_ns
        have = coalesce(journaled)

        def run(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM missing "
                "WHERE source = ? AND item = ? AND kind = ? AND state IN (?, ?)",
                (source, int(ItemKind.RECORD), MissingKind.MISSING_AT_DEVICE.value, *_LIVE),
            ).fetchall()
            closed = 0
            for e in map(_entry, rows):
                whole = [(e.first_seq, e.last_seq)]
                arrived = intersect(whole, have)
                if not arrived:
                    continue
                closed += sum(hi - lo + 1 for lo, hi in arrived)
                still = subtract(whole, arrived)
                if not still:
                    conn.execute(
                        "UPDATE missing SET state = ?, resolved_ns = ? WHERE id = ?",
                        (MissingState.RECOVERED.value, now, e.id),
                    )
                    continue
                conn.execute("UPDATE missing SET first_seq = ?, last_seq = ? WHERE id = ?", (*still[0], e.id))
                pieces = [(r, e.state, None) for r in still[1:]] + [
                    (r, MissingState.RECOVERED, now) for r in arrived
                ]
                conn.executemany(
                    "INSERT INTO missing(source, item, first_seq, last_seq, kind, state, found_ns, seen_ns, "
                    "resent_ns, resends, resolved_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(e.source, int(e.item), lo, hi, e.kind.value, state.value, e.found_ns, e.seen_ns,
                      e.resent_ns, e.resends, at) for (lo, hi), state, at in pieces],
                )  # fmt: skip
            return closed

        return await self._db.write(run)

    async def entries(
        self,
        *,
        state: MissingState | None = None,
        kind: MissingKind | None = None,
        source: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[MissingEntry]:
        """Entries matching every filter given, newest first."""
        clauses, params = _where(state, kind, source)
        sql = f"SELECT {_COLUMNS} FROM missing WHERE {clauses} ORDER BY id DESC LIMIT ? OFFSET ?"
        return await self._db.read(lambda c: [_entry(r) for r in c.execute(sql, [*params, limit, offset])])

    async def count(
        self, *, state: MissingState | None = None, kind: MissingKind | None = None, source: str | None = None
    ) -> int:
        clauses, params = _where(state, kind, source)
        rows = await self._db.read(
            lambda c: c.execute(f"SELECT COUNT(*) FROM missing WHERE {clauses}", params).fetchone()
        )
        return int(rows[0])

    async def per_source(
        self, *, state: MissingState | None = None, kind: MissingKind | None = None, limit: int = 1000
    ) -> list[SourceTally]:
        """Per source (at most ``limit`` sources, by name) and kind: how many entries and seqs match."""
        clauses, params = _where(state, kind, None)
        sources = f"SELECT DISTINCT source FROM missing WHERE {clauses} ORDER BY source LIMIT ?"
        sql = (
            f"SELECT source, kind, COUNT(*), SUM(last_seq - first_seq + 1) FROM missing WHERE {clauses} "
            f"AND source IN ({sources}) GROUP BY source, kind ORDER BY source, kind"
        )
        rows = await self._db.read(lambda c: c.execute(sql, [*params, *params, limit]).fetchall())
        return [SourceTally(str(s), MissingKind(k), int(n), int(q)) for s, k, n, q in rows]

    async def get(self, ids: Sequence[int]) -> list[MissingEntry]:
        """The entries with these ids (unknown ids are left out), ascending."""
        wanted = sorted(set(ids))
        marks = ",".join("?" * len(wanted))
        sql = f"SELECT {_COLUMNS} FROM missing WHERE id IN ({marks}) ORDER BY id"
        return await self._db.read(lambda c: [_entry(r) for r in c.execute(sql, wanted)]) if wanted else []

    async def mark_resent(self, ids: Sequence[int], now_ns: int | None = None) -> None:
        now = time.time_ns() if now_ns is None else now_ns
        await self._db.write(
            lambda c: c.executemany(
                "UPDATE missing SET state = ?, resent_ns = ?, resends = resends + 1 "
                "WHERE id = ? AND state IN (?, ?)",
                [(MissingState.RESENT.value, now, i, *_LIVE) for i in ids],
            )
        )

    async def acknowledge(self, ids: Sequence[int], who: str, now_ns: int | None = None) -> int:
        """An operator accepts these entries (e.g. as lost for good); returns how many changed."""
        now = time.time_ns() if now_ns is None else now_ns

        def run(conn: sqlite3.Connection) -> int:
            changed = 0
            for i in ids:
                cur = conn.execute(
                    "UPDATE missing SET state = ?, acknowledged_by = ?, acknowledged_ns = ? "
                    "WHERE id = ? AND state IN (?, ?)",
                    (MissingState.ACKNOWLEDGED.value, who, now, i, *_LIVE),
                )
                changed += cur.rowcount
            return changed

        return await self._db.write(run)


def _where(
    state: MissingState | None, kind: MissingKind | None, source: str | None
) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    for clause, value in (("state = ?", state), ("kind = ?", kind), ("source = ?", source)):
        if value is not None:
            clauses.append(clause)
            params.append(str(value))
    return " AND ".join(clauses) or "1", params


def _acknowledged(conn: sqlite3.Connection, source: str, item: ItemKind, kind: MissingKind) -> list[Range]:
    rows = conn.execute(
        "SELECT first_seq, last_seq FROM missing WHERE source = ? AND item = ? AND kind = ? AND state = ?",
        (source, int(item), kind.value, MissingState.ACKNOWLEDGED.value),
    )
    return coalesce((int(f), int(la)) for f, la in rows)


def intersect(ranges: Sequence[Range], other: Sequence[Range]) -> list[Range]:
    """The seqs in both ``ranges`` and ``other`` (both inclusive, any order), as coalesced ranges."""
    out: list[Range] = []
    theirs = coalesce(other)
    for first, last in coalesce(ranges):
        for lo, hi in theirs:
            if hi < first:
                continue
            if lo > last:
                break
            out.append((max(first, lo), min(last, hi)))
    return out


def subtract(ranges: Sequence[Range], minus: Sequence[Range]) -> list[Range]:
    """The parts of ``ranges`` outside every range of ``minus`` (both inclusive, any order)."""
    out: list[Range] = []
    cuts = coalesce(minus)
    for first, last in coalesce(ranges):
        start = first
        for lo, hi in cuts:
            if hi < start or lo > last:
                continue
            if lo > start:
                out.append((start, lo - 1))
            start = max(start, hi + 1)
            if start > last:
                break
        if start <= last:
            out.append((start, last))
    return out
