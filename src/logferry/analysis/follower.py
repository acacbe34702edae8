"""The collector's analysis task: follow the stored records by rowid, behind ingestion, and mine them.

Each step reads the next ``batch_rows`` records after the cursor (a read connection of the record store),
mines them in a worker thread (drain3 is pure Python: the event loop stays free between steps), and
commits counts, alerts and the new cursor to ``analysis.db`` in one transaction. drain3's state is saved
every ``SNAPSHOT_EVERY_S`` and at shutdown; on start the records between that snapshot and the cursor are
replayed without counting (``miner.py`` says why), so a restart resumes where it stopped, never re-mining
the store and never counting a record twice.

Ingestion comes first. Mining shares the process (and its GIL, and on small machines the CPU) with the
data path, so while ingestion is busy (``busy()``: relays sending, or their batches still becoming searchable
rows) each step takes at most ``BUSY_BATCH_ROWS`` records (a short hold of the GIL) and the task then sleeps
``BUSY_PAUSE_FACTOR`` times as long as the step took: at most a tenth of the time goes to mining. While
search works through a backlog (``catching_up()``) mining waits, at most ``CATCH_UP_WAIT_S`` per step, and the
backlog is mined at full speed once ingestion is quiet (docs/BENCHMARKS.md, "analysis cost"). When it is
caught up it looks again every ``interval_s`` (or at once when woken) and judges the windows of sources that
went quiet.
Every ``PRUNE_EVERY_S`` it deletes counts, windows and alerts older than ``keep_days`` (``prune``), in
transactions of at most ``PRUNE_BATCH_ROWS`` rows per table, yielding to ingestion between them.

This module must never write to the record store, and never let a failed commit leave the in-memory tree
ahead of the stored counts (it rebuilds the miner from the store instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Callable

from logferry.analysis.miner import SNAPSHOT_EVERY_S, MinedRow, TemplateMiner
from logferry.analysis.settings import AnalysisSettings
from logferry.analysis.store import AnalysisStore
from logferry.errors import StoreError
from logferry.store.records import RecordStore

log = logging.getLogger("logferry.analysis")

# While ingestion is busy: pause 9x each step's time, so mining takes <= 10 %, in steps of 500 records
# (~20 ms of drain3 holding the GIL). While search catches up on a backlog, mining waits (up to
# CATCH_UP_WAIT_S between steps): even at 10 % its GIL holds slowed the store's writer thread, whose many
# short sqlite3 calls each wait for the GIL, by ~30 % (docs/BENCHMARKS.md, "analysis cost").
BUSY_PAUSE_FACTOR = 9.0
BUSY_BATCH_ROWS = 500
CATCH_UP_WAIT_S = 5.0  # at most this long without a step: analysis slows down, it never stops
CATCH_UP_POLL_S = 0.1
RETRY_AFTER_ERROR_S = 5.0
PRUNE_EVERY_S = 300.0  # retention is in days: checking every few minutes keeps the tables at their size
PRUNE_BATCH_ROWS = 5000  # rows per table per pruning transaction: a short hold of the analysis writer
DAY_S = 86_400


def fetch_rows(conn: sqlite3.Connection, after: int, limit: int) -> list[MinedRow]:
    rows = conn.execute(
        "SELECT id, source, ts_ns, level, msg FROM records WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
    )
    return [MinedRow(int(i), str(s), int(ts), int(lv), str(m)) for i, s, ts, lv, m in rows]


def newest_rowid(conn: sqlite3.Connection) -> int:
    (top,) = conn.execute("SELECT MAX(id) FROM records").fetchone()
    return 0 if top is None else int(top)


class Follower:
    """Mines the record store into an analysis store. ``busy`` says whether relays are sending now,
    ``catching_up`` whether search is working through a backlog (then mining waits)."""

    def __init__(
        self,
        records: RecordStore,
        store: AnalysisStore,
        settings: AnalysisSettings,
        busy: Callable[[], bool] = lambda: False,
        clock_ns: Callable[[], int] = time.time_ns,
        catching_up: Callable[[], bool] = lambda: False,
    ) -> None:
        self.records = records
        self.store = store
        self.settings = settings
        self.busy = busy
        self.catching_up = catching_up
        self.clock_ns = clock_ns
        self.wake = asyncio.Event()
        self.cursor = 0
        self.miner: TemplateMiner | None = None
        self.mined_total = 0  # records mined since start (for /metrics and the page)
        self.mine_s_total = 0.0  # time spent mining and committing since start
        self.alerts_total = 0
        self._snapshot_at = time.monotonic()
        self._pruned_at = -PRUNE_EVERY_S  # the first pass runs at the first chance
        self.pruned_total = 0  # rows deleted by retention since start

    async def resume(self) -> None:
        """Load drain3's saved state and replay the records it does not cover yet (without counting)."""
        key = self.settings.drain_key()
        state, at, saved_key, top = await self.store.saved_drain()
        at = at if state is not None else 0
        self.cursor = await self.store.cursor()
        if saved_key and saved_key != key:
            log.warning("drain settings changed (%s -> %s): new records start a new template tree; "
                        "templates mined so far stay listed", saved_key, key)  # fmt: skip
            # Ids go on from the highest stored one; saved at once, so a later start never replays this.
            self.miner = await asyncio.to_thread(TemplateMiner, self.settings, None, top)
            await self.store.restart_warmup()
            await self.save()
            return
        # No saved state: the tree is rebuilt from the first record (ids from 1, as the first time).
        self.miner = await asyncio.to_thread(TemplateMiner, self.settings, state)
        replayed = 0
        while at < self.cursor:
            limit = min(self.settings.batch_rows, self.cursor - at)
            rows = await self.records.read_with(functools.partial(fetch_rows, after=at, limit=limit))
            rows = [r for r in rows if r.rowid <= self.cursor]
            if not rows:
                break
            await asyncio.to_thread(self.miner.replay, rows)
            at = rows[-1].rowid
            replayed += len(rows)
        log.info("analysis resumes after record %d (%d templates; %d records replayed into the tree)",
                 self.cursor, self.miner.template_count, replayed)  # fmt: skip

    async def step(self) -> int:
        """Mine and commit the next batch; returns how many records it took (0: caught up)."""
        if self.miner is None:
            await self.resume()
        assert self.miner is not None
        after = self.cursor
        limit = min(self.settings.batch_rows, BUSY_BATCH_ROWS) if self.busy() else self.settings.batch_rows
        rows = await self.records.read_with(lambda c: fetch_rows(c, after, limit))
        if not rows:
            return 0
        started = time.monotonic()
        batch = await asyncio.to_thread(self.miner.mine, rows)
        try:
            self.alerts_total += await self.store.commit(after, batch, self.settings, self.clock_ns())
        except BaseException:
            self.miner = None  # the tree took rows the store did not: rebuild it from the store
            raise
        self.cursor = batch.cursor
        self.mined_total += len(rows)
        self.mine_s_total += time.monotonic() - started
        if time.monotonic() - self._snapshot_at >= SNAPSHOT_EVERY_S:
            await self.save()
        return len(rows)

    async def save(self) -> None:
        """Save drain3's state at the current cursor."""
        if self.miner is None:
            return
        state = await asyncio.to_thread(self.miner.snapshot)
        await self.store.save_drain(state, self.cursor, self.settings.drain_key())
        self._snapshot_at = time.monotonic()

    async def prune(self) -> int:
        """Delete rows older than ``keep_days`` (by the clock) in bounded transactions; rows deleted."""
        self._pruned_at = time.monotonic()
        if self.settings.keep_days <= 0:
            return 0
        before_s = self.clock_ns() // 1_000_000_000 - self.settings.keep_days * DAY_S
        deleted = 0
        while True:
            n = await self.store.prune(before_s, self.settings.window_s, PRUNE_BATCH_ROWS)
            deleted += n
            if n < PRUNE_BATCH_ROWS:
                break
            await asyncio.sleep(0)  # between transactions: let the data path run
        if deleted:
            self.pruned_total += deleted
            log.info(
                "analysis retention: deleted %d rows older than %d days", deleted, self.settings.keep_days
            )
        return deleted

    async def lag(self) -> int:
        """Stored records not mined yet."""
        return max(0, await self.records.read_with(newest_rowid) - self.cursor)

    async def run(self) -> None:
        """Follow the record store until cancelled; saves drain3's state on the way out."""
        try:
            while True:
                waited = 0.0
                while self.catching_up() and waited < CATCH_UP_WAIT_S:
                    await asyncio.sleep(CATCH_UP_POLL_S)
                    waited += CATCH_UP_POLL_S
                started = time.monotonic()
                try:
                    taken = await self.step()
                except StoreError as exc:
                    log.error("analysis step failed: %s; retrying in %.0f s", exc, RETRY_AFTER_ERROR_S)
                    await asyncio.sleep(RETRY_AFTER_ERROR_S)
                    continue
                if time.monotonic() - self._pruned_at >= PRUNE_EVERY_S:
                    await self.prune()
                if taken == 0:
                    self.alerts_total += await self.store.judge_quiet(self.settings, self.clock_ns())
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), self.settings.interval_s)
                elif self.busy():
                    await asyncio.sleep((time.monotonic() - started) * BUSY_PAUSE_FACTOR)
                else:
                    await asyncio.sleep(0)
        finally:
            # A clean stop saves the tree, so the next start replays nothing.
            with contextlib.suppress(StoreError):
                await self.save()
