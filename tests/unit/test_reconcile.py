"""The pure reconciliation logic: summaries, splitting, leaf comparison and the whole descent, with fakes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from logferry.reconcile.descent import Expected, Probe, compare_leaf, find_differences
from logferry.reconcile.summary import (
    BUCKET_SEQS,
    FANOUT,
    BucketTally,
    Summary,
    bucket_of,
    is_leaf,
    mix,
    split,
    total,
)
from logferry.store.missing import subtract
from logferry.store.runs import ranges_of


def digest(n: int) -> bytes:
    return n.to_bytes(8, "big")


class FakeLocal:
    """The relay: every sent seq with its digest; ``kept`` of them still in the outbox."""

    def __init__(self, items: dict[int, bytes], kept: set[int]) -> None:
        self.items = items
        self.kept = kept

    async def summary(self, source: str, first: int, last: int) -> Summary:
        # Like the bucket table: whole buckets only.
        lo, hi = bucket_of(first), bucket_of(last)
        return Summary.of((s, d) for s, d in self.items.items() if lo <= bucket_of(s) <= hi)

    async def expected(self, source: str, first: int, last: int) -> Expected:
        seqs = frozenset(s for s in self.items if first <= s <= last)
        digests = {s: self.items[s] for s in seqs if s in self.kept}
        return Expected(seqs, digests, await self.summary(source, first, last))


class FakePeer:
    def __init__(self, held: dict[int, bytes]) -> None:
        self.held = held
        self.questions = 0

    async def differing(self, probes: Sequence[Probe]) -> dict[int, Summary]:
        self.questions += 1
        out = {}
        for i, p in enumerate(probes):
            ours = Summary.of((s, d) for s, d in self.held.items() if p.first <= s <= p.last)
            if ours != p.summary:
                out[i] = ours
        return out

    async def items(self, source: str, first: int, last: int) -> dict[int, bytes]:
        return {s: d for s, d in self.held.items() if first <= s <= last}


def run(local: FakeLocal, peer: FakePeer, last: int):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        root = Probe("dev", 0, last, await local.summary("dev", 0, last))
        return await find_differences(local, peer, [root])

    return asyncio.run(go())


def test_mix_depends_on_seq_and_digest() -> None:
    assert mix(1, digest(5)) != mix(2, digest(5))
    assert mix(1, digest(5)) != mix(1, digest(6))
    # Two seqs with the same payload, both missing: the count and the sum still see it.
    assert Summary.of([(1, digest(9)), (2, digest(9))]) != Summary()


def test_summaries_combine_in_any_order_and_buckets_add_up() -> None:
    items = [(s, digest(s * 7919)) for s in range(1, 5000)]
    whole = Summary.of(items)
    assert Summary.of(items[:100]) + Summary.of(items[100:]) == whole
    assert Summary.of(reversed(items)) == whole
    tally = BucketTally().add_all(items)
    assert total(s for _, s in tally.items()) == whole
    assert [b for b, _ in tally.items()] == [0, 1, 2, 3, 4]


def test_split_cuts_along_buckets_and_covers_the_range() -> None:
    first, last = 0, 300 * BUCKET_SEQS - 1
    parts = split(first, last)
    assert len(parts) == FANOUT and parts[0][0] == first and parts[-1][1] == last
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(parts))
    assert all(lo % BUCKET_SEQS == 0 for lo, _ in parts)
    assert split(5, BUCKET_SEQS - 1) == [] and is_leaf(5, BUCKET_SEQS - 1)
    assert len(split(0, 3 * BUCKET_SEQS - 1)) == 3


def test_in_sync_is_one_question_whatever_the_size() -> None:
    items = {s: digest(s) for s in range(1, 50_001)}
    peer = FakePeer(dict(items))
    found = run(FakeLocal(items, set(items)), peer, 50 * BUCKET_SEQS - 1)
    assert found.clean and found.questions == 1 and peer.questions == 1


def test_leaf_without_outbox_names_lost_and_unverifiable() -> None:
    seqs = frozenset(range(1, 11))
    relay = {s: digest(s) for s in seqs}
    local = Summary.of(relay.items())
    peer = {s: digest(s) for s in seqs if s != 4}
    peer[7] = digest(777)
    # The relay kept nothing: 4 is lost; 7 differs but cannot be named, so every present seq is suspect...
    diff = compare_leaf(Expected(seqs, {}, local), peer)
    assert diff.lost == [4] and diff.resendable == [] and diff.mismatched == []  # (lost hides it)
    del peer[7]
    peer[7] = digest(777)
    peer[4] = digest(4)
    diff = compare_leaf(Expected(seqs, {}, local), peer)
    assert diff.mismatched == sorted(seqs) and diff.lost == []
    # ...but with the outbox kept, exactly the changed one is named.
    diff = compare_leaf(Expected(seqs, relay, local), peer)
    assert diff.mismatched == [7]


def test_subtract_ranges() -> None:
    assert subtract([(1, 10)], [(3, 4), (8, 20)]) == [(1, 2), (5, 7)]
    assert subtract([(1, 10)], []) == [(1, 10)]
    assert subtract([(5, 6)], [(1, 10)]) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sets(st.integers(1, 6 * BUCKET_SEQS), min_size=1, max_size=400),
    st.data(),
)
def test_descent_finds_exactly_the_differences(sent: set[int], data: st.DataObject) -> None:
    relay = {s: digest(s * 31 + 7) for s in sent}
    ordered = sorted(sent)
    deleted = data.draw(st.sets(st.sampled_from(ordered), max_size=20))
    changed = data.draw(st.sets(st.sampled_from(ordered), max_size=20)) - deleted
    extra = data.draw(st.sets(st.integers(1, 6 * BUCKET_SEQS), max_size=10)) - sent
    peer = {s: d for s, d in relay.items() if s not in deleted}
    peer.update({s: digest(s * 31 + 8) for s in changed})
    peer.update({s: digest(s) for s in extra})
    last = 6 * BUCKET_SEQS + BUCKET_SEQS - 1
    found = run(FakeLocal(relay, set(relay)), FakePeer(peer), last)
    assert found.resendable.get("dev", []) == ranges_of(deleted)
    assert found.mismatched.get("dev", []) == ranges_of(changed)
    assert found.extra.get("dev", []) == ranges_of(extra)
    assert found.lost == {}
    assert found.clean == (not deleted and not changed)
