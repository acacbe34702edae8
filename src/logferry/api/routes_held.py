"""The relay's held items: list with filters and paging, show one, release or delete some or all matching.

Release moves items to the outbox (fate RELEASED) and wakes the sender so they leave at once; delete purges
them (fate PURGED). Both write the audit log first (who, what, the keys or the filter) and its outcome after
(how many), so no item leaves the held store without an entry (promise 3). A bulk action by filter moves
items in bounded transactions (``audited.CHUNK``) until none match.

Held whole files are held items too (``kind: "file"``): listed, shown, released and deleted beside records,
by filter (rule, source, ``q`` on the path; a level or time filter never selects a file) or by keys.
The time filter (``since``/``until`` on the record's time) is served by the ``held_ts`` index (and
``held_rule`` with a rule), so a page stays fast with a million held items.

The settle itself — audit first, bounded transactions, outcome after — is
:func:`logferry.api.audited.settle_held`, which the console calls too.

Explicit keys that are no longer held (released or deleted meanwhile) make the whole action a 409 before
anything moves: the operator acted on a stale list and should look again. This module must never move a held
item except through ``Journal.release``/``Journal.purge``, and never before its audit entry is committed.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field

from logferry.api.audited import HeldVerb, StaleKeys, settle_held
from logferry.api.auth import operator, token_check
from logferry.api.launch import RelayView
from logferry.api.params import DEFAULT_LIMIT, MAX_LIMIT, MAX_TEXT, HeldQuery
from logferry.api.problems import ApiError, error_responses
from logferry.api.schemas import ActionResult, HeldAction, HeldOut, HeldPage, held_out
from logferry.store import journal_files, journal_held
from logferry.store.journal_held import HeldFilter, HeldItem, HeldKey

MAX_SEQ = 2**63 - 1
MAX_OFFSET = 2**62


class HeldListQuery(HeldQuery):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"items per page (at most {MAX_LIMIT})")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="items to skip")
    kind: Literal["record", "file"] | None = Field(None, description="only held records, or only held files")


def _page(c: sqlite3.Connection, query: HeldListQuery, target: HeldFilter) -> tuple[int, list[HeldItem]]:
    """(total, page) of the held items of the asked kind (both when none is asked)."""
    if query.kind == "record":
        items: list[HeldItem] = list(journal_held.page(c, target, query.limit, query.offset))
        return journal_held.count(c, target), items
    if query.kind == "file":
        if target.level_max is not None or target.ts_min_ns is not None or target.ts_max_ns is not None:
            return 0, []  # a level or record-time filter never selects a file
        args = (target.source, target.rule, target.text)
        page = journal_files.page_held(c, *args, query.limit, query.offset)
        return journal_files.count_held(c, *args), list(page)
    return journal_held.count_items(c, target), journal_held.page_items(c, target, query.limit, query.offset)


def held_router(view: RelayView) -> APIRouter:
    router = APIRouter(
        prefix="/api/held",
        tags=["held"],
        dependencies=[Depends(token_check(view.token))],
        responses=error_responses(400, 401, 503),
    )
    journal = view.journal

    @router.get("", response_model=HeldPage, summary="Held items matching the filters, newest first")
    async def list_held(query: Annotated[HeldListQuery, Query()]) -> HeldPage:
        target = query.to_filter()
        total, items = await journal.read_with(lambda c: _page(c, query, target))
        return HeldPage(
            items=[held_out(h) for h in items], total=total, limit=query.limit, offset=query.offset
        )

    @router.get(
        "/{source:path}/{seq}",
        response_model=HeldOut,
        responses=error_responses(404),
        summary="One held item",
    )
    async def show_held(
        source: Annotated[str, Path(min_length=1, max_length=MAX_TEXT)],
        seq: Annotated[int, Path(ge=1, le=MAX_SEQ)],
    ) -> HeldOut:
        found = await journal.read_with(lambda c: journal_held.get_item(c, source, seq))
        if found is None:
            raise ApiError(
                404,
                f"{source}:{seq} is not held",
                "it may have been released or deleted; see /api/audit, or list what is held with /api/held",
            )
        return held_out(found)

    async def settle(verb: HeldVerb, body: HeldAction, who: str) -> ActionResult:
        target: HeldFilter | list[HeldKey]
        described: dict[str, Any] | None = None
        if body.keys is not None:
            target = [(k.source, k.seq) for k in body.keys]
        else:
            assert body.filter is not None
            target = body.filter.to_filter()
            described = body.filter.model_dump(exclude_none=True)
        try:
            done = await settle_held(view, verb, target, who, described=described)
        except StaleKeys as exc:
            raise ApiError(
                409,
                f"{len(exc.gone)} of {exc.asked} items are not held (any more): {exc.shown}; "
                "nothing was changed",
                "list the held items again and retry with what is still held",
            ) from None
        return ActionResult(action=verb.value, count=done.count, audit_id=done.audit_id)

    @router.post(
        "/release",
        response_model=ActionResult,
        responses=error_responses(403, 409),
        summary="Release held items to the collector (audited)",
    )
    async def release(body: HeldAction, who: Annotated[str, Depends(operator)]) -> ActionResult:
        return await settle(HeldVerb.RELEASE, body, who)

    @router.post(
        "/delete",
        response_model=ActionResult,
        responses=error_responses(403, 409),
        summary="Delete held items for good; their fate becomes PURGED (audited)",
    )
    async def delete(body: HeldAction, who: Annotated[str, Depends(operator)]) -> ActionResult:
        return await settle(HeldVerb.DELETE, body, who)

    return router
