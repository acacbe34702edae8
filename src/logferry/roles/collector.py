"""The collector (Server2): receives batches from relays, stores each record once, indexes for search.

A batch is acknowledged only after its records are committed (identical duplicates skipped, conflicts kept
aside). Full-text indexing runs behind ingestion in its own task: search may trail, storage never does.
This module must never acknowledge before the store returned from its commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

import msgspec

from logferry.analysis.follower import Follower
from logferry.analysis.settings import settings_from
from logferry.analysis.store import AnalysisStore
from logferry.api.launch import CollectorView, RunningApi, api_token, start_api
from logferry.config import CollectorConfig
from logferry.errors import StoreError
from logferry.lifecycle import StopSignal, announce_ready
from logferry.model import decode_body
from logferry.protocol.connection import Authenticated
from logferry.protocol.messages import (
    Batch,
    Code,
    ItemsAnswer,
    ItemsQuery,
    ReconcileAnswer,
    ReconcileQuery,
)
from logferry.reconcile.collector_side import ReconcileResponder
from logferry.roles.server import (
    FileIntakeSink,
    LogferryListener,
    PeerTable,
    server_limits,
    store_durability,
)
from logferry.store.audit import AuditLog
from logferry.store.file_intake import FileIntake
from logferry.store.file_manifests import CollectorFiles, FileManifests
from logferry.store.records import RecordStore
from logferry.store.runs import ranges_of
from logferry.tls import listener_tls
from logferry.transport.serve import BatchRefused

log = logging.getLogger("logferry.collector")

MAX_BODY_BYTES = 256 << 20  # decompressed bound per batch: a zstd bomb cannot exhaust memory
INDEX_IDLE_S = 0.5
INDEX_RETRY_S = 5.0  # after the record store failed (its disk full, say)
MATERIALIZE_BATCHES = 4
INGEST_QUIET_S = 0.05  # no batch for this long: relays are quiet, indexing may take the CPU


class CollectorSink(FileIntakeSink):
    """Commits relays' batches into the record store (and whole files, through ``FileIntakeSink``)."""

    role = "collector"

    def __init__(self, store: RecordStore, max_body_bytes: int, max_inbox_bytes: int) -> None:
        self.store = store
        self.max_body_bytes = max_body_bytes
        self.max_inbox_bytes = max_inbox_bytes
        self.committed = asyncio.Event()  # the materializer has work
        self.last_receive = 0.0  # monotonic time of the last batch received
        self.room = asyncio.Event()  # the materializer made room in the inbox
        self.peers: dict[str, str] = {}  # address -> relay name
        self.reconcile = ReconcileResponder(store, max_body_bytes)
        self.relays = PeerTable()  # per relay: address, last seen, batches and records (for the API)
        self.files: FileIntake | None = None  # whole files (store/file_manifests.py)

    async def opened(self, peer: Authenticated, address: str) -> int:
        self.peers[address] = peer.source
        self.relays.opened(peer.source, address)
        log.info("relay %s connected from %s", peer.source, address)
        return 0  # relays are not sources: nothing to skip

    async def commit(self, peer: Authenticated, batch: Batch) -> list[tuple[int, int]]:
        try:
            records = decode_body(batch.body, batch.codec, self.max_body_bytes)
        except (ValueError, msgspec.DecodeError) as exc:
            raise BatchRefused(Code.MALFORMED, f"batch body cannot be decoded: {exc}", retry=False) from exc
        if len(records) != batch.count:
            raise BatchRefused(
                Code.MALFORMED, f"batch says {batch.count} records but holds {len(records)}", retry=False
            )
        # Bounded: past max_inbox_bytes a relay waits for rows to be written (its window fills, it slows).
        while self.store.inbox_bytes > self.max_inbox_bytes:
            self.room.clear()
            await self.room.wait()
        await self.store.receive(peer.source, batch.source, len(records), batch.codec, batch.body)
        self.last_receive = time.monotonic()
        self.relays.received(peer.source, len(records))
        self.committed.set()
        return ranges_of([r.seq for r in records])

    async def answer_query(
        self, peer: Authenticated, query: ReconcileQuery | ItemsQuery
    ) -> ReconcileAnswer | ItemsAnswer:
        """A relay reconciles: answered from the store, after the inbox is turned into rows."""
        return await self.reconcile.answer(query)

    def closed(self, peer: Authenticated | None, address: str, reason: str) -> None:
        self.peers.pop(address, None)
        if self.files is not None:
            self.files.peer_closed(peer)
        if peer is not None:
            self.relays.closed(peer.source, address)


async def rehash_files(manifests: FileManifests, interval_s: float) -> None:
    """Every ``interval_s`` (0: never), re-hash all stored file content: damage that kept a file's size and
    mtime is found only so; its items then answer reconciliation with a digest that matches nothing."""
    if interval_s <= 0:
        return
    while True:
        await asyncio.sleep(interval_s)
        started = time.monotonic()
        try:
            bad = await manifests.verify_content()
        except (OSError, StoreError) as exc:
            log.error("re-hashing the stored files failed: %s; trying again in %.0f s", exc, interval_s)
            continue
        log.log(logging.WARNING if bad else logging.INFO,
                "re-hashed the stored files in %.1f s: %d content%s missing or damaged",
                time.monotonic() - started, bad, "" if bad == 1 else "s")  # fmt: skip


class Collector:
    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir)
        self._indexing = False  # the indexer's last step left work behind: search is catching up

    async def run(self, stop: StopSignal) -> int:
        cfg = self.config
        relays_tls = listener_tls(cfg)  # checked before the store opens: a bad certificate stops the start
        store = await RecordStore.open(self.data_dir / "records.db", store_durability(cfg.durability))
        sink = CollectorSink(store, MAX_BODY_BYTES, cfg.max_inbox_bytes)
        manifests = await FileManifests.open(self.data_dir, store_durability(cfg.durability))
        sink.files = FileIntake(manifests.content, CollectorFiles(manifests))
        sink.reconcile.files = manifests  # relays reconcile files too (ItemKind.FILE)
        listener = LogferryListener(
            "collector",
            cfg.listen,
            sink,
            server_limits(cfg),
            dict(cfg.relays),
            cfg.accepts_unknown_relays(),
            tls=relays_tls,
        )
        secret = api_token(cfg, "collector")
        audit = await AuditLog.open(self.data_dir / "audit.db", store_durability(cfg.durability))
        analysis = await AnalysisStore.open(self.data_dir, store_durability(cfg.durability))
        # No await from here to the try below, whose finally winds the duties down.
        indexer = stop.watch(asyncio.create_task(self._materialize(store, sink)), "indexing records")
        rehash = stop.watch(asyncio.create_task(rehash_files(manifests, cfg.file_rehash_interval_s)),
                            "re-hashing stored files", may_finish=True)  # fmt: skip
        follower = Follower(store, analysis, settings_from(cfg), busy=lambda: self._busy(sink, store),
                            catching_up=lambda: self._indexing)  # fmt: skip
        # Behind ingestion, in its own task (analysis/follower.py); derived data, so it may be turned off.
        miner = None
        if cfg.analysis_enabled:  # derived data: if it fails, records and files are still received
            miner = stop.watch(asyncio.create_task(follower.run()), "log analysis", fatal=False)
        api: RunningApi | None = None
        try:
            address = await listener.start()
            # The API starts after the logferry/1 port accepts: relays never wait for fastapi to load.
            view = CollectorView(name=cfg.name, token=secret, peers=sink.relays, counters=listener.counters,
                                 audit=audit, store=store, config=cfg, files=manifests,
                                 analysis=follower if miner is not None else None,
                                 listen={"logferry": address}, intake=sink.files)  # fmt: skip
            api = await start_api(view, "collector", cfg.api_listen)
            if api is not None:
                view.listen["api"] = api.address
            announce_ready("collector", view.listen, data=str(self.data_dir))
            await stop.wait()
            log.info("collector stopping: finishing in-flight commits")
            if api is not None:
                await api.stop(cfg.shutdown_timeout_s)  # API requests end before the stores close
            await listener.shutdown(cfg.shutdown_timeout_s)
        finally:
            stop.wind_down()  # the duties end now: that is no failure
            if api is not None:
                await api.stop(cfg.shutdown_timeout_s)  # no-op unless an error skipped the ordered stop
            await audit.close()
            if miner is not None:
                miner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await miner
            await analysis.close()
            for task in (indexer, rehash):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            sink.files.close()
            await manifests.close()
            await store.close()
        log.info("collector stopped")
        return stop.status

    async def _materialize(self, store: RecordStore, sink: CollectorSink) -> None:
        """Turn received batches into rows, then index them for search, behind ingestion.

        Acknowledging relays comes first: while batches keep arriving, this waits, unless a batch has
        waited ``max_search_lag_s`` or the inbox is half full. Each step is one short transaction in the
        store's writer queue. Search trails ingestion; storage never does.
        """
        cfg = self.config
        rows = cfg.fts_batch_rows
        while True:
            sink.committed.clear()
            if store.inbox_records and await self._should_wait(store, sink):
                await asyncio.sleep(INGEST_QUIET_S)
                continue
            try:
                taken = await store.materialize(MATERIALIZE_BATCHES, MAX_BODY_BYTES)
                if taken:
                    sink.room.set()
                indexed = await store.index_pending(rows)
            except StoreError as exc:
                # The disk, most likely (full): batches stay in the inbox, nothing is lost; search waits.
                log.error("indexing records failed: %s; trying again in %.0f s", exc, INDEX_RETRY_S)
                await asyncio.sleep(INDEX_RETRY_S)
                continue
            # A full step (or batches left in the inbox): search is working through a backlog, analysis waits.
            self._indexing = store.inbox_records > 0 or indexed >= rows
            if not taken and indexed < rows:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sink.committed.wait(), INDEX_IDLE_S)
            else:
                await asyncio.sleep(0)

    def _busy(self, sink: CollectorSink, store: RecordStore) -> bool:
        """Relays are sending now, or their batches are still becoming searchable rows: analysis yields."""
        recent = time.monotonic() - sink.last_receive < INGEST_QUIET_S
        return recent or store.inbox_records > 0 or self._indexing

    async def _should_wait(self, store: RecordStore, sink: CollectorSink) -> bool:
        cfg = self.config
        if time.monotonic() - sink.last_receive >= INGEST_QUIET_S:
            return False  # relays are quiet: index now
        if store.inbox_bytes >= cfg.max_inbox_bytes // 2:
            return False
        oldest = await store.inbox_oldest_ns()
        return oldest is not None and (time.time_ns() - oldest) / 1e9 < cfg.max_search_lag_s
