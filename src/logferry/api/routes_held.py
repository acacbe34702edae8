"""The relay's held items: list with filters and paging, show one, release or delete some or all matching.

Release moves items to the outbox (fate RELEASED) and wakes the sender so they leave at once; delete purges
them (fate PURGED). Both write the audit log first (who, what, the keys or the filter) and its outcome after
(how many), so no item leaves the held store without an entry (promise 3). A bulk action by filter moves
items in bounded transactions of :data:`CHUNK` until none match.

Held whole files are held items too (``kind: "file"``): listed, shown, released and deleted beside records,
by filter (rule, source, ``q`` on the path; a level or time filter never selects a file) or by keys.

Explicit keys that are no longer held (released or deleted meanwhile) make the whole action a 409 before
anything moves: the operator acted on a stale list and should look again. This module must never move a held
item except through ``Journal.release``/``Journal.purge``, and never before its audit entry is committed.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field

from logferry.api.auth import operator, token_check
from logferry.api.launch import RelayView
from logferry.api.params import DEFAULT_LIMIT, MAX_LIMIT, MAX_TEXT, HeldQuery
from logferry.api.problems import ApiError, error_responses
from logferry.api.schemas import ActionResult, HeldAction, HeldOut, HeldPage, held_out
from logferry.store import journal_held
from logferry.store.journal_held import HeldFilter, HeldKey

CHUNK = 5000  # items per release/purge transaction: bounds memory and how long one write holds the writer
MAX_SEQ = 2**63 - 1
MAX_OFFSET = 2**62


class HeldListQuery(HeldQuery):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"items per page (at most {MAX_LIMIT})")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="items to skip")


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
        total = await journal.read_with(lambda c: journal_held.count_items(c, target))
        items = await journal.read_with(
            lambda c: journal_held.page_items(c, target, query.limit, query.offset)
        )
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

    async def settle(action: str, body: HeldAction, who: str) -> ActionResult:
        target: HeldFilter | list[HeldKey]
        if body.keys is not None:
            keys = list(dict.fromkeys((k.source, k.seq) for k in body.keys))
            await _check_still_held(view, keys)
            target = keys
            described: dict[str, Any] = {"keys": [f"{s}:{q}" for s, q in keys]}
        else:
            assert body.filter is not None
            target = body.filter.to_filter()
            described = {"filter": body.filter.model_dump(exclude_none=True)}
        move = journal.release if action == "held.release" else journal.purge
        entry = await view.audit.begin(who, action, described)
        done = 0
        try:
            while True:
                n = await move(target, limit=CHUNK)
                done += n
                if n and action == "held.release":
                    view.sender.notify()  # released items are in the outbox: forward them now
                if n < CHUNK or not isinstance(target, HeldFilter):
                    break
        except Exception as exc:
            await view.audit.finish(entry, done, error=f"{type(exc).__name__}: {exc}")
            raise
        await view.audit.finish(entry, done)
        return ActionResult(action=action, count=done, audit_id=entry)

    @router.post(
        "/release",
        response_model=ActionResult,
        responses=error_responses(409),
        summary="Release held items to the collector (audited)",
    )
    async def release(body: HeldAction, who: Annotated[str, Depends(operator)]) -> ActionResult:
        return await settle("held.release", body, who)

    @router.post(
        "/delete",
        response_model=ActionResult,
        responses=error_responses(409),
        summary="Delete held items for good; their fate becomes PURGED (audited)",
    )
    async def delete(body: HeldAction, who: Annotated[str, Depends(operator)]) -> ActionResult:
        return await settle("held.delete", body, who)

    return router


async def _check_still_held(view: RelayView, keys: list[HeldKey]) -> None:
    def find(conn: sqlite3.Connection) -> list[str]:
        return [f"{s}:{q}" for s, q in keys if journal_held.get_item(conn, s, q) is None]

    gone = await view.journal.read_with(find)
    if gone:
        shown = ", ".join(gone[:10]) + (f" and {len(gone) - 10} more" if len(gone) > 10 else "")
        raise ApiError(
            409,
            f"{len(gone)} of {len(keys)} items are not held (any more): {shown}; nothing was changed",
            "list the held items again and retry with what is still held",
        )
