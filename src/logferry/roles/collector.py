"""The collector (Server2): receives batches from relays, stores each record once, indexes for search.

A batch is acknowledged only after its records are committed (identical duplicates skipped, conflicts kept
aside). Full-text indexing runs behind ingestion in its own task: search may trail, storage never does.
This module must never acknowledge before the store returned from its commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import msgspec

from logferry.config import CollectorConfig
from logferry.lifecycle import StopSignal, announce_ready
from logferry.model import decode_body
from logferry.protocol.connection import Authenticated
from logferry.protocol.messages import Batch, Code
from logferry.roles.server import LogferryListener, server_limits, store_durability
from logferry.store.records import RecordStore
from logferry.transport.serve import BatchRefused

log = logging.getLogger("logferry.collector")

MAX_BODY_BYTES = 256 << 20  # decompressed bound per batch: a zstd bomb cannot exhaust memory
INDEX_IDLE_S = 0.5


class CollectorSink:
    """Commits relays' batches into the record store."""

    def __init__(self, store: RecordStore, max_body_bytes: int) -> None:
        self.store = store
        self.max_body_bytes = max_body_bytes
        self.committed = asyncio.Event()
        self.peers: dict[str, str] = {}  # address -> relay name

    async def opened(self, peer: Authenticated, address: str) -> int:
        self.peers[address] = peer.source
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
        result = await self.store.commit(peer.source, batch.source, records)
        if result.conflicts:
            log.warning(
                "%d records of %s arrived again with a different digest: kept as conflicts",
                result.conflicts,
                batch.source,
            )
        self.committed.set()
        return [(a, b) for a, b in result.ranges]

    def closed(self, peer: Authenticated | None, address: str, reason: str) -> None:
        self.peers.pop(address, None)


class Collector:
    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir)

    async def run(self, stop: StopSignal) -> int:
        cfg = self.config
        store = await RecordStore.open(self.data_dir / "records.db", store_durability(cfg.durability))
        sink = CollectorSink(store, MAX_BODY_BYTES)
        listener = LogferryListener(
            "collector",
            cfg.listen,
            sink,
            server_limits(cfg),
            dict(cfg.relays),
            cfg.accepts_unknown_relays(),
        )
        indexer = asyncio.create_task(self._index(store, sink.committed))
        try:
            address = await listener.start()
            announce_ready("collector", {"logferry": address}, data=str(self.data_dir))
            await stop.wait()
            log.info("collector stopping: finishing in-flight commits")
            await listener.shutdown(cfg.shutdown_timeout_s)
        finally:
            indexer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await indexer
            await store.close()
        log.info("collector stopped")
        return 0

    async def _index(self, store: RecordStore, committed: asyncio.Event) -> None:
        """Keep the full-text index close behind ingestion without ever holding ingestion up."""
        while True:
            committed.clear()
            indexed = await store.index_pending(self.config.fts_batch_rows)
            if indexed < self.config.fts_batch_rows:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(committed.wait(), INDEX_IDLE_S)
            else:
                await asyncio.sleep(0)
