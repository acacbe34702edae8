"""Seq ranges and run-length fate lists: the small pure helpers the stores share.

A range is an inclusive ``(first, last)`` pair of seqs. A fate run is ``[first, last, fate, rule_index]``:
the seqs first..last all had ``fate`` by the rule at ``rule_index`` in the journal row's rule list. Run-length
encoding keeps the journal at a few bytes per batch instead of a row per record.

This module does no I/O and must never touch a database or the clock.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

import msgspec

Range = tuple[int, int]
FateRun = list[int]  # [first, last, fate, rule_index]

_runs_encoder = msgspec.msgpack.Encoder()
_runs_decoder = msgspec.msgpack.Decoder(list[list[int]])
_rules_decoder = msgspec.msgpack.Decoder(list[str])


def coalesce(ranges: Iterable[Range]) -> list[Range]:
    """Sort ranges and merge the ones that overlap or touch: ``[(3, 4), (1, 2)]`` -> ``[(1, 4)]``."""
    out: list[Range] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            if last > out[-1][1]:
                out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def ranges_of(seqs: Iterable[int]) -> list[Range]:
    """The inclusive ranges covering a set of seqs: ``[5, 1, 2, 3]`` -> ``[(1, 3), (5, 5)]``."""
    out: list[Range] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def covered(seq: int, ranges: Sequence[Range]) -> bool:
    """Whether ``seq`` lies in one of ``ranges`` (a short list; a linear scan is cheapest)."""
    return any(first <= seq <= last for first, last in ranges)


def encode_runs(runs: Sequence[FateRun]) -> bytes:
    return _runs_encoder.encode(runs)


def decode_runs(blob: bytes) -> list[FateRun]:
    return _runs_decoder.decode(blob)


def encode_rules(rules: Sequence[str]) -> bytes:
    return _runs_encoder.encode(rules)


def decode_rules(blob: bytes) -> list[str]:
    return _rules_decoder.decode(blob)


def append_run(runs: list[FateRun], seq: int, fate: int, rule_index: int) -> None:
    """Extend the last run with ``seq`` when it continues it, else start a new run. Seqs must ascend."""
    if runs:
        last = runs[-1]
        if last[1] + 1 == seq and last[2] == fate and last[3] == rule_index:
            last[1] = seq
            return
    runs.append([seq, seq, fate, rule_index])


def refate(runs: Sequence[FateRun], seqs: Iterable[int], fate: int) -> list[FateRun]:
    """Return ``runs`` with the given seqs moved to ``fate`` (keeping their rule); other seqs unchanged."""
    wanted = set(seqs)
    ordered = sorted(wanted)
    out: list[FateRun] = []
    for first, last, old_fate, rule_index in runs:
        i = bisect.bisect_left(ordered, first)
        if i == len(ordered) or ordered[i] > last:
            if out and out[-1][1] + 1 == first and out[-1][2] == old_fate and out[-1][3] == rule_index:
                out[-1][1] = last
            else:
                out.append([first, last, old_fate, rule_index])
            continue
        for seq in range(first, last + 1):
            append_run(out, seq, fate if seq in wanted else old_fate, rule_index)
    return out
