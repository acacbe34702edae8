"""``analysis.db`` in the collector's data directory: templates, their hourly counts, error-rate windows per
source, alerts, and the miner's cursor over the record store with drain3's state.

A separate file from ``records.db`` on purpose: it has its own writer thread, so mining never queues
behind (or in front of) the writes that store relays' batches. Its contents are derived: deleting the file
makes the miner start again from the first record.

A mined batch is committed with the cursor in one transaction (:meth:`AnalysisStore.commit`), and only if
the cursor is still where the batch started, so after a crash or restart no record is counted twice or
skipped. Error-rate windows are judged in the same transaction, once each (``judged``), and alerts are
unique per (kind, source, template, window). :meth:`AnalysisStore.prune` deletes hourly template counts,
error-rate windows (both by record time) and alerts (by when they were raised) older than a cut-off, at
most ``limit`` rows per table per transaction, so the writer is never held long; templates themselves stay,
with their all-time counts and first and last seen. This module must never read or write the record store.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from logferry.analysis.alerts import Alert, complete_through, judge_windows, new_template_alert
from logferry.analysis.miner import NS, MinedBatch
from logferry.analysis.settings import TEMPLATE_BUCKET_S, AnalysisSettings
from logferry.errors import StoreError
from logferry.store.sqlite import Database, Durability

T = TypeVar("T")

ANALYSIS_APPLICATION_ID = 0x4C46416E  # "LFAn"
MAX_JUDGED_WINDOWS = 10_000  # per source and commit: a long backlog is judged over several commits

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE state(
        id INTEGER PRIMARY KEY CHECK (id = 1),
        cursor INTEGER NOT NULL, mined INTEGER NOT NULL, warm_from INTEGER NOT NULL,
        drain BLOB, drain_cursor INTEGER NOT NULL, drain_key TEXT NOT NULL
    );
    INSERT INTO state VALUES (1, 0, 0, 0, NULL, 0, '');
    CREATE TABLE templates(
        id INTEGER PRIMARY KEY, template TEXT NOT NULL, count INTEGER NOT NULL,
        first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL, found_ns INTEGER NOT NULL
    );
    CREATE INDEX templates_first ON templates(first_ns);
    CREATE TABLE template_hours(
        template INTEGER NOT NULL, hour INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (template, hour)
    ) WITHOUT ROWID;
    CREATE INDEX template_hours_by_hour ON template_hours(hour);
    CREATE TABLE source_windows(
        source TEXT NOT NULL, start INTEGER NOT NULL, total INTEGER NOT NULL, errors INTEGER NOT NULL,
        PRIMARY KEY (source, start)
    ) WITHOUT ROWID;
    CREATE INDEX source_windows_by_start ON source_windows(start);
    CREATE TABLE judged(source TEXT PRIMARY KEY, through INTEGER NOT NULL, newest INTEGER NOT NULL);
    CREATE TABLE alerts(
        id INTEGER PRIMARY KEY, at_ns INTEGER NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL,
        template INTEGER NOT NULL, win_s INTEGER NOT NULL, value REAL NOT NULL, baseline REAL NOT NULL,
        detail TEXT NOT NULL, UNIQUE (kind, source, template, win_s)
    );
    """,
)


class CursorMoved(StoreError):
    """A batch was mined from a cursor the store no longer has (another miner, or a replayed batch)."""


def _state(conn: sqlite3.Connection) -> tuple[int, int, int]:
    cursor, mined, warm_from = conn.execute("SELECT cursor, mined, warm_from FROM state").fetchone()
    return int(cursor), int(mined), int(warm_from)


def _add_alerts(conn: sqlite3.Connection, alerts: list[Alert], now_ns: int) -> int:
    before = conn.total_changes
    conn.executemany(
        "INSERT OR IGNORE INTO alerts(at_ns, kind, source, template, win_s, value, baseline, detail) "
        "VALUES (?,?,?,?,?,?,?,?)",
        [
            (now_ns, a.kind.value, a.source, a.template, a.window_s, a.value, a.baseline, a.detail)
            for a in alerts
        ],
    )
    return conn.total_changes - before


def judge(conn: sqlite3.Connection, sources: set[str] | None, now_ns: int, settings: AnalysisSettings) -> int:
    """Judge the newly complete windows of ``sources`` (None: every source); returns alerts added."""
    width = settings.window_s
    rows = conn.execute("SELECT source, through, newest FROM judged").fetchall()
    added = 0
    for source, through, newest in rows:
        if sources is not None and source not in sources:
            continue
        last = complete_through(int(newest), now_ns / NS, width)
        if last <= through:
            continue
        first = max(int(through) + width, last - MAX_JUDGED_WINDOWS * width)
        series = {
            int(s): (int(n), int(e))
            for s, n, e in conn.execute(
                "SELECT start, total, errors FROM source_windows WHERE source = ? AND start BETWEEN ? AND ?",
                (source, first - settings.baseline_windows * width, last),
            )
        }
        added += _add_alerts(conn, judge_windows(source, series, first, last, settings), now_ns)
        conn.execute("UPDATE judged SET through = ? WHERE source = ?", (last, source))
    return added


def commit_batch(
    conn: sqlite3.Connection, after: int, batch: MinedBatch, now_ns: int, settings: AnalysisSettings
) -> int:
    """Add ``batch`` (mined from the records after rowid ``after``); returns the alerts it raised."""
    cursor, mined, warm_from = _state(conn)
    if cursor != after:
        raise CursorMoved(f"analysis cursor is at {cursor}, the batch was mined after {after}")
    conn.executemany(
        "INSERT INTO templates VALUES (?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
        "template = excluded.template, "
        "count = count + excluded.count, first_ns = MIN(first_ns, excluded.first_ns), "
        "last_ns = MAX(last_ns, excluded.last_ns)",
        [(tid, d.template, d.count, d.first_ns, d.last_ns, now_ns) for tid, d in batch.templates.items()],
    )
    conn.executemany(
        "INSERT INTO template_hours VALUES (?,?,?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
        [(tid, hour, n) for (tid, hour), n in batch.hours.items()],
    )
    conn.executemany(
        "INSERT INTO source_windows VALUES (?,?,?,?) ON CONFLICT DO UPDATE SET "
        "total = total + excluded.total, errors = errors + excluded.errors",
        [(source, start, n, e) for (source, start), (n, e) in batch.windows.items()],
    )
    newest: dict[str, int] = {}
    for source, start in batch.windows:
        newest[source] = max(newest.get(source, start), start)
    conn.executemany(
        "INSERT INTO judged VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET newest = MAX(newest, excluded.newest)",
        # A new source's windows are judged from its first one on (through: the window before it).
        [
            (s, min(st for (src, st) in batch.windows if src == s) - settings.window_s, n)
            for s, n in newest.items()
        ],
    )
    alerts: list[Alert] = []
    if mined - warm_from >= settings.warmup_records:
        for tid in batch.created:
            d = batch.templates[tid]
            alerts.append(
                new_template_alert(tid, d.template, d.first_ns // NS // TEMPLATE_BUCKET_S * TEMPLATE_BUCKET_S)
            )
    added = _add_alerts(conn, alerts, now_ns)
    added += judge(conn, set(newest), now_ns, settings)
    conn.execute("UPDATE state SET cursor = ?, mined = mined + ?", (batch.cursor, batch.records))
    return added


def prune_rows(conn: sqlite3.Connection, before_s: int, window_s: int, limit: int) -> int:
    """Delete at most ``limit`` rows per table that ended before ``before_s`` (epoch s); returns rows deleted.

    An hour (a window) goes only once it ended before the cut-off, so every bucket that overlaps what is
    kept stays whole and a count shown for a kept interval never changes. The indexes by hour and by start
    make each delete cost the rows it removes.
    """
    before = conn.total_changes
    conn.execute(
        "DELETE FROM template_hours WHERE (template, hour) IN "
        "(SELECT template, hour FROM template_hours WHERE hour <= ? ORDER BY hour LIMIT ?)",
        (before_s - TEMPLATE_BUCKET_S, limit),
    )
    conn.execute(
        "DELETE FROM source_windows WHERE (source, start) IN "
        "(SELECT source, start FROM source_windows WHERE start <= ? ORDER BY start LIMIT ?)",
        (before_s - window_s, limit),
    )
    # Alert ids grow with at_ns (raised in commit order), so the oldest are the lowest ids: no index needed.
    conn.execute(
        "DELETE FROM alerts WHERE id IN (SELECT id FROM alerts WHERE at_ns < ? ORDER BY id LIMIT ?)",
        (before_s * NS, limit),
    )
    return conn.total_changes - before


class AnalysisStore:
    """Open with ``await AnalysisStore.open(data_dir)``; close with ``await close()``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    async def open(cls, data_dir: Path | str, durability: Durability = Durability.NORMAL) -> AnalysisStore:
        db = await Database.open(
            Path(data_dir) / "analysis.db", MIGRATIONS, durability, "analysis",
            application_id=ANALYSIS_APPLICATION_ID,
        )  # fmt: skip
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    async def read_with(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a read connection (the queries in ``analysis/queries.py``)."""
        return await self._db.read(fn)

    async def cursor(self) -> int:
        return await self._db.read(lambda c: _state(c)[0])

    async def saved_drain(self) -> tuple[bytes | None, int, str, int]:
        """drain3's saved state, the cursor it covers, its settings key, and the highest template id."""

        def run(conn: sqlite3.Connection) -> tuple[bytes | None, int, str, int]:
            drain, at, key = conn.execute("SELECT drain, drain_cursor, drain_key FROM state").fetchone()
            (top,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM templates").fetchone()
            return (None if drain is None else bytes(drain)), int(at), str(key), int(top)

        return await self._db.read(run)

    async def save_drain(self, state: bytes, at: int, key: str) -> None:
        await self._db.write(
            lambda c: c.execute(
                "UPDATE state SET drain = ?, drain_cursor = ?, drain_key = ?", (state, at, key)
            )
        )

    async def restart_warmup(self) -> None:
        """A fresh template tree (the drain settings changed): its first templates raise no alert."""
        await self._db.write(lambda c: c.execute("UPDATE state SET warm_from = mined"))

    async def commit(self, after: int, batch: MinedBatch, settings: AnalysisSettings,
                     now_ns: int | None = None) -> int:  # fmt: skip
        """Add a mined batch and move the cursor, in one transaction; returns the alerts raised."""
        at = time.time_ns() if now_ns is None else now_ns
        return await self._db.write(lambda c: commit_batch(c, after, batch, at, settings))

    async def prune(self, before_s: int, window_s: int, limit: int) -> int:
        """One bounded transaction of :func:`prune_rows`; returns rows deleted (``< limit``: done for now)."""
        return await self._db.write(lambda c: prune_rows(c, before_s, window_s, limit))

    async def judge_quiet(self, settings: AnalysisSettings, now_ns: int | None = None) -> int:
        """Judge windows that completed by the clock (their source went quiet); returns alerts added."""
        at = time.time_ns() if now_ns is None else now_ns
        return await self._db.write(lambda c: judge(c, None, at, settings))
