"""The relay's missing list and reconciliation: list entries, resend or acknowledge them, reconcile now.

- ``GET /api/missing``: entries found by reconciliation (or reported by agents), newest first, filtered by
  state, kind and source, with paging and the total.
- ``GET /api/missing/sources``: the same list counted per source and kind (the console groups by it).
- ``POST /api/missing/resend`` and ``POST /api/missing/ack``: the operator's two answers to an entry, by id.
- ``POST /api/missing/ask``: "ask the device" — send an agent the relay's ``ResendRequest`` for the
  ``missing_at_device`` entries named, or for every hole in one source's seqs (409 if it is not connected).
- ``POST /api/reconcile``: run a reconciliation now and answer its report; ``GET /api/reconcile``: the last
  report, the last scheduled run's error, the schedule and the policy.

Each action writes the audit log first (who, what: the ids) and its outcome after (how many, or the error),
as held release/delete do (one function for all: ``api.audited.audited``). Ids that are not in the missing
list make a resend or an acknowledgement a 404 before anything is written: the operator named the wrong
entries and should look again. A reconciliation that cannot reach the collector is a 503 that says so, and
is audited as ``failed``.

This module must never touch the missing list or the outbox except through the relay's ``Reconciler``, and
never act before its audit entry is committed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from logferry.api.audited import DeviceNotConnected, NothingToAsk, ask_device, audited
from logferry.api.auth import operator, token_check
from logferry.api.launch import RelayView
from logferry.api.params import DEFAULT_LIMIT, MAX_LIMIT, MAX_TEXT
from logferry.api.problems import ApiError, ErrorBody, error_responses
from logferry.api.schemas import (
    AckOut,
    AskDevice,
    AskOut,
    MissingIds,
    MissingPage,
    MissingSource,
    MissingSources,
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
_NOT_CONNECTED: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "the collector is not connected, or the store could not answer"}
}


class MissingQuery(BaseModel):
    """The missing-list filter as query parameters."""

    model_config = ConfigDict(extra="forbid")

    state: MissingState | None = Field(None, description="open, resent, acknowledged, resolved or recovered")
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

    @router.post(
        "/api/missing/resend",
        response_model=ResendOut,
        responses=error_responses(403, 404),
        summary="Resend these entries' records to the collector, as far as the relay has them (audited)",
    )
    async def resend(body: MissingIds, who: Annotated[str, Depends(operator)]) -> ResendOut:
        ids = await _known(view, body.ids)
        result, entry = await audited(
            view, who, "missing.resend", {"ids": ids}, lambda: reconciler.resend(ids), lambda r: r.entries
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
        responses=error_responses(403, 404),
        summary="Acknowledge these entries as they are (e.g. lost for good); never reported again (audited)",
    )
    async def acknowledge(body: MissingIds, who: Annotated[str, Depends(operator)]) -> AckOut:
        ids = await _known(view, body.ids)
        changed, entry = await audited(
            view, who, "missing.ack", {"ids": ids}, lambda: reconciler.acknowledge_lost(ids, who), lambda n: n
        )
        return AckOut(action="missing.ack", acknowledged=changed, audit_id=entry)

    @router.get(
        "/api/missing/sources",
        response_model=MissingSources,
        summary="The missing list per source: entries and seqs, per kind",
    )
    async def per_source(
        state: MissingState | None = None, kind: MissingKind | None = None
    ) -> MissingSources:
        return await missing_sources(view, state, kind)

    @router.post(
        "/api/missing/ask",
        response_model=AskOut,
        responses=error_responses(404, 409),
        summary="Ask agents to resend seqs they never delivered: a ResendRequest now (audited)",
    )
    async def ask(body: AskDevice, who: Annotated[str, Depends(operator)]) -> AskOut:
        if body.ids:
            await _known(view, body.ids)
        try:
            asked = await ask_device(view, who, ids=body.ids, source=body.source)
        except NothingToAsk as exc:
            raise ApiError(
                409,
                str(exc),
                "ask names missing_at_device entries that are open or resent (GET /api/missing"
                "?kind=missing_at_device), or a source whose seqs have holes",
            ) from None
        except DeviceNotConnected as exc:
            raise ApiError(
                409,
                f"cannot ask now: {exc}",
                "see GET /api/devices; the device is asked once it reconnects (the relay asks for holes "
                "after each batch by itself) — or retry then",
            ) from None
        return AskOut(action="missing.ask", sources=asked.sources, ranges=asked.ranges, seqs=asked.seqs,
                      audit_id=asked.audit_id)  # fmt: skip

    @router.post(
        "/api/reconcile",
        response_model=ReconcileRun,
        responses={**_NOT_CONNECTED, **error_responses(403)},
        summary="Reconcile with the collector now and answer the report (audited)",
    )
    async def reconcile_now(who: Annotated[str, Depends(operator)]) -> ReconcileRun:
        try:
            report, entry = await audited(
                view, who, "reconcile", {}, reconciler.run_now, lambda r: r.new_entries
            )
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


async def missing_sources(
    view: RelayView, state: MissingState | None, kind: MissingKind | None
) -> MissingSources:
    """``GET /api/missing/sources``, and the console's per-source grouping."""
    grouped: dict[str, MissingSource] = {}
    for t in await view.reconciler.missing.per_source(state=state, kind=kind):
        g = grouped.setdefault(t.source, MissingSource(source=t.source, entries=0, seqs=0, kinds={}))
        g.entries += t.entries
        g.seqs += t.seqs
        g.kinds[t.kind.value] = t.entries
    return MissingSources(items=list(grouped.values()))


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
