"""Prometheus metrics at ``/metrics``, from a per-process registry filled at scrape time.

Nothing is counted twice: each scrape reads the figures the stores and live objects already keep (journal
counters, outbox and inbox backlog, peer tables, refused connections) into a fresh snapshot, and the
registry's one collector turns that snapshot into metric families. A registry per app (never prometheus's
global one) keeps two roles in one test process, or a library user's metrics, apart.

This module reads only; it must never change a store or keep figures of its own that could drift.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from logferry.analysis import queries as analysis_queries
from logferry.analysis.follower import Follower
from logferry.api.auth import token_check
from logferry.api.launch import CollectorView, RelayView, RoleView
from logferry.api.problems import error_responses
from logferry.api.rates import oldest_unacked_outbox_ns
from logferry.model import Fate
from logferry.store import journal_files
from logferry.store.missing import MissingKind, MissingState
from logferry.transport.file_sender import FileSender


@dataclass
class Sample:
    name: str
    help: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)
    counter: bool = False


class SnapshotCollector(Collector):
    """Yields the samples of the latest snapshot, grouped into families by name."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for s in self.samples:
            family = families.get(s.name)
            if family is None:
                kind = CounterMetricFamily if s.counter else GaugeMetricFamily
                family = kind(s.name, s.help, labels=sorted(s.labels))
                families[s.name] = family
            family.add_metric([s.labels[k] for k in sorted(s.labels)], s.value)
        yield from families.values()


def _common(view: RoleView, role: str) -> list[Sample]:
    out = [
        Sample(
            f"logferry_{role}_connected_peers", "peers connected on the logferry/1 port", view.peers.connected
        ),
        Sample(
            f"logferry_{role}_batches_received",
            "batches received since start",
            view.peers.total_batches,
            counter=True,
        ),
        Sample(
            f"logferry_{role}_records_received",
            "records received since start",
            view.peers.total_records,
            counter=True,
        ),
        Sample(
            f"logferry_{role}_connections_accepted",
            "connections accepted since start",
            view.counters.accepted,
            counter=True,
        ),
    ]
    out += _file_samples(view, role)
    for code, n in sorted(view.counters.refused.items()):
        out.append(
            Sample(
                f"logferry_{role}_connections_refused",
                "connections refused, by error code",
                n,
                {"code": code},
                counter=True,
            )
        )
    return out


def _file_samples(view: RoleView, role: str) -> list[Sample]:
    """Whole files received on the logferry/1 port (docs/PROTOCOL.md §13)."""
    if view.intake is None:
        return []
    st = view.intake.stats
    return [
        Sample(f"logferry_{role}_files_stored", "files received, verified and journaled since start",
               st.files, counter=True),
        Sample(f"logferry_{role}_files_whole", "files stored that came in one frame or a bundle",
               st.whole, counter=True),
        Sample(f"logferry_{role}_files_already_held", "offered files acknowledged at once (held already)",
               st.already_held, counter=True),
        Sample(f"logferry_{role}_file_bytes_received", "file content bytes received (chunks, whole files)",
               st.bytes_received + st.whole_bytes, counter=True),
        Sample(f"logferry_{role}_file_bytes_resumed", "bytes a resumed transfer did not need again",
               st.bytes_resumed, counter=True),
    ]  # fmt: skip


def _file_sender_samples(sender: FileSender) -> list[Sample]:
    """Whole files on their way to the collector."""
    st = sender.file_stats
    return [
        Sample("logferry_relay_files_forwarded", "files the collector acknowledged since start", st.files,
               counter=True),
        Sample("logferry_relay_file_bundles_sent", "FileBundle frames sent (small files)", st.bundles,
               counter=True),
        Sample("logferry_relay_file_bytes_sent", "file content bytes sent to the collector", st.bytes_sent,
               counter=True),
        Sample("logferry_relay_file_bytes_resent", "file bytes sent again after a cut", st.bytes_resent,
               counter=True),
        Sample("logferry_relay_files_cut_through", "files forwarded while they still arrived", st.cut_through,
               counter=True),
    ]  # fmt: skip


async def relay_samples(view: RelayView) -> list[Sample]:
    out = _common(view, "relay")
    stats = await view.journal.stats()
    totals = {f: 0 for f in Fate}
    for (_source, fate, _rule), n in (await view.journal.counters()).items():
        totals[fate] += n
    for fate, n in totals.items():
        out.append(
            Sample(
                "logferry_relay_records", "records journaled, by current fate", n, {"fate": fate.name.lower()}
            )
        )
    out += [
        Sample("logferry_relay_held_records", "records in the held store", stats.held),
        Sample("logferry_relay_outbox_batches", "outbox batches not yet acked", stats.outbox_unacked_batches),
        Sample("logferry_relay_outbox_records", "outbox records not yet acked", stats.outbox_unacked_records),
        Sample("logferry_relay_outbox_bytes", "outbox bytes not yet acked", stats.outbox_unacked_bytes),
        Sample(
            "logferry_relay_collector_connected",
            "1 while a session with the collector is open",
            1 if view.sender.status.connected else 0,
        ),
    ]
    t = view.throughput
    out += [
        Sample("logferry_relay_input_records", "records received from agents, syslog and line since start",
               t.records_in, counter=True),
        Sample("logferry_relay_input_bytes", "bytes received from agents, syslog and line since start",
               t.bytes_in, counter=True),
        Sample("logferry_relay_forwarded_records", "records the collector acknowledged since start",
               t.records_out, counter=True),
        Sample("logferry_relay_forwarded_bytes", "outbox bytes the collector acknowledged since start",
               t.bytes_out, counter=True),
    ]  # fmt: skip
    if view.file_sender is not None:
        out += _file_sender_samples(view.file_sender)
        waiting = await view.journal.read_with(journal_files.outbox_count)
        out.append(
            Sample("logferry_relay_file_outbox_files", "files the collector has not acknowledged", waiting)
        )
    oldest = await view.journal.read_with(oldest_unacked_outbox_ns)
    lag_s = 0.0 if oldest is None else max(0.0, (time.time_ns() - oldest) / 1e9)
    lag_help = "age of the oldest outbox batch the collector has not acknowledged"
    out.append(Sample("logferry_relay_collector_lag_seconds", lag_help, lag_s))
    # Seqs an agent resent after all (on "ask the device" or a restored spool); no agents' port: none.
    recovered = 0 if view.gaps is None else view.gaps.recovered
    recovered_help = "missing_at_device seqs closed as recovered (the agent resent them) since start"
    out.append(Sample("logferry_relay_missing_recovered_seqs", recovered_help, recovered, counter=True))
    missing = view.reconciler.missing
    for state in (MissingState.OPEN, MissingState.RESENT):  # live entries: settled ones are history
        for kind in MissingKind:
            n = await missing.count(state=state, kind=kind)
            labels = {"kind": kind.value, "state": state.value}
            out.append(Sample("logferry_relay_missing_entries", "live missing-list entries", n, labels))
    last = view.reconciler.last_report
    if last is not None:
        out += [
            Sample("logferry_relay_reconcile_last_clean", "1 if the last reconciliation found no difference",
                   1 if last.clean else 0),
            Sample("logferry_relay_reconcile_last_timestamp_seconds", "when the last reconciliation started",
                   last.started_ns / 1e9),
        ]  # fmt: skip
    return out


async def collector_samples(view: CollectorView) -> list[Sample]:
    out = _common(view, "collector")
    stats = await view.store.stats()
    out += [
        Sample("logferry_collector_stored_records", "records stored", stats.records),
        Sample("logferry_collector_sources", "sources with stored records", stats.sources),
        Sample(
            "logferry_collector_conflicts", "records that reused an id with another digest", stats.conflicts
        ),
        Sample("logferry_collector_fts_pending", "stored records not yet searchable", stats.fts_pending),
        Sample(
            "logferry_collector_inbox_records",
            "received records not yet stored as rows",
            view.store.inbox_records,
        ),
        Sample(
            "logferry_collector_inbox_bytes", "received bytes not yet stored as rows", view.store.inbox_bytes
        ),
    ]
    if view.analysis is not None:
        out += await analysis_samples(view.analysis)
    return out


async def analysis_samples(follower: Follower) -> list[Sample]:
    """Analysis (analysis/): alerts by kind as stored (they are never deleted), templates, progress."""
    status = await follower.store.read_with(analysis_queries.status)
    out = [
        Sample("logferry_collector_analysis_alerts", "analysis alerts raised, by kind", n, {"kind": kind},
               counter=True)
        for kind, n in sorted(status.alerts.items())
    ]  # fmt: skip
    out += [
        Sample("logferry_collector_analysis_templates", "message templates mined", status.templates),
        Sample("logferry_collector_analysis_mined_records", "records mined since start", follower.mined_total,
               counter=True),
        Sample("logferry_collector_analysis_lag_records", "stored records not mined yet",
               await follower.lag()),
        Sample("logferry_collector_analysis_pruned_rows",
               "analysis rows (hourly counts, error-rate windows, alerts) deleted by retention since start",
               follower.pruned_total, counter=True),
    ]  # fmt: skip
    return out


def metrics_router(view: RoleView, snapshot: Callable[[], Awaitable[list[Sample]]]) -> APIRouter:
    registry = CollectorRegistry(auto_describe=False)
    collector = SnapshotCollector()
    registry.register(collector)
    router = APIRouter(
        tags=["metrics"], dependencies=[Depends(token_check(view.token))], responses=error_responses(401, 503)
    )

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
        summary="Prometheus metrics",
    )
    async def metrics() -> Response:
        collector.samples = await snapshot()
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
