"""The collector's log analysis: message templates, new templates, error rates per source, alerts and the
miner's progress — what the console's Analysis page shows, as ``GET /api/analysis/…``.

Everything comes from ``analysis.db`` (``logferry.analysis``), which trails the record store: ``status``
says how many stored records are not mined yet. With ``analysis_enabled = false`` every route answers 503.
This module reads only; it must never change a store.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from logferry.analysis import queries as aq
from logferry.analysis.alerts import AlertKind
from logferry.analysis.follower import Follower
from logferry.api.auth import token_check
from logferry.api.launch import CollectorView
from logferry.api.params import DEFAULT_LIMIT, MAX_LIMIT, MAX_TEXT, NS, iso, parse_time_ns
from logferry.api.problems import ApiError, error_responses

MAX_OFFSET = 2**62
DAY_NS = 86_400 * NS


class TemplateOut(BaseModel):
    id: int
    template: str
    count: int = Field(description="records in the range asked (all time without one)")
    share: float = Field(description="count / records mined in that range")
    first_seen: str
    first_seen_ns: int
    last_seen: str
    last_seen_ns: int
    trend: list[int] = Field(description="records per hour, the 24 hours up to the range's end")


class TemplatePageOut(BaseModel):
    items: list[TemplateOut]
    total: int
    records: int = Field(description="records mined in the range")
    trend_start: str
    limit: int
    offset: int


class RatePointOut(BaseModel):
    start: str
    start_ns: int
    total: int
    errors: int
    rate: float


class RateSeriesOut(BaseModel):
    source: str
    step_s: int
    points: list[RatePointOut]


class ErrorRatesOut(BaseModel):
    since: str
    until: str
    items: list[RateSeriesOut]


class AlertOut(BaseModel):
    id: int
    at: str
    at_ns: int
    kind: str = Field(description="new_template or error_rate")
    source: str
    template: int
    window: str = Field(description="the window's start (a new template: the hour of its first record)")
    window_ns: int
    value: float
    baseline: float
    detail: str


class AlertPageOut(BaseModel):
    items: list[AlertOut]
    total: int
    limit: int
    offset: int


class AnalysisStatusOut(BaseModel):
    cursor: int = Field(description="the last stored record (rowid) mined")
    mined: int
    lag: int = Field(description="stored records not mined yet")
    templates: int
    alerts: dict[str, int]
    mined_since_start: int
    mining_s_since_start: float


def template_out(t: aq.TemplateRow) -> TemplateOut:
    return TemplateOut(
        id=t.id, template=t.template, count=t.count, share=round(t.share, 6), first_seen=iso(t.first_ns),
        first_seen_ns=t.first_ns, last_seen=iso(t.last_ns), last_seen_ns=t.last_ns, trend=t.trend,
    )  # fmt: skip


def alert_out(a: aq.AlertRow) -> AlertOut:
    return AlertOut(
        id=a.id, at=iso(a.at_ns), at_ns=a.at_ns, kind=a.kind.value, source=a.source, template=a.template,
        window=iso(a.window_s * NS), window_ns=a.window_s * NS, value=round(a.value, 6),
        baseline=round(a.baseline, 6), detail=a.detail,
    )  # fmt: skip


def _follower(view: CollectorView) -> Follower:
    if view.analysis is None:
        raise ApiError(503, "analysis is off on this collector", "set analysis_enabled = true and restart")
    return view.analysis


Since = Annotated[str | None, Query(max_length=64, description="ISO 8601 or epoch s, inclusive")]
Until = Annotated[str | None, Query(max_length=64, description="ISO 8601 or epoch s, exclusive")]


def analysis_router(view: CollectorView) -> APIRouter:
    router = APIRouter(
        prefix="/api/analysis",
        tags=["analysis"],
        dependencies=[Depends(token_check(view.token))],
        responses=error_responses(400, 401, 503),
    )

    @router.get("/status", response_model=AnalysisStatusOut, summary="How far the miner is")
    async def status() -> AnalysisStatusOut:
        f = _follower(view)
        s = await f.store.read_with(aq.status)
        return AnalysisStatusOut(cursor=s.cursor, mined=s.mined, lag=await f.lag(), templates=s.templates,
                                 alerts=s.alerts, mined_since_start=f.mined_total,
                                 mining_s_since_start=round(f.mine_s_total, 3))  # fmt: skip

    @router.get("/templates", response_model=TemplatePageOut, summary="Message templates, most records first")
    async def templates(
        since: Since = None,
        until: Until = None,
        q: Annotated[str, Query(max_length=MAX_TEXT, description="substring of the template")] = "",
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> TemplatePageOut:
        f = _follower(view)
        lo, hi = parse_time_ns(since, "since"), parse_time_ns(until, "until")
        page = await f.store.read_with(lambda c: aq.templates(c, lo, hi, q, limit, offset))
        return TemplatePageOut(items=[template_out(t) for t in page.items], total=page.total,
                               records=page.records, trend_start=iso(page.trend_start_s * NS), limit=limit,
                               offset=offset)  # fmt: skip

    @router.get("/templates/new", response_model=list[TemplateOut],
                summary="Templates whose first record is at or after `since`, newest first")  # fmt: skip
    async def new_templates(
        since: Annotated[str, Query(max_length=64, description="ISO 8601 or epoch s")],
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    ) -> list[TemplateOut]:
        f = _follower(view)
        lo = parse_time_ns(since, "since") or 0
        return [template_out(t) for t in await f.store.read_with(lambda c: aq.new_templates(c, lo, limit))]

    @router.get(
        "/error-rates",
        response_model=ErrorRatesOut,
        summary="Records and errors per source over time (default: the day to the newest record)",
    )
    async def error_rates(
        since: Since = None, until: Until = None,
        source: Annotated[str | None, Query(max_length=MAX_TEXT)] = None,
    ) -> ErrorRatesOut:  # fmt: skip
        f = _follower(view)
        lo, hi = parse_time_ns(since, "since"), parse_time_ns(until, "until")
        if hi is None:
            newest = await f.store.read_with(aq.newest_record_ns)
            hi = (newest or 0) + 1
        lo = hi - DAY_NS if lo is None else lo
        if hi <= lo:
            raise ApiError(400, "until must be later than since", "swap them, or leave one out")
        width = f.settings.window_s
        series = await f.store.read_with(lambda c: aq.error_rates(c, lo, hi, width, source or None))
        return ErrorRatesOut(since=iso(lo), until=iso(hi), items=[
            RateSeriesOut(source=s.source, step_s=s.step_s, points=[
                RatePointOut(start=iso(p.start_s * NS), start_ns=p.start_s * NS, total=p.total,
                             errors=p.errors, rate=round(p.errors / p.total, 6) if p.total else 0.0)
                for p in s.points])
            for s in series])  # fmt: skip

    @router.get("/alerts", response_model=AlertPageOut, summary="Alerts, newest first")
    async def alerts(
        kind: Annotated[AlertKind | None, Query(description="new_template or error_rate")] = None,
        source: Annotated[str | None, Query(max_length=MAX_TEXT)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> AlertPageOut:
        f = _follower(view)
        rows, total = await f.store.read_with(lambda c: aq.alerts(c, kind, source or None, limit, offset))
        return AlertPageOut(items=[alert_out(a) for a in rows], total=total, limit=limit, offset=offset)

    return router
