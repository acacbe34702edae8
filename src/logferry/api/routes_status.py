"""Health, status and peers of each role: ``/api/health``, ``/api/status``, ``/api/devices``.

Health answers 200 when the role is up and its store answers a read, 503 (same body, ``ok: false``) when
the store does not. Status is a snapshot for people and scripts; every figure comes from the stores or the
live objects, never from a cache that could lie. This module reads only; it must never change a store.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from logferry import __version__
from logferry.api.auth import token_check
from logferry.api.launch import CollectorView, RelayView, RoleView
from logferry.api.params import iso
from logferry.api.problems import error_responses
from logferry.api.rates import Rate, oldest_unacked_outbox_ns
from logferry.api.schemas import (
    CollectorLink,
    CollectorStatus,
    Device,
    Devices,
    FateCount,
    Health,
    Inbox,
    Lag,
    Outbox,
    RateOut,
    Rates,
    RelayStatus,
    SourceCount,
    Totals,
)
from logferry.errors import StoreError
from logferry.model import Fate
from logferry.roles.server import PeerTable
from logferry.store import journal_files
from logferry.store.records import RecordStore


def _peers(table: PeerTable, connected_only: bool) -> list[Device]:
    return [
        Device(
            source=p.source,
            address=p.address,
            connected=p.connected,
            connected_at=iso(p.connected_ns),
            last_seen=iso(p.last_seen_ns),
            batches=p.batches,
            records=p.records,
        )
        for p in table.peers.values()
        if p.connected or not connected_only
    ]


def _uptime(view: RoleView) -> float:
    return round(time.monotonic() - view.started_monotonic, 3)


def health_router(view: RoleView, role: str) -> APIRouter:
    router = APIRouter(tags=["status"])

    @router.get(
        "/api/health",
        response_model=Health,
        responses={503: {"model": Health, "description": "the store does not answer"}},
        summary="Is the role up and its store readable? (no token needed)",
    )
    async def health() -> JSONResponse:
        try:
            await _probe(view)
        except StoreError as exc:
            body = Health(ok=False, role=role, store=str(exc))
            return JSONResponse(body.model_dump(), status_code=503)
        return JSONResponse(Health(ok=True, role=role, store="ok").model_dump())

    return router


async def _probe(view: RoleView) -> None:
    if isinstance(view, RelayView):
        await view.journal.held_count()
    elif isinstance(view, CollectorView):
        await view.store.count()


def rate_out(r: Rate) -> RateOut:
    return RateOut(at=iso(r.at_ns) if r.at_ns else None, at_ns=r.at_ns, records_in=round(r.records_in, 3),
                   bytes_in=round(r.bytes_in, 3), records_out=round(r.records_out, 3),
                   bytes_out=round(r.bytes_out, 3))  # fmt: skip


async def relay_lag(view: RelayView, outbox_records: int) -> Lag:
    """The age of the oldest outbox batch the collector has not acknowledged (0 when drained)."""
    oldest = await view.journal.read_with(oldest_unacked_outbox_ns)
    age = 0.0 if oldest is None else max(0.0, (time.time_ns() - oldest) / 1e9)
    return Lag(oldest_unacked_at=None if oldest is None else iso(oldest), oldest_unacked_ns=oldest,
               lag_s=round(age, 3), records=outbox_records)  # fmt: skip


async def relay_rates(view: RelayView, seconds: float | None = None) -> Rates:
    """Rates now and over the last ``seconds``, the totals, and the lag: ``GET /api/rates``, the Overview."""
    history = view.rate_history()
    stats = await view.journal.stats()
    t = view.throughput
    return Rates(
        interval_s=history.interval_s,
        latest=rate_out(history.latest()),
        totals=Totals(
            records_in=t.records_in, bytes_in=t.bytes_in, records_out=t.records_out, bytes_out=t.bytes_out
        ),
        lag=await relay_lag(view, stats.outbox_unacked_records),
        history=[rate_out(r) for r in history.history(seconds)],
    )


def relay_status_router(view: RelayView) -> APIRouter:
    router = APIRouter(
        tags=["status"], dependencies=[Depends(token_check(view.token))], responses=error_responses(401, 503)
    )

    @router.get("/api/status", response_model=RelayStatus, summary="The relay at a glance")
    async def status() -> RelayStatus:
        stats = await view.journal.stats()
        held_files = await view.journal.read_with(journal_files.count_held)
        counters = await view.journal.counters()
        totals: dict[str, int] = {}
        fates = []
        for (source, fate, rule), n in sorted(
            counters.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])
        ):
            fates.append(FateCount(source=source, fate=fate.name.lower(), rule=rule, count=n))
            totals[fate.name.lower()] = totals.get(fate.name.lower(), 0) + n
        link = view.sender.status
        return RelayStatus(
            role="relay",
            name=view.name,
            version=__version__,
            uptime_s=_uptime(view),
            listen=view.listen,
            collector=CollectorLink(
                address=view.sender.target,
                connected=link.connected,
                sessions=link.sessions,
                last_error=link.last_error,
                batches_sent=link.batches_sent,
                batches_acked=link.batches_acked,
                in_flight=link.in_flight,
            ),
            devices_connected=view.peers.connected,
            acked_through=stats.acked_through,
            fates=fates,
            fate_totals={f.name.lower(): totals.get(f.name.lower(), 0) for f in Fate},
            held=stats.held + held_files,
            held_records=stats.held,
            held_files=held_files,
            outbox=Outbox(
                batches=stats.outbox_unacked_batches,
                records=stats.outbox_unacked_records,
                bytes=stats.outbox_unacked_bytes,
            ),
            rates=rate_out(view.rate_history().latest()),
            lag=await relay_lag(view, stats.outbox_unacked_records),
        )

    @router.get("/api/rates", response_model=Rates, summary="Records/s and bytes/s in and out, lag, history")
    async def rates(
        seconds: Annotated[
            float, Query(gt=0, le=86_400, description="history to include, in seconds (kept: 10 minutes)")
        ] = 600,
    ) -> Rates:
        return await relay_rates(view, seconds)

    @router.get(
        "/api/devices",
        response_model=Devices,
        summary="Devices (agents) connected now, or also recently disconnected ones",
    )
    async def devices(all: bool = False) -> Devices:
        return Devices(items=_peers(view.peers, connected_only=not all))

    return router


async def _source_counts(store: RecordStore) -> list[tuple[str, int, int]]:
    """(source, records stored, highest seq) per source."""
    return [(s.source, s.count, s.max_seq) for s in await store.source_counts()]


def collector_status_router(view: CollectorView) -> APIRouter:
    router = APIRouter(
        tags=["status"], dependencies=[Depends(token_check(view.token))], responses=error_responses(401, 503)
    )

    @router.get("/api/status", response_model=CollectorStatus, summary="The collector at a glance")
    async def status() -> CollectorStatus:
        stats = await view.store.stats()
        sources = await _source_counts(view.store)
        return CollectorStatus(
            role="collector",
            name=view.name,
            version=__version__,
            uptime_s=_uptime(view),
            listen=view.listen,
            records=stats.records,
            inbox=Inbox(records=view.store.inbox_records, bytes=view.store.inbox_bytes),
            sources=[SourceCount(source=s, count=n, max_seq=m) for s, n, m in sources],
            conflicts=stats.conflicts,
            fts_pending=stats.fts_pending,
            relays_connected=_peers(view.peers, connected_only=True),
        )

    return router
