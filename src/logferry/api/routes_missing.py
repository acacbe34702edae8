"""The relay's missing list and reconciliation: list entries, resend or acknowledge them, reconcile now.

- ``GET /api/missing``: entries found by reconciliation (or reported by agents), newest first, filtered by
  state, kind and source, with paging and the total.
- ``POST /api/missing/resend`` and ``POST /api/missing/ack``: the operator's two answers to an entry, by id.
- ``POST /api/reconcile``: run a reconciliation now and answer its report; ``GET /api/reconcile``: the last
  report, the last scheduled run's error, the schedule and the policy.

Each action writes the audit log first (who, what: the ids) and its outcome after (how many, or the error),
as held release/delete do. Ids that are not in the missing list make a resend or an acknowledgement a 404
before anything is written: the operator named the wrong entries and should look again. A reconciliation
that cannot reach the collector is a 503 that says so, and is audited as ``failed``.

This module must never touch the missing list or the outbox except through the relay's ``Reconciler``, and
never act before its audit entry is committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from logferry.api.auth import operator, token_check
from logferry.api.launch import RelayView
from logferry.api.params import DEFAULT_LIMIT, MAX_LIMIT, MAX_TEXT
from logferry.api.problems import ApiError, ErrorBody, error_responses
from logferry.api.schemas import (
    AckOut,
    MissingIds,
    MissingPage,
    ReconcileRun,
    ReconcileState,
    ResendOut,
    missing_out,
    reconcile_out,
)
from logferry.errors import ProtocolError, TransportError
from logferry.reconcile.relay_side import ReconcileUnavailable
from logferry.store.missing import MissingKind, MissingState

MAX_OFFSET = 2**62
T = TypeVar("T")
_NOT_CONNECTED: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "the collector is not connected, or the store could not answer"}
}


class MissingQuery(BaseModel):
    """The missing-list filter as query parameters."""

    model_config = ConfigDict(extra="forbid")

    state: MissingState | None = Field(None, description="open, resent, acknowledged or resolved")
    kind: MissingKind | None = Field(
        None, description="missing_at_collector, digest_mismatch, lost or missing_at_device"
    )
    source: str | None = Field(None, max_length=MAX_TEXT, description="source (device) name")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"items per page (at most {MAX_LIMIT})")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="items to skip")


def missing_router(view: RelayView) -> APIRouter:
    router = APIRouter(
        tags=["missing"],
        dependencies=[Depends(token_check(view.token))],
        responses=error_responses(400, 401, 503),
    )
    reconciler = view.reconciler

    @router.get("/api/missing", response_model=MissingPage, summary="The missing list, newest first")
    async def list_missing(query: Annotated[MissingQuery, Query()]) -> MissingPage:
        source = query.source or None
        total = await reconciler.missing.count(state=query.state, kind=query.kind, source=source)
        items = await reconciler.missing_list(
            state=query.state, kind=query.kind, source=source, limit=query.limit, offset=query.offset
        )
        return MissingPage(
            items=[missing_out(e) for e in items], total=total, limit=query.limit, offset=query.offset
        )

    async def audited(
        who: str,
        action: str,
        target: dict[str, Any],
        run: Callable[[], Awaitable[T]],
        count: Callable[[T], int],
    ) -> tuple[T, int]:
        """Run ``run`` between a committed ``started`` audit entry and its outcome; (result, entry id)."""
        entry = await view.audit.begin(who, action, target)
        try:
            result = await run()
        except Exception as exc:
            await view.audit.finish(entry, 0, error=f"{type(exc).__name__}: {exc}")
            raise
        await view.audit.finish(entry, count(result))
        return result, entry

    @router.post(
        "/api/missing/resend",
        response_model=ResendOut,
        responses=error_responses(404),
        summary="Resend these entries' records to the collector, as far as the relay has them (audited)",
    )
    async def resend(body: MissingIds, who: Annotated[str, Depends(operator)]) -> ResendOut:
        ids = await _known(view, body.ids)
        result, entry = await audited(
            who, "missing.resend", {"ids": ids}, lambda: reconciler.resend(ids), lambda r: r.entries
        )
        return ResendOut(
            action="missing.resend",
            entries=result.entries,
            records=result.records,
            files=result.files,
            skipped=result.skipped,
            audit_id=entry,
        )

    @router.post(
        "/api/missing/ack",
        response_model=AckOut,
        responses=error_responses(404),
        summary="Acknowledge these entries as they are (e.g. lost for good); never reported again (audited)",
    )
    async def acknowledge(body: MissingIds, who: Annotated[str, Depends(operator)]) -> AckOut:
        ids = await _known(view, body.ids)
        changed, entry = await audited(
            who, "missing.ack", {"ids": ids}, lambda: reconciler.acknowledge_lost(ids, who), lambda n: n
        )
        return AckOut(action="missing.ack", acknowledged=changed, audit_id=entry)

    @router.post(
        "/api/reconcile",
        response_model=ReconcileRun,
        responses=_NOT_CONNECTED,
        summary="Reconcile with the collector now and answer the report (audited)",
    )
    async def reconcile_now(who: Annotated[str, Depends(operator)]) -> ReconcileRun:
        try:
            report, entry = await audited(who, "reconcile", {}, reconciler.run_now, lambda r: r.new_entries)
        except (ReconcileUnavailable, TransportError, ProtocolError) as exc:
            raise ApiError(
                503,
                f"cannot reconcile now: {exc}",
                f"the relay reconciles once connected to the collector ({view.config.collector}); check that "
                "it runs and see collector.last_error in /api/status, then retry",
            ) from None
        return ReconcileRun(**reconcile_out(report).model_dump(), audit_id=entry)

    @router.get(
        "/api/reconcile", response_model=ReconcileState, summary="The last reconciliation and the schedule"
    )
    async def reconcile_state() -> ReconcileState:
        last = reconciler.last_report
        return ReconcileState(
            last_report=None if last is None else reconcile_out(last),
            last_error=reconciler.last_error,
            interval_s=reconciler.interval_s,
            resend_policy=view.config.resend_policy.value,
            collector_connected=view.sender.status.connected,
        )

    return router


async def _known(view: RelayView, wanted: list[int]) -> list[int]:
    """``wanted`` without repeats, in order; ApiError(404) naming the ids that are not in the missing list."""
    ids = list(dict.fromkeys(wanted))
    found = {e.id for e in await view.reconciler.missing.get(ids)}
    unknown = [i for i in ids if i not in found]
    if unknown:
        shown = ", ".join(map(str, unknown[:10])) + (
            f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        )
        raise ApiError(
            404,
            f"{len(unknown)} of {len(ids)} ids are not in the missing list: {shown}; nothing was done",
            "list the entries with GET /api/missing (logferry missing list) and use their ids",
        )
    return ids
