"""The relay journal's commit transactions: dedupe, journal rows, held rows, outbox, counters, acked prefix.

Each function here runs inside the journal's writer thread, in the transaction the Database opened, and
takes the connection as its first argument. Keeping them apart from the asyncio-facing ``Journal`` class lets
the same code serve ``commit``, ``commit_entries`` and the no-rules fast path.

Nothing here may commit, open a transaction, or touch the event loop; and no seq may get a second fate:
a seq already journaled is skipped (it is durable already), never journaled again.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Protocol

import msgspec

from logferry.model import Codec, Fate, Record, decode_body, encode_body
from logferry.reconcile.summary import BucketTally, ItemKind
from logferry.reconcile.tables import add_tally
from logferry.store.runs import FateRun, Range, coalesce, covered, encode_rules, encode_runs, ranges_of

_json = msgspec.json.Encoder()

_OUTBOX_FATES = frozenset((Fate.FORWARDED, Fate.REDACTED))
_INSERT_JOURNAL = (
    "INSERT INTO journal(source, first_seq, last_seq, received_ns, fates, rules) VALUES (?, ?, ?, ?, ?, ?)"
)


class Decided(Protocol):
    """What the journal needs of a rules decision; ``pipeline.rules.Decision`` has this shape too."""

    @property
    def record(self) -> Record: ...
    @property
    def fate(self) -> Fate: ...
    @property
    def rule(self) -> str: ...


class Decision(msgspec.Struct, frozen=True, gc=False):
    """A plain :class:`Decided`. For REDACTED, ``record`` is the redacted copy."""

    record: Record
    fate: Fate
    rule: str = ""


def fields_json(fields: dict[str, str]) -> str | None:
    return _json.encode(fields).decode() if fields else None


def source_state(conn: sqlite3.Connection, source: str) -> tuple[int, int]:
    """``(next_seq, acked_through)`` of ``source``, creating its row on first sight."""
    row = conn.execute("SELECT next_seq, acked_through FROM sources WHERE source = ?", (source,)).fetchone()
    if row is None:
        conn.execute("INSERT INTO sources(source, next_seq, acked_through) VALUES (?, 1, 0)", (source,))
        return 1, 0
    return int(row[0]), int(row[1])


def overlapping(conn: sqlite3.Connection, source: str, lo: int, hi: int) -> Iterator[tuple[int, int, int]]:
    """``(id, first_seq, last_seq)`` of the journal rows of ``source`` that overlap ``lo..hi``, ascending.

    A source's journal rows never overlap one another, so ordering by last_seq also orders by first_seq and
    the scan stops at the first row past ``hi``: cost is the rows returned, not the journal's size.
    """
    rows = conn.execute(
        "SELECT id, first_seq, last_seq FROM journal WHERE source = ? AND last_seq >= ? ORDER BY last_seq",
        (source, lo),
    )
    try:
        for row_id, first, last in rows:
            if first > hi:
                return
            yield row_id, first, last
    finally:
        rows.close()


def commit_decisions(
    conn: sqlite3.Connection, source: str, decisions: Sequence[Decided], codec: Codec, now_ns: int
) -> tuple[list[Range], int]:
    """Journal the decisions not journaled yet; returns (ranges of ALL incoming seqs, new acked_through)."""
    _, at = source_state(conn, source)
    if not decisions:
        return [], at
    seqs = [d.record.seq for d in decisions]
    ascending = all(a < b for a, b in itertools.pairwise(seqs))
    ordered = decisions if ascending else _unique_sorted(decisions)
    lo, hi = ordered[0].record.seq, ordered[-1].record.seq
    # Seqs at or below acked_through are journaled by definition; only rows past it need an overlap query.
    spans = [(f, la) for _, f, la in overlapping(conn, source, max(lo, at + 1), hi)] if hi > at else []
    known = coalesce(spans)  # adjacent rows merge, so the per-seq check stays short
    fresh = [d for d in ordered if d.record.seq > at and not (known and covered(d.record.seq, known))]
    if fresh:
        _write(conn, source, fresh, codec, now_ns)
        at = advance(conn, source, at)
    return (_ascending_ranges(seqs) if ascending else ranges_of(seqs)), at


def commit_body(
    conn: sqlite3.Connection,
    source: str,
    span: tuple[int, int, int],
    codec: Codec,
    body: bytes,
    *,
    now_ns: int,
    tally: BucketTally | None = None,
) -> int | None:
    """Journal a whole batch (``span`` = first, last, count) as FORWARDED and store its body untouched.

    Returns the new acked_through, or None, writing nothing, if any seq is journaled already. ``tally``
    (the records' reconciliation summary) is computed here from the body when the caller has none.
    """
    first_seq, last_seq, count = span
    _, at = source_state(conn, source)
    if count != last_seq - first_seq + 1 or first_seq <= at:
        return None
    if next(overlapping(conn, source, first_seq, last_seq), None) is not None:
        return None
    runs = [[first_seq, last_seq, int(Fate.FORWARDED), 0]]
    conn.execute(
        _INSERT_JOURNAL,
        (source, first_seq, last_seq, now_ns, encode_runs(runs), encode_rules([""])),
    )
    insert_outbox(conn, source, (first_seq, last_seq, count), codec, body, now_ns=now_ns)
    if tally is None:
        tally = BucketTally().add_all((r.seq, r.digest) for r in decode_body(body, codec, 1 << 30))
    add_tally(conn, source, ItemKind.RECORD, tally)
    bump_counters(conn, source, {(int(Fate.FORWARDED), ""): count})
    return advance(conn, source, at)


def insert_outbox(
    conn: sqlite3.Connection,
    source: str,
    span: tuple[int, int, int],
    codec: Codec,
    body: bytes,
    *,
    now_ns: int,
) -> None:
    """One outbox row; ``span`` is (first_seq, last_seq, count) of the records in ``body``."""
    first_seq, last_seq, count = span
    conn.execute(
        "INSERT INTO outbox(source, first_seq, last_seq, count, codec, bytes, acked, created_ns, body) "
        "VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
        (source, first_seq, last_seq, count, int(codec), len(body), now_ns, body),
    )


def bump_counters(conn: sqlite3.Connection, source: str, deltas: dict[tuple[int, str], int]) -> None:
    conn.executemany(
        "INSERT INTO counters(source, fate, rule, n) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(source, fate, rule) DO UPDATE SET n = n + excluded.n",
        [(source, fate, rule, n) for (fate, rule), n in deltas.items() if n],
    )


def advance(conn: sqlite3.Connection, source: str, at: int) -> int:
    """Move the source's acked_through over the journal rows that continue it without a hole."""
    new = at
    for _, first, last in overlapping(conn, source, at + 1, 1 << 62):
        if first > new + 1:
            break
        new = max(new, last)
    if new != at:
        conn.execute("UPDATE sources SET acked_through = ? WHERE source = ?", (new, source))
    return new


def _write(
    conn: sqlite3.Connection, source: str, fresh: Sequence[Decided], codec: Codec, now_ns: int
) -> None:
    """Journal rows (one per contiguous run of seqs), held rows, one outbox row, counters."""
    rules: list[str] = []
    rule_index: dict[str, int] = {}
    counts: dict[tuple[int, str], int] = {}
    segments: list[tuple[int, int, list[FateRun]]] = []
    runs: list[FateRun] = []
    seg_first = prev = fresh[0].record.seq
    held: list[tuple[object, ...]] = []
    outgoing: list[Record] = []
    for d in fresh:
        rec, fate, rule = d.record, int(d.fate), d.rule
        seq = rec.seq
        ri = rule_index.get(rule)
        if ri is None:
            ri = rule_index[rule] = len(rules)
            rules.append(rule)
        if seq != prev + 1 and runs:
            segments.append((seg_first, prev, runs))
            runs, seg_first = [], seq
        last_run = runs[-1] if runs else None
        if last_run is not None and last_run[1] + 1 == seq and last_run[2] == fate and last_run[3] == ri:
            last_run[1] = seq
        else:
            runs.append([seq, seq, fate, ri])
        prev = seq
        key = (fate, rule)
        counts[key] = counts.get(key, 0) + 1
        if d.fate in _OUTBOX_FATES:
            outgoing.append(rec)
        elif d.fate is Fate.HELD:
            fields = fields_json(rec.fields)
            held.append(
                (
                    source,
                    seq,
                    rule,
                    rec.ts_ns,
                    rec.level,
                    rec.host,
                    rec.path,
                    rec.msg,
                    fields,
                    rec.digest,
                    now_ns,
                )
            )
    segments.append((seg_first, prev, runs))
    rules_blob = encode_rules(rules)
    conn.executemany(
        _INSERT_JOURNAL,
        [(source, f, la, now_ns, encode_runs(r), rules_blob) for f, la, r in segments],
    )
    if held:
        conn.executemany("INSERT INTO held VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", held)
    if outgoing:
        body = encode_body(outgoing, codec)
        insert_outbox(
            conn, source, (outgoing[0].seq, outgoing[-1].seq, len(outgoing)), codec, body, now_ns=now_ns
        )
        # What goes to the outbox is what the collector must end up holding: the redacted version, if any.
        add_tally(conn, source, ItemKind.RECORD, BucketTally().add_all((r.seq, r.digest) for r in outgoing))
    bump_counters(conn, source, counts)


def _unique_sorted(decisions: Sequence[Decided]) -> list[Decided]:
    """Sort by seq, keeping the first decision for a seq that appears twice in one batch."""
    out: dict[int, Decided] = {}
    for d in decisions:
        out.setdefault(d.record.seq, d)
    return [out[s] for s in sorted(out)]


def _ascending_ranges(seqs: list[int]) -> list[Range]:
    out: list[Range] = []
    start = prev = seqs[0]
    for seq in seqs[1:]:
        if seq != prev + 1:
            out.append((start, prev))
            start = seq
        prev = seq
    out.append((start, prev))
    return out
