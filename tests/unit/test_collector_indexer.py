"""The collector's indexer (batches → rows → search index) outlives a record store that fails for a while:
the failure is logged and the step tried again, so a full disk never stops the collector or its indexing
for good. A real RecordStore whose first materialize fails."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from logferry.config.schema import CollectorConfig
from logferry.errors import StoreError
from logferry.roles import collector as collector_module
from logferry.roles.collector import MAX_BODY_BYTES, Collector, CollectorSink
from logferry.store.records import RecordStore


class FailsTwice(RecordStore):
    calls = 0

    async def materialize(self, max_batches: int, max_body_bytes: int) -> int:
        self.calls += 1
        if self.calls <= 2:
            raise StoreError("records store records.db: database or disk is full")
        return await super().materialize(max_batches, max_body_bytes)


async def test_the_indexer_logs_a_failing_store_and_tries_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector_module, "INDEX_RETRY_S", 0.01)
    store = await FailsTwice.open(tmp_path / "records.db")
    config = CollectorConfig()
    sink = CollectorSink(store, MAX_BODY_BYTES, config.max_inbox_bytes)
    indexer = asyncio.create_task(Collector(config)._materialize(store, sink))
    try:
        for _ in range(200):
            if store.calls > 2:
                break
            await asyncio.sleep(0.01)
        assert store.calls > 2 and not indexer.done(), "the indexer must try again and keep running"
    finally:
        indexer.cancel()
        await asyncio.gather(indexer, return_exceptions=True)
        await store.close()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert "indexing records failed: records store records.db: database or disk is full; trying again" in (
        errors[0].getMessage()
    )
