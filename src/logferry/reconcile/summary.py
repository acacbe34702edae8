"""Order-independent summaries of sets of items: what reconciliation compares instead of lists of items.

An item is ``(seq, digest)`` within one source and one kind (records now, files later). Its 64-bit *mix*
spreads the digest and the seq over all bits (splitmix64's finalizer), so two items with the same payload
at different seqs, or two payloads swapped between seqs, still change the summary. A ``Summary`` of a set is
``(count, xor of mixes, sum of mixes mod 2**64)``: adding an item is O(1), summaries of disjoint sets
combine by the same operations, so a store keeps one per bucket of ``BUCKET_SEQS`` seqs, maintained
incrementally in the transaction that stores the items, and any range of buckets is summed on demand.
XOR alone is linear over GF(2); pairing it with an arithmetic sum means a difference cancels out only by an
astronomically unlikely coincidence (about 2**-64 per changed set for random corruption).

Values are kept as *signed* 64-bit integers everywhere (SQLite's INTEGER, msgpack's int), so they go to disk
and on the wire without conversion. This module is pure: no I/O, no clock, no database.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

BUCKET_BITS = 10
BUCKET_SEQS = 1 << BUCKET_BITS  # seqs per leaf bucket: a leaf exchange lists at most this many items
FANOUT = 16  # a differing range is split into at most this many children

_MASK = (1 << 64) - 1
_SIGN = 1 << 63
_GOLDEN = 0x9E3779B97F4A7C15


class ItemKind(enum.IntEnum):
    """What a summary covers. Each kind has its own buckets, so files can join without touching records."""

    RECORD = 1
    FILE = 2  # reserved for whole-file shipping: manifests are summarised the same way


def signed64(value: int) -> int:
    """``value`` mod 2**64 as a signed 64-bit integer (what SQLite and msgpack store without fuss)."""
    value &= _MASK
    return value - (1 << 64) if value & _SIGN else value


def mix(seq: int, digest: bytes) -> int:
    """The 64-bit value an item contributes to a summary (signed). Depends on both seq and digest."""
    x = (int.from_bytes(digest[:8], "big") ^ (seq * _GOLDEN)) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    x ^= x >> 31
    return x - (1 << 64) if x & _SIGN else x


@dataclass(frozen=True, slots=True)
class Summary:
    """The summary of a set of items: equal sets have equal summaries; different ones almost surely not."""

    count: int = 0
    xor: int = 0
    sum: int = 0

    def __add__(self, other: Summary) -> Summary:
        """The summary of the union of two disjoint sets."""
        return Summary(self.count + other.count, self.xor ^ other.xor, signed64(self.sum + other.sum))

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.count, self.xor, self.sum)

    @classmethod
    def of(cls, items: Iterable[tuple[int, bytes]]) -> Summary:
        """The summary of ``(seq, digest)`` items (each seq at most once)."""
        count = xor = total = 0
        for seq, digest in items:
            m = mix(seq, digest)
            count += 1
            xor ^= m
            total += m
        return cls(count, xor, signed64(total))


EMPTY = Summary()


def total(summaries: Iterable[Summary]) -> Summary:
    out = EMPTY
    for s in summaries:
        out = out + s
    return out


def bucket_of(seq: int) -> int:
    return seq >> BUCKET_BITS


def bucket_span(bucket: int) -> tuple[int, int]:
    """The inclusive seq range of a bucket (bucket 0 starts at seq 0, which is never used)."""
    return bucket << BUCKET_BITS, ((bucket + 1) << BUCKET_BITS) - 1


class BucketTally:
    """Per-bucket summaries of items being added in one transaction (``add`` is called per item)."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: dict[int, list[int]] = {}

    def add(self, seq: int, digest: bytes) -> None:
        m = mix(seq, digest)
        b = self._buckets.get(seq >> BUCKET_BITS)
        if b is None:
            self._buckets[seq >> BUCKET_BITS] = [1, m, m]
        else:
            b[0] += 1
            b[1] ^= m
            b[2] += m

    def add_all(self, items: Iterable[tuple[int, bytes]]) -> BucketTally:
        for seq, digest in items:
            self.add(seq, digest)
        return self

    def __bool__(self) -> bool:
        return bool(self._buckets)

    def items(self) -> Iterator[tuple[int, Summary]]:
        """``(bucket, summary)`` pairs, ascending by bucket."""
        for bucket in sorted(self._buckets):
            count, xor, s = self._buckets[bucket]
            yield bucket, Summary(count, xor, signed64(s))


def split(first: int, last: int, fanout: int = FANOUT) -> list[tuple[int, int]]:
    """Cut ``first..last`` into at most ``fanout`` consecutive children along bucket boundaries.

    A range within one bucket is a leaf and cannot be split (an empty list). The children are as even as
    whole buckets allow, so a descent reaches a leaf in ``log_fanout(buckets)`` steps.
    """
    b0, b1 = bucket_of(first), bucket_of(last)
    nb = b1 - b0 + 1
    if nb <= 1:
        return []
    parts = min(fanout, nb)
    out: list[tuple[int, int]] = []
    start = first
    for i in range(parts):
        end_bucket = b0 + (nb * (i + 1)) // parts - 1
        end = last if i == parts - 1 else bucket_span(end_bucket)[1]
        out.append((start, end))
        start = end + 1
    return out


def is_leaf(first: int, last: int) -> bool:
    return bucket_of(first) == bucket_of(last)
