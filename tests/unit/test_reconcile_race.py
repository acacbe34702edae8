"""Reconciliation while records keep flowing, with real stores on both sides and chosen interleavings.

The relay's Reconciler talks to the collector's ReconcileResponder through an in-process link that can run
a step (forward a new batch at the relay, deliver it, acknowledge it) just before the collector answers a
chosen question: what CI hit as a race is replayed here in a fixed order. Also: the collector answers with
everything it acknowledged, even while its background materializer takes inbox batches concurrently and
rows are deleted behind its back.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from logferry.errors import TransportError
from logferry.model import Codec, Fate, Record, encode_body, make_record
from logferry.protocol.messages import ItemsAnswer, ItemsQuery, RangeSummary, ReconcileAnswer, ReconcileQuery
from logferry.reconcile.collector_side import ReconcileResponder
from logferry.reconcile.relay_side import Reconciler
from logferry.reconcile.summary import Summary
from logferry.store.journal import Decision, Journal
from logferry.store.missing import MissingState, MissingStore
from logferry.store.records import RecordStore
from logferry.store.sqlite import Durability

SRC = "device-1"
Step = Callable[[], Awaitable[None]]


def recs(first: int, last: int) -> list[Record]:
    return [make_record(s, 1_000 + s, 6, "h", "/var/log/x", f"record {s}") for s in range(first, last + 1)]


class SteppedLink:
    """The collector link in-process; ``before[n]`` runs just before the collector answers question n."""

    def __init__(self, responder: ReconcileResponder) -> None:
        self.responder = responder
        self.n = 0
        self.before: dict[int, Step] = {}
        self.kinds: list[str] = []

    async def ask(
        self, make: Callable[[int], ReconcileQuery | ItemsQuery], timeout_s: float = 30.0
    ) -> ReconcileAnswer | ItemsAnswer:
        self.n += 1
        query = make(self.n)
        self.kinds.append(type(query).__name__)
        step = self.before.pop(self.n, None)
        if step is not None:
            await step()
        return await self.responder.answer(query)


class Chain:
    def __init__(self, journal: Journal, store: RecordStore, missing: MissingStore) -> None:
        self.journal, self.store, self.missing = journal, store, missing
        self.responder = ReconcileResponder(store, 1 << 30)
        self.link = SteppedLink(self.responder)
        self.reconciler = Reconciler(journal, missing, self.link, auto_resend=False, interval_s=0)

    async def forward(self, first: int, last: int) -> None:
        """The relay journals and outboxes a batch (tallied as sent); it is not delivered yet."""
        await self.journal.commit(SRC, [Decision(r, Fate.FORWARDED) for r in recs(first, last)])

    async def deliver(self) -> None:
        """Every unacked outbox batch reaches the collector's inbox, and the relay sees its Ack."""
        pending = await self.journal.outbox_pending(0, 1_000)
        for b in pending:
            await self.store.receive("relay", b.source, b.count, int(b.codec), b.body)
        await self.journal.outbox_ack([b.id for b in pending])

    def delete_behind(self, sql: str) -> None:
        conn = sqlite3.connect(self.store_path)
        with conn:
            conn.execute(sql)
        conn.close()

    store_path: Path

    async def open_entries(self) -> list[tuple[str, int, int]]:
        entries = await self.missing.entries(state=MissingState.OPEN)
        return sorted((e.kind.value, e.first_seq, e.last_seq) for e in entries)


@pytest.fixture
async def chain(tmp_path: Path):  # type: ignore[no-untyped-def]
    journal = await Journal.open(tmp_path / "journal.db", Durability.NORMAL)
    store = await RecordStore.open(tmp_path / "records.db", Durability.NORMAL)
    missing = await MissingStore.open(tmp_path / "missing.db", Durability.NORMAL)
    c = Chain(journal, store, missing)
    c.store_path = tmp_path / "records.db"
    try:
        await c.forward(1, 600)
        await c.deliver()
        await store.materialize(1_000, 1 << 30)
        c.delete_behind(f"DELETE FROM records WHERE source = '{SRC}' AND seq BETWEEN 21 AND 32")
        yield c
    finally:
        await missing.close()
        await store.close()
        await journal.close()


@pytest.mark.parametrize("delivered", [False, True], ids=["in-flight", "delivered-and-acked"])
async def test_a_batch_forwarded_while_the_leaf_is_listed_is_not_missing(
    chain: Chain, delivered: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The CI failure: 601..610 is forwarded (and maybe acknowledged) after the relay chose what to ask
    and before the collector listed the leaf; it must not be reported missing at the collector."""

    async def traffic() -> None:
        await chain.forward(601, 610)
        if delivered:
            await chain.deliver()

    chain.link.before[2] = traffic  # question 1: the root; question 2: ItemsQuery of bucket 0
    report = await chain.reconciler.run_now()
    assert chain.link.kinds == ["ReconcileQuery", "ItemsQuery"]
    assert await chain.open_entries() == [("missing_at_collector", 21, 32)]
    assert report.new_entries == 1
    # Delivered in time, the collector lists 601..610 too: sent after the relay read its leaf, not foreign.
    assert "never forwarded" not in caplog.text


async def test_a_batch_forwarded_during_the_descent_makes_the_leaf_wait(chain: Chain) -> None:
    """601..610 is in flight in the differing bucket when the relay comes to list it: the leaf is not
    settled, so this run neither reports it nor resolves what was found there before."""
    await chain.reconciler.run_now()
    assert await chain.open_entries() == [("missing_at_collector", 21, 32)]

    chain.link.before[chain.link.n + 1] = lambda: chain.forward(601, 610)  # during the root question
    report = await chain.reconciler.run_now()
    assert report.new_entries == 0 and not report.clean
    assert await chain.open_entries() == [("missing_at_collector", 21, 32)]

    await chain.deliver()  # acknowledged: the next run lists the leaf again, still only the damage
    await chain.reconciler.run_now()
    assert await chain.open_entries() == [("missing_at_collector", 21, 32)]


async def test_a_bucket_rebuilt_while_the_materializer_runs_matches_its_rows(tmp_path: Path) -> None:
    """The collector: batches acknowledged before a question are rows in its answer, and a dirty bucket
    rebuilt while the background materializer adds rows to it sums exactly its rows, in every step."""
    store = await RecordStore.open(tmp_path / "records.db", Durability.NORMAL)
    responder = ReconcileResponder(store, 1 << 30)
    stop = asyncio.Event()

    async def background() -> None:  # like the collector's _materialize: one small step at a time
        while not stop.is_set():
            await store.materialize(1, 1 << 30)
            await asyncio.sleep(0)

    task = asyncio.create_task(background())
    try:
        for k in range(40):
            first = 1 + 25 * k
            body = encode_body(recs(first, first + 24), Codec.MSGPACK)
            await store.receive("relay", SRC, 25, int(Codec.MSGPACK), body)  # acknowledged from here
            if k % 5 == 4:
                conn = sqlite3.connect(tmp_path / "records.db")
                with conn:
                    conn.execute(f"DELETE FROM records WHERE source = '{SRC}' AND seq = {first - 3}")
                conn.close()
            held = await responder.answer(ItemsQuery(k, 1, SRC, 0, 1023))
            assert isinstance(held, ItemsAnswer)
            seqs = {s for lo, hi in held.ranges for s in range(lo, hi + 1)}
            assert set(range(first, first + 25)) <= seqs  # the batch acknowledged just before
            rows = await store.read_with(
                lambda c: [(int(s), bytes(d)) for s, d in c.execute("SELECT seq, digest FROM records")]
            )
            truth = Summary.of(rows)
            answer = await responder.answer(
                ReconcileQuery(k, 1, [RangeSummary(SRC, 0, 1023, *truth.as_tuple())])
            )
            assert isinstance(answer, ReconcileAnswer) and answer.differ == [], k
    finally:
        stop.set()
        await task
        await store.close()


async def test_known_differences_are_news_once(chain: Chain, caplog: pytest.LogCaptureFixture) -> None:
    """The first run that finds the damage says so as a WARNING; later runs that find only what is already
    on the missing list (nobody acted on it yet) say it at INFO, not every interval again."""
    caplog.set_level(logging.INFO, logger="logferry.reconcile")
    for _ in range(3):
        await chain.reconciler.run_now()
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.getMessage().startswith("reconciled ")]
    assert [level for level, _ in lines] == [logging.WARNING, logging.INFO, logging.INFO]
    assert lines[0][1].endswith("1 new missing entries, 0 resent")
    assert lines[2][1].endswith("0 new missing entries, 0 resent")


class AwayLink:
    """A collector that cannot be reached."""

    async def ask(
        self, make: Callable[[int], ReconcileQuery | ItemsQuery], timeout_s: float = 30.0
    ) -> ReconcileAnswer | ItemsAnswer:
        raise TransportError("cannot connect to collector:1: [Errno 111] Connection refused")


async def test_a_collector_away_is_said_once_not_at_every_scheduled_run(
    chain: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    reconciler = Reconciler(chain.journal, chain.missing, AwayLink(), auto_resend=False, interval_s=0.01)
    stopping = asyncio.Event()
    running = asyncio.create_task(reconciler.run(stopping))
    await asyncio.sleep(0.3)  # ~30 scheduled runs
    stopping.set()
    await asyncio.wait_for(running, 5)
    failed = [r for r in caplog.records if "reconciliation failed" in r.getMessage()]
    assert [r.levelno for r in failed] == [logging.WARNING]
    assert failed[0].getMessage() == (
        "reconciliation failed, will retry every 0.01 s: cannot connect to collector:1: "
        "[Errno 111] Connection refused"
    )
    assert reconciler.last_error.startswith("cannot connect")
