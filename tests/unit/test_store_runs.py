"""Seq ranges and fate runs: the pure helpers under the stores."""

from __future__ import annotations

from logferry.store.runs import coalesce, decode_runs, encode_runs, ranges_of, refate


def test_coalesce_merges_overlapping_and_touching() -> None:
    assert coalesce([(5, 6), (1, 2), (3, 3), (10, 12), (11, 11)]) == [(1, 3), (5, 6), (10, 12)]
    assert coalesce([(4, 4), (1, 3), (5, 9), (2, 6)]) == [(1, 9)]
    assert coalesce([]) == []


def test_ranges_of_sets_of_seqs() -> None:
    assert ranges_of([5, 1, 2, 3, 3, 9]) == [(1, 3), (5, 5), (9, 9)]


def test_refate_splits_and_merges_runs() -> None:
    runs = [[1, 4, 1, 0], [5, 8, 3, 1], [9, 9, 1, 0]]
    assert refate(runs, [6, 7], 5) == [[1, 4, 1, 0], [5, 5, 3, 1], [6, 7, 5, 1], [8, 8, 3, 1], [9, 9, 1, 0]]
    assert refate(runs, [5, 6, 7, 8], 5) == [[1, 4, 1, 0], [5, 8, 5, 1], [9, 9, 1, 0]]
    assert decode_runs(encode_runs(runs)) == runs
