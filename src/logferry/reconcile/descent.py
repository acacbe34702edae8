"""Finding exactly what differs between the relay's items and the collector's, by descending summaries.

The relay asks about ranges of seqs, each with its own summary; the collector names the ranges whose summary
differs from its own. Only those are split (``summary.split``) and asked about again, down to leaves of one
bucket, where the collector lists its items and the relay compares them one by one with what it forwarded.
When both sides agree the whole exchange is one question and an empty answer, whatever the number of items.

The relay's knowledge and the collector are injected (``LocalItems``, ``PeerItems``), so the same code runs
against stores and a network in production and against dicts in the tests. This module never does I/O itself
and never decides what to do about a difference: it only reports it (``Findings``).

Items keep arriving during a descent, so a leaf is judged only against what the relay knew *before* it asked
for the peer's list, and only if everything the relay had sent into that leaf was acknowledged by then
(``LocalItems.expected`` returns None otherwise: the leaf is ``unsettled``, neither missing nor clean). An
acknowledgement precedes the question, and the collector stores every acknowledged batch before it answers,
so each seq the relay compares is one the collector must hold; a seq sent later is simply not compared.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from logferry.reconcile.summary import Summary, is_leaf, split
from logferry.store.runs import Range, coalesce, ranges_of


@dataclass(frozen=True, slots=True)
class Probe:
    """A question: does the peer's summary of ``source`` over ``first..last`` equal ``summary``?"""

    source: str
    first: int
    last: int
    summary: Summary


@dataclass(frozen=True, slots=True)
class Expected:
    """What the relay knows of a leaf at one moment: the seqs it forwarded, the digests it still has
    (outbox), and its tallied summary of the leaf's bucket, all read together."""

    seqs: frozenset[int]
    digests: dict[int, bytes]
    summary: Summary


class LocalItems(Protocol):
    """The relay's side of one kind of item."""

    async def summary(self, source: str, first: int, last: int) -> Summary: ...

    async def expected(self, source: str, first: int, last: int) -> Expected | None:
        """The leaf as of now, or None while an item sent into it awaits the peer's acknowledgement."""
        ...


class PeerItems(Protocol):
    """The collector's side, one question at a time (each call is one exchange on the wire)."""

    async def differing(self, probes: Sequence[Probe]) -> dict[int, Summary]:
        """Indices (into ``probes``) whose summary differs from the peer's, with the peer's summary."""
        ...

    async def items(self, source: str, first: int, last: int) -> dict[int, bytes]:
        """The peer's ``seq -> digest`` for every item of ``source`` in ``first..last``."""
        ...


@dataclass(frozen=True, slots=True)
class LeafDiff:
    """What one leaf comparison found, as sorted seq lists."""

    resendable: list[int]  # forwarded, absent at the peer, and the relay still has the item
    lost: list[int]  # forwarded, absent at the peer, and the relay no longer has it
    mismatched: list[int]  # present on both sides with different digests
    extra: list[int]  # at the peer but never forwarded by this relay (another relay? a bug?)


def compare_leaf(expected: Expected, peer: dict[int, bytes]) -> LeafDiff:
    """Compare one leaf (``peer`` listed after ``expected`` was read).

    Where the relay no longer has a digest (outbox pruned) it cannot name a changed item; if the items it
    can check all agree but the tallied summary still differs, every unverifiable seq present at the peer is
    reported as mismatched: the difference is among them, and none of them can be proved intact.
    """
    seqs, digests, local = expected.seqs, expected.digests, expected.summary
    absent = sorted(s for s in seqs if s not in peer)
    resendable = [s for s in absent if s in digests]
    lost = [s for s in absent if s not in digests]
    present = sorted(s for s in seqs if s in peer)
    mismatched = [s for s in present if s in digests and digests[s] != peer[s]]
    unverifiable = [s for s in present if s not in digests]
    if unverifiable and not lost and not mismatched:
        # Rebuild what the relay tallied from what it can see: its own digests plus the peer's for the rest.
        rebuilt = Summary.of((s, digests[s]) for s in seqs if s in digests) + Summary.of(
            (s, peer[s]) for s in unverifiable
        )
        if rebuilt != local:
            mismatched = unverifiable
    extra = sorted(s for s in peer if s not in seqs)
    return LeafDiff(resendable, lost, mismatched, extra)


@dataclass
class Findings:
    """Every difference found in one reconciliation, as ``source -> ranges``, plus what it cost."""

    resendable: dict[str, list[Range]] = field(default_factory=dict)
    lost: dict[str, list[Range]] = field(default_factory=dict)
    mismatched: dict[str, list[Range]] = field(default_factory=dict)
    extra: dict[str, list[Range]] = field(default_factory=dict)
    # Leaves not compared: the relay still awaited an acknowledgement for an item in them. Nothing there is
    # known to be missing, nor known to be clean.
    unsettled: dict[str, list[Range]] = field(default_factory=dict)
    questions: int = 0  # exchanges with the peer
    leaves: int = 0

    @property
    def clean(self) -> bool:
        return not (self.resendable or self.lost or self.mismatched or self.unsettled)

    def add(self, source: str, diff: LeafDiff) -> None:
        for target, seqs in (
            (self.resendable, diff.resendable),
            (self.lost, diff.lost),
            (self.mismatched, diff.mismatched),
            (self.extra, diff.extra),
        ):
            if seqs:
                target[source] = merge(target.get(source, []), ranges_of(seqs))


def merge(a: Iterable[Range], b: Iterable[Range]) -> list[Range]:
    return coalesce([*a, *b])


async def find_differences(
    local: LocalItems, peer: PeerItems, roots: Sequence[Probe], *, max_probes: int = 512
) -> Findings:
    """Descend from ``roots`` (one per source, usually) to every differing leaf and compare it.

    ``max_probes`` bounds one question (and so one frame): a level with more probes is asked in slices.
    """
    found = Findings()
    level = list(roots)
    while level:
        differing: list[Probe] = []
        for i in range(0, len(level), max_probes):
            chunk = level[i : i + max_probes]
            answer = await peer.differing(chunk)
            found.questions += 1
            differing.extend(chunk[j] for j in sorted(answer) if 0 <= j < len(chunk))
        level = []
        for probe in differing:
            if is_leaf(probe.first, probe.last):
                # The relay's side first: read after the peer's list, it could name a seq sent meanwhile,
                # one the peer had not received when it answered, as missing.
                expected = await local.expected(probe.source, probe.first, probe.last)
                if expected is None:
                    span = [(probe.first, probe.last)]
                    found.unsettled[probe.source] = merge(found.unsettled.get(probe.source, []), span)
                    continue
                items = await peer.items(probe.source, probe.first, probe.last)
                found.questions += 1
                found.leaves += 1
                found.add(probe.source, compare_leaf(expected, items))
                continue
            for first, last in split(probe.first, probe.last):
                summary = await local.summary(probe.source, first, last)
                level.append(Probe(probe.source, first, last, summary))
    return found
