"""The collector's half of reconciliation: answer a relay's questions from the record and file stores.

Before answering it makes the store current: batches still in the inbox become rows (so a batch the relay
just saw acknowledged is never reported missing), and buckets marked dirty (rows deleted or changed behind
the store's back, see the records migration's triggers) are rebuilt from the rows themselves. A row's digest
is *verified* against its payload whenever rows are read here: a row whose stored digest no longer matches
its content answers with a poisoned digest, so a changed message and a changed digest column both show up as
a mismatch. Files (``ItemKind.FILE``) are answered from ``files.db`` the same way: stored content whose
size or mtime changed is found by a sweep, dirty buckets are rebuilt after the content of their items is
verified (sha256), and an item whose content is missing or damaged answers a poisoned digest
(``store/file_manifests.py``). This module never changes a record or a manifest; it only reads them and
rewrites bucket summaries.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import msgspec

from logferry.model import payload_digest
from logferry.protocol.messages import Differs, ItemsAnswer, ItemsQuery, ReconcileAnswer, ReconcileQuery
from logferry.reconcile.summary import EMPTY, ItemKind, Summary, bucket_of, bucket_span
from logferry.reconcile.tables import bucket_sum, set_bucket
from logferry.store import file_manifests
from logferry.store.file_manifests import FileManifests
from logferry.store.records import RecordStore
from logferry.store.runs import ranges_of
from logferry.transport.serve import QueryRefused

log = logging.getLogger("logferry.reconcile")

MAX_LEAF_SEQS = 1 << 12  # an items query spans at most this many seqs (a leaf is 1024)
MATERIALIZE_BATCHES = 16
_fields = msgspec.json.Decoder(dict[str, str])


def verified_digest(row: Any) -> bytes:
    """The digest to report for a stored row: its own if it matches the payload, else a poisoned one."""
    _seq, ts_ns, level, host, path, msg, fields, digest = row
    payload = payload_digest(ts_ns, level, host, path, msg, _fields.decode(fields) if fields else {})
    stored = bytes(digest)
    if payload == stored:
        return stored
    # Neither the stored digest nor the payload's: the relay's digest can match neither by accident.
    return hashlib.blake2b(b"corrupt" + stored + payload, digest_size=8).digest()


_ROWS = (
    "SELECT seq, ts_ns, level, host, path, msg, fields, digest FROM records "
    "WHERE source = ? AND seq BETWEEN ? AND ? ORDER BY seq"
)


def _items(conn: sqlite3.Connection, source: str, first: int, last: int) -> list[tuple[int, bytes]]:
    return [(int(r[0]), verified_digest(r)) for r in conn.execute(_ROWS, (source, first, last))]


def rebuild_dirty(conn: sqlite3.Connection) -> int:
    """Recompute every dirty bucket from its rows (inside the store's write transaction)."""
    dirty = conn.execute("SELECT source, kind, bucket FROM recon_dirty").fetchall()
    for source, kind, bucket in dirty:
        if kind != ItemKind.RECORD:
            continue  # other kinds rebuild their own buckets (files, when they come)
        first, last = bucket_span(int(bucket))
        set_bucket(conn, source, ItemKind.RECORD, int(bucket), Summary.of(_items(conn, source, first, last)))
        conn.execute(
            "DELETE FROM recon_dirty WHERE source = ? AND kind = ? AND bucket = ?", (source, kind, bucket)
        )
    return len(dirty)


ItemsOf = Callable[[sqlite3.Connection, str, int, int], list[tuple[int, bytes]]]


def range_summary(
    conn: sqlite3.Connection,
    source: str,
    first: int,
    last: int,
    kind: ItemKind = ItemKind.RECORD,
    items: ItemsOf = _items,
) -> Summary:
    """The summary of the items of ``source`` in ``first..last``: whole buckets from the bucket table,
    the partial buckets at either end from the items (records by default)."""
    if first > last:
        return EMPTY
    b0, b1 = bucket_of(first), bucket_of(last)
    if b0 == b1:
        lo, hi = bucket_span(b0)
        if first == lo and last == hi:
            return bucket_sum(conn, source, kind, b0, b0)
        return Summary.of(items(conn, source, first, last))
    head_whole = first == bucket_span(b0)[0]
    tail_whole = last == bucket_span(b1)[1]
    inner0 = b0 if head_whole else b0 + 1
    inner1 = b1 if tail_whole else b1 - 1
    out = bucket_sum(conn, source, kind, inner0, inner1) if inner0 <= inner1 else EMPTY
    if not head_whole:
        out = out + Summary.of(items(conn, source, first, bucket_span(b0)[1]))
    if not tail_whole:
        out = out + Summary.of(items(conn, source, bucket_span(b1)[0], last))
    return out


class ReconcileResponder:
    """Answers ReconcileQuery and ItemsQuery for one record store and, once ``files`` is set, its files."""

    def __init__(self, store: RecordStore, max_body_bytes: int, files: FileManifests | None = None) -> None:
        self.store = store
        self.max_body_bytes = max_body_bytes
        self.files = files
        self.answered = 0

    async def answer(self, query: ReconcileQuery | ItemsQuery) -> ReconcileAnswer | ItemsAnswer:
        if query.kind == ItemKind.FILE and self.files is not None:
            return await self._answer_files(self.files, query)
        if query.kind != ItemKind.RECORD:
            raise QueryRefused(f"this collector does not reconcile item kind {query.kind}")
        await self._make_current()
        self.answered += 1
        if isinstance(query, ItemsQuery):
            _check_span(query)
            found = await self.store.read_with(lambda c: _items(c, query.source, query.first, query.last))
            return ItemsAnswer(query.query_id, ranges_of(s for s, _ in found), b"".join(d for _, d in found))

        def run(conn: sqlite3.Connection) -> list[Differs]:
            out: list[Differs] = []
            for i, r in enumerate(query.ranges):
                ours = range_summary(conn, r.source, r.first, r.last)
                if ours != Summary(r.count, r.xor, r.sum):
                    out.append(Differs(i, ours.count, ours.xor, ours.sum))
            return out

        return ReconcileAnswer(query.query_id, await self.store.read_with(run))

    async def _answer_files(
        self, files: FileManifests, query: ReconcileQuery | ItemsQuery
    ) -> ReconcileAnswer | ItemsAnswer:
        """Files: a summary question first finds content changed on disk (sweep), then every dirty
        bucket is rebuilt with its items' content verified; bad content is listed with a poisoned digest."""
        self.answered += 1
        if isinstance(query, ItemsQuery):
            _check_span(query)
            bad = set(files.bad)
            found = await files.read_with(
                lambda c: file_manifests.items(c, query.source, query.first, query.last, bad)
            )
            return ItemsAnswer(query.query_id, ranges_of(s for s, _ in found), b"".join(d for _, d in found))
        await files.sweep()
        rebuilt = await files.rebuild_dirty()
        if rebuilt:
            log.info("rebuilt %d file reconciliation buckets after verifying their content", rebuilt)
        bad = set(files.bad)

        def of(conn: sqlite3.Connection, source: str, first: int, last: int) -> list[tuple[int, bytes]]:
            return file_manifests.items(conn, source, first, last, bad)

        def run(conn: sqlite3.Connection) -> list[Differs]:
            out: list[Differs] = []
            for i, r in enumerate(query.ranges):
                ours = range_summary(conn, r.source, r.first, r.last, ItemKind.FILE, of)
                if ours != Summary(r.count, r.xor, r.sum):
                    out.append(Differs(i, ours.count, ours.xor, ours.sum))
            return out

        return ReconcileAnswer(query.query_id, await files.read_with(run))

    async def _make_current(self) -> None:
        # The background materializer may be taking batches too; both go through the writer queue.
        while self.store.inbox_records:
            if not await self.store.materialize(MATERIALIZE_BATCHES, self.max_body_bytes):
                break
        rebuilt = await self.store.write_with(rebuild_dirty)
        if rebuilt:
            log.info("rebuilt %d reconciliation buckets whose rows changed behind the store", rebuilt)


def _check_span(query: ItemsQuery) -> None:
    if query.last - query.first >= MAX_LEAF_SEQS or query.first > query.last:
        raise QueryRefused(f"items query {query.first}..{query.last} spans over {MAX_LEAF_SEQS} seqs")
