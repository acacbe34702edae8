"""Mine message templates from stored records with Drain (drain3), and count what a batch adds.

:class:`TemplateMiner` feeds each record's message to drain3's ``Drain`` (a fixed-depth prefix tree of
templates: ``payment failed for order <*>``) and returns a :class:`MinedBatch`: per template its current
text and how many records it took (with first and last record time), per template and hour, and per source
and error-rate window the records and errors. The follower commits that batch, the cursor and (now and then)
the miner's state in one transaction, so a count is never added twice.

drain3's state is saved, not rebuilt from the stored templates: re-adding templates to an empty tree does
not give the same tree (a template generalised after it was created sits where its first message put it;
two templates can merge when re-added), so later records would be grouped differently after a restart.
The saved state is drain3's own (``jsonpickle`` of ``Drain``, zlib-compressed). Saving it costs time that
grows with the number of templates, so it is saved every ``SNAPSHOT_EVERY_S`` rather than every batch; on
start the records between the snapshot and the cursor are replayed through the tree without counting
(:meth:`TemplateMiner.replay`) — Drain is deterministic, so this restores exactly the state after the cursor.

This module does no I/O and reads no clock: it runs in a worker thread on rows handed to it. It must never
count a record twice or hold more than ``drain_max_clusters`` templates in memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import jsonpickle  # type: ignore[import-untyped]
from drain3.drain import Drain  # type: ignore[import-untyped]

from logferry.analysis.settings import ERROR_LEVEL_MAX, TEMPLATE_BUCKET_S, AnalysisSettings

NS = 1_000_000_000
SNAPSHOT_EVERY_S = 60.0  # how often the follower saves drain3's state (replay covers the rest)
MAX_MESSAGE_CHARS = 2000  # a huge message is mined by its start: Drain's cost grows with its tokens


@dataclass(frozen=True, slots=True)
class MinedRow:
    """What the miner needs of a stored record."""

    rowid: int
    source: str
    ts_ns: int
    level: int
    msg: str


@dataclass(slots=True)
class TemplateDelta:
    template: str
    count: int
    first_ns: int
    last_ns: int


@dataclass(slots=True)
class MinedBatch:
    cursor: int  # the last rowid this batch covers
    records: int = 0
    templates: dict[int, TemplateDelta] = field(default_factory=dict)
    created: list[int] = field(default_factory=list)  # templates this batch created, in order
    hours: dict[tuple[int, int], int] = field(default_factory=dict)  # (template, hour start s) -> records
    windows: dict[tuple[str, int], list[int]] = field(default_factory=dict)  # (source, start s) -> [n, err]


class TemplateMiner:
    """drain3's Drain with the settings applied; ``state`` is a snapshot from :meth:`snapshot` (or None)."""

    def __init__(self, settings: AnalysisSettings, state: bytes | None = None, first_id: int = 0) -> None:
        self.settings = settings
        if state is not None:
            self.drain: Drain = jsonpickle.loads(zlib.decompress(state).decode("utf-8"), keys=True)
        else:
            self.drain = Drain(
                depth=settings.drain_depth,
                sim_th=settings.drain_similarity,
                max_children=settings.drain_max_children,
                max_clusters=settings.drain_max_clusters,
                profiler=None,  # drain3's default profiler costs a call per section even when off
            )
            # A fresh tree after a settings change must not reuse ids of templates already stored.
            self.drain.clusters_counter = first_id

    def snapshot(self) -> bytes:
        """drain3's state, for :class:`TemplateMiner` (``state=``) after a restart."""
        return zlib.compress(jsonpickle.dumps(self.drain, keys=True).encode("utf-8"), 6)

    @property
    def template_count(self) -> int:
        return len(self.drain.id_to_cluster)

    def replay(self, rows: Sequence[MinedRow]) -> None:
        """Feed rows already counted (after a snapshot, before the cursor) to rebuild the tree exactly."""
        for row in rows:
            self.drain.add_log_message(row.msg[:MAX_MESSAGE_CHARS])

    def mine(self, rows: Sequence[MinedRow]) -> MinedBatch:
        """Add ``rows`` (ascending rowid) to the tree; what they add to the counts."""
        batch = MinedBatch(cursor=rows[-1].rowid if rows else 0)
        window_ns = self.settings.window_s * NS
        hour_ns = TEMPLATE_BUCKET_S * NS
        add = self.drain.add_log_message
        templates, hours, windows = batch.templates, batch.hours, batch.windows
        touched: dict[int, object] = {}
        for row in rows:
            cluster, change = add(row.msg[:MAX_MESSAGE_CHARS])
            tid = int(cluster.cluster_id)
            if change == "cluster_created":
                batch.created.append(tid)
            touched[tid] = cluster
            delta = templates.get(tid)
            if delta is None:
                templates[tid] = TemplateDelta("", 1, row.ts_ns, row.ts_ns)
            else:
                delta.count += 1
                delta.first_ns = min(delta.first_ns, row.ts_ns)
                delta.last_ns = max(delta.last_ns, row.ts_ns)
            hour_key = (tid, row.ts_ns // hour_ns * TEMPLATE_BUCKET_S)
            hours[hour_key] = hours.get(hour_key, 0) + 1
            window_key = (row.source, row.ts_ns // window_ns * self.settings.window_s)
            counts = windows.get(window_key)
            if counts is None:
                counts = windows[window_key] = [0, 0]
            counts[0] += 1
            if row.level <= ERROR_LEVEL_MAX:
                counts[1] += 1
        for tid, cluster in touched.items():
            templates[tid].template = cluster.get_template()  # type: ignore[attr-defined]
        batch.records = len(rows)
        return batch
