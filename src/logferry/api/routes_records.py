"""The collector's records: full-text search with filters, one record by id, and id conflicts.

``q`` is an FTS5 query over messages (words, "phrases", prefix*, AND/OR/NOT); an invalid one is a 400 with
the store's explanation. Search may trail storage (indexing runs behind ingestion): every page says how many
stored records are not searchable by ``q`` yet. This module reads only; it must never change a store.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from logferry.api.auth import token_check
from logferry.api.launch import CollectorView
from logferry.api.params import DEFAULT_LIMIT, MAX_LIMIT, MAX_TEXT, parse_level, parse_time_ns
from logferry.api.problems import ApiError, error_responses
from logferry.api.schemas import Conflicts, RecordPage, StoredOut, stored_out
from logferry.store.records import SearchQueryError

MAX_SEQ = 2**63 - 1
MAX_OFFSET = 2**62


def records_router(view: CollectorView) -> APIRouter:
    router = APIRouter(
        prefix="/api",
        tags=["records"],
        dependencies=[Depends(token_check(view.token))],
        responses=error_responses(400, 401, 503),
    )
    store = view.store

    @router.get("/records/search", response_model=RecordPage, summary="Search stored records, newest first")
    async def search(
        q: Annotated[str, Query(max_length=MAX_TEXT, description="FTS5 query; empty: every record")] = "",
        source: Annotated[str | None, Query(max_length=MAX_TEXT)] = None,
        level: Annotated[str | None, Query(max_length=32, description="this level or more severe")] = None,
        since: Annotated[
            str | None, Query(max_length=64, description="ISO 8601 or epoch s, inclusive")
        ] = None,
        until: Annotated[
            str | None, Query(max_length=64, description="ISO 8601 or epoch s, exclusive")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> RecordPage:
        ts_min, ts_max = parse_time_ns(since, "since"), parse_time_ns(until, "until")
        try:
            found = await store.search(
                q,
                limit,
                offset,
                source=source or None,
                level_max=parse_level(level),
                ts_min_ns=ts_min,
                ts_max_ns=ts_max,
            )
        except SearchQueryError as exc:
            raise ApiError(400, str(exc), 'quote words with special characters: "user=kim"') from None
        stats = await store.stats()
        return RecordPage(
            items=[stored_out(s) for s in found], limit=limit, offset=offset, fts_pending=stats.fts_pending
        )

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
