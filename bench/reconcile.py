"""Reconciliation benchmark: time and bytes of one relay ↔ collector exchange, in sync and with differences.

Both stores are built in-process in a temporary directory: the bucket tables of N in-sync items are filled
with synthetic summaries (what an exchange reads; building 10M real records would only measure ingestion),
and for the "few differences" case K buckets hold real records on both sides, with one record deleted at the
collector in each. The exchange runs the real ``Reconciler`` against the real ``ReconcileResponder``; every
query and answer is encoded and decoded as a logferry/1 frame, and the bytes counted are those frames.

Usage: bench/reconcile.py [-n N] [-k K]. Prints one line per case; ``measure()`` returns the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from logferry.model import Fate, make_record
from logferry.protocol.framing import decode_frame_body, encode_body
from logferry.protocol.messages import ItemsAnswer, ItemsQuery, ReconcileAnswer, ReconcileQuery
from logferry.reconcile.collector_side import ReconcileResponder
from logferry.reconcile.relay_side import Reconciler
from logferry.reconcile.summary import BUCKET_SEQS, ItemKind, bucket_span, mix
from logferry.store.journal import Decision, Journal
from logferry.store.missing import MissingStore
from logferry.store.records import RecordStore
from logferry.store.sqlite import Durability

SOURCE = "dev-bench"


class LocalLink:
    """The collector link, in-process: each query and answer goes through logferry/1 encoding."""

    def __init__(self, responder: ReconcileResponder) -> None:
        self.responder = responder
        self.n = 0

    async def ask(
        self, make: Callable[[int], ReconcileQuery | ItemsQuery], timeout_s: float = 30.0
    ) -> ReconcileAnswer | ItemsAnswer:
        self.n += 1
        query = decode_frame_body(encode_body(make(self.n)))
        assert isinstance(query, ReconcileQuery | ItemsQuery)
        answer = decode_frame_body(encode_body(await self.responder.answer(query)))
        assert isinstance(answer, ReconcileAnswer | ItemsAnswer)
        return answer


def _synthetic(n: int, skip: set[int]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for b in range((n + BUCKET_SEQS - 1) // BUCKET_SEQS):
        if b not in skip:
            v = mix(b, b"syntheti")
            rows.append((SOURCE, int(ItemKind.RECORD), b, BUCKET_SEQS, v, v))
    return rows


async def build(root: Path, n: int, real_buckets: set[int]) -> tuple[Journal, RecordStore, MissingStore]:
    journal = await Journal.open(root / "journal.db", Durability.NORMAL)
    store = await RecordStore.open(root / "records.db", Durability.NORMAL)
    missing = await MissingStore.open(root / "missing.db", Durability.NORMAL)
    rows = _synthetic(n, real_buckets)
    insert = "INSERT INTO recon_buckets VALUES (?, ?, ?, ?, ?, ?)"

    def fill(conn: sqlite3.Connection) -> None:
        conn.executemany(insert, rows)

    await journal.write_with(fill)
    await store.write_with(fill)
    for b in sorted(real_buckets):
        lo, hi = bucket_span(b)
        records = [make_record(s, s, 6, "h", "/p", f"record {s}") for s in range(max(lo, 1), hi + 1)]
        await journal.commit(SOURCE, [Decision(r, Fate.FORWARDED) for r in records])
        await store.commit("relay", SOURCE, [r for r in records if r.seq != lo + 7])  # one deleted per bucket
    pending = await journal.outbox_pending(0, 1_000_000)
    await journal.outbox_ack([p.id for p in pending])
    return journal, store, missing


async def one_case(n: int, differences: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lf-reconcile-") as tmp:
        nb = (n + BUCKET_SEQS - 1) // BUCKET_SEQS
        real = {nb * (i + 1) // (differences + 1) for i in range(differences)}
        journal, store, missing = await build(Path(tmp), n, real)
        try:
            reconciler = Reconciler(journal, missing, LocalLink(ReconcileResponder(store, 1 << 30)),
                                    auto_resend=False, interval_s=0)  # fmt: skip
            t0 = time.perf_counter()
            report = await reconciler.run_now()
            elapsed = time.perf_counter() - t0
        finally:
            await missing.close()
            await store.close()
            await journal.close()
    return {
        "items": n,
        "differences": differences,
        "seconds": round(elapsed, 4),
        "bytes": report.bytes_sent + report.bytes_received,
        "bytes_sent": report.bytes_sent,
        "bytes_received": report.bytes_received,
        "questions": report.questions,
        "clean": report.clean,
        "new_entries": report.new_entries,
    }


def measure(n: int = 10_000_000, differences: int = 3) -> dict[str, Any]:
    """Both cases; the figures docs/BENCHMARKS.md reports."""
    return {"in_sync": asyncio.run(one_case(n, 0)), "few_differences": asyncio.run(one_case(n, differences))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="time and bytes of one reconciliation exchange")
    ap.add_argument("-n", type=int, default=10_000_000, help="items in sync (default 10M)")
    ap.add_argument("-k", type=int, default=3, help="buckets with one missing record each (default 3)")
    args = ap.parse_args(argv)
    for name, r in measure(args.n, args.k).items():
        print(
            f"reconcile {name:<16} {r['items']:>11,} items  {r['seconds'] * 1000:8.1f} ms  "
            f"{r['bytes']:>7,} bytes  {r['questions']} questions  {r['new_entries']} new entries"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
