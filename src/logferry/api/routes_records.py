"""The collector's records: full-text search with filters, a histogram of matches over time, facets
(source, level, host, path) with counts, one record by id, and id conflicts.

``q`` is an FTS5 query over messages (words, "phrases", prefix*, AND/OR/NOT); an invalid one is a 400 with
the store's explanation. Search may trail storage (indexing runs behind ingestion): every page says how many
stored records are not searchable by ``q`` yet. Search, histogram and facets take the same filters and run
the same SQL as the console's Search page (``store/record_queries.py``); histograms and facets count at most
a bounded number of matches and say so (``partial``). This module reads only; it must never change a store.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from logferry.api.auth import token_check
from logferry.api.launch import CollectorView
from logferry.api.params import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_TEXT,
    iso,
    level_name,
    parse_level,
    parse_time_ns,
)
from logferry.api.problems import ApiError, error_responses
from logferry.api.schemas import Conflicts, RecordPage, StoredOut, stored_out
from logferry.store.record_queries import RecordFilter, RecordQueries
from logferry.store.records import SearchQueryError

MAX_SEQ = 2**63 - 1
MAX_OFFSET = 2**62
MAX_BUCKETS = 500
MAX_TOP = 100
BAD_QUERY_HINT = 'quote words with special characters: "user=kim"'


class BucketOut(BaseModel):
    start: str
    start_ns: int
    count: int


class HistogramOut(BaseModel):
    width_s: int = Field(description="every bucket's width")
    buckets: list[BucketOut] = Field(description="every bucket of the range, empty ones included")
    total: int = Field(description="matches counted")
    partial: bool = Field(description="true: counting stopped at the newest matches; older buckets are low")
    fts_pending: int


class FacetValueOut(BaseModel):
    value: str
    count: int


class FacetsOut(BaseModel):
    source: list[FacetValueOut]
    level: list[FacetValueOut]
    host: list[FacetValueOut]
    path: list[FacetValueOut]
    scanned: int = Field(description="matches the counts cover")
    partial: bool = Field(description="true: only the newest matches were counted")
    fts_pending: int


Text = Annotated[str, Query(max_length=MAX_TEXT, description="FTS5 query; empty: every record")]
Exact = Annotated[str | None, Query(max_length=MAX_TEXT, description="exact value")]
LevelQ = Annotated[str | None, Query(max_length=32, description="this level or more severe")]
Since = Annotated[str | None, Query(max_length=64, description="ISO 8601 or epoch s, inclusive")]
Until = Annotated[str | None, Query(max_length=64, description="ISO 8601 or epoch s, exclusive")]


def record_filter(q: Text = "", source: Exact = None, level: LevelQ = None, host: Exact = None,
                  path: Exact = None, since: Since = None, until: Until = None) -> RecordFilter:  # fmt: skip
    """The filter query parameters every records route takes, as the store's filter (a FastAPI dependency);
    a 400 naming the first bad one."""
    ts_min, ts_max = parse_time_ns(since, "since"), parse_time_ns(until, "until")
    if ts_min is not None and ts_max is not None and ts_max <= ts_min:
        raise ApiError(400, "until must be later than since", "swap them, or leave one out")
    return RecordFilter(text=q, source=source or None, level_max=parse_level(level), host=host or None,
                        path=path or None, ts_min_ns=ts_min, ts_max_ns=ts_max)  # fmt: skip


Filtered = Annotated[RecordFilter, Depends(record_filter)]


def records_router(view: CollectorView) -> APIRouter:
    router = APIRouter(
        prefix="/api",
        tags=["records"],
        dependencies=[Depends(token_check(view.token))],
        responses=error_responses(400, 401, 503),
    )
    store = view.store

    queries = RecordQueries(store)

    @router.get("/records/search", response_model=RecordPage, summary="Search stored records, newest first")
    async def search(
        f: Filtered,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> RecordPage:  # fmt: skip
        try:
            found = await queries.search(f, limit, offset)
        except SearchQueryError as exc:
            raise ApiError(400, str(exc), BAD_QUERY_HINT) from None
        stats = await store.stats()
        return RecordPage(
            items=[stored_out(s) for s in found], limit=limit, offset=offset, fts_pending=stats.fts_pending
        )

    @router.get(
        "/records/histogram",
        response_model=HistogramOut,
        summary="Matches per time bucket (range: since/until, else every stored record's)",
    )
    async def histogram(
        f: Filtered,
        buckets: Annotated[int, Query(ge=1, le=MAX_BUCKETS, description="at most this many buckets")] = 60,
    ) -> HistogramOut:  # fmt: skip
        try:
            h = await queries.histogram(f, buckets)
        except SearchQueryError as exc:
            raise ApiError(400, str(exc), BAD_QUERY_HINT) from None
        return HistogramOut(
            width_s=h.width_s, total=h.total, partial=h.partial,
            fts_pending=(await store.stats()).fts_pending,
            buckets=[BucketOut(start=iso(b.start_ns), start_ns=b.start_ns, count=b.count) for b in h.buckets],
        )  # fmt: skip

    @router.get("/records/facets", response_model=FacetsOut,
                summary="The most frequent sources, levels, hosts and paths among the matches")  # fmt: skip
    async def facets(
        f: Filtered,
        top: Annotated[int, Query(ge=1, le=MAX_TOP, description="values per field")] = 10,
    ) -> FacetsOut:  # fmt: skip
        try:
            found = await queries.facets(f, top)
        except SearchQueryError as exc:
            raise ApiError(400, str(exc), BAD_QUERY_HINT) from None

        def values(name: str) -> list[FacetValueOut]:
            return [
                FacetValueOut(
                    value=level_name(v.value) if isinstance(v.value, int) else v.value, count=v.count
                )
                for v in found.fields.get(name, [])
            ]

        return FacetsOut(source=values("source"), level=values("level"), host=values("host"),
                         path=values("path"), scanned=found.scanned, partial=found.partial,
                         fts_pending=(await store.stats()).fts_pending)  # fmt: skip

    @router.get(
        "/records/{source}/{seq}",
        response_model=StoredOut,
        responses=error_responses(404),
        summary="One stored record by id",
    )
    async def record(
        source: Annotated[str, Path(min_length=1, max_length=MAX_TEXT)],
        seq: Annotated[int, Path(ge=1, le=MAX_SEQ)],
    ) -> StoredOut:
        found = await store.get(source, seq)
        if found is None:
            raise ApiError(
                404,
                f"{source}:{seq} is not stored here",
                "it may not have arrived yet, or was "
                "held or dropped at the relay; check the relay's /api/held",
            )
        return stored_out(found)

    @router.get(
        "/conflicts",
        response_model=Conflicts,
        summary="Records that reused a stored id with another digest (the first one is kept)",
    )
    async def conflicts(limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT) -> Conflicts:
        return Conflicts(items=[stored_out(s) for s in await store.conflicts(limit)])

    return router
