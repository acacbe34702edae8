"""The API's request and response models. They are the OpenAPI spec: a field added here is documented.

Times are given twice: ISO 8601 UTC for people (``ts``) and epoch nanoseconds for scripts (``ts_ns``).
Levels are names (``warning``) with the number beside them. Digests are hex.
This module only declares shapes; it must never read a store.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from logferry.api.params import MAX_TEXT, HeldQuery, iso, level_name
from logferry.model import Record
from logferry.reconcile.relay_side import ReconcileReport
from logferry.store.audit import AuditEntry
from logferry.store.journal_files import FileItem
from logferry.store.journal_held import HeldRecord
from logferry.store.missing import MissingEntry, MissingKind, MissingState
from logferry.store.records import StoredRecord

MAX_KEYS = 1000  # keys per release/delete request; more at once: use a filter


class Health(BaseModel):
    ok: bool
    role: str
    store: str = Field(description='"ok", or why the store cannot be read')


class RecordOut(BaseModel):
    source: str
    seq: int
    ts: str
    ts_ns: int
    level: str
    level_num: int
    host: str
    path: str
    msg: str
    fields: dict[str, str]
    digest: str


def record_out(source: str, r: Record) -> RecordOut:
    return RecordOut(
        source=source,
        seq=r.seq,
        ts=iso(r.ts_ns),
        ts_ns=r.ts_ns,
        level=level_name(r.level),
        level_num=r.level,
        host=r.host,
        path=r.path,
        msg=r.msg,
        fields=dict(r.fields),
        digest=r.digest.hex(),
    )


class HeldOut(BaseModel):
    """A held record or a held whole file (``kind``); record-only fields are null for a file."""

    kind: Literal["record", "file"] = Field(description="record, or file (a whole file held by a rule)")
    source: str
    seq: int
    ts: str = Field(description="the record's time; a file's mtime")
    ts_ns: int
    level: str | None = Field(description="records only")
    level_num: int | None = Field(description="records only")
    host: str | None = Field(description="records only")
    path: str = Field(description="the record's path field, or the file's path on the device")
    msg: str | None = Field(description="records only")
    fields: dict[str, str] | None = Field(description="records only")
    digest: str = Field(description="the record's digest, or the file's sha256 (hex)")
    size: int | None = Field(description="files only: bytes")
    rule: str
    held_at: str
    held_ns: int


def held_out(h: HeldRecord | FileItem) -> HeldOut:
    if isinstance(h, FileItem):
        return HeldOut(
            kind="file", source=h.source, seq=h.seq, ts=iso(h.mtime_ns), ts_ns=h.mtime_ns, level=None,
            level_num=None, host=None, path=h.path, msg=None, fields=None, digest=h.sha256.hex(), size=h.size,
            rule=h.rule, held_at=iso(h.received_ns), held_ns=h.received_ns,
        )  # fmt: skip
    base = record_out(h.source, h.record).model_dump()
    return HeldOut(kind="record", **base, size=None, rule=h.rule, held_at=iso(h.held_ns), held_ns=h.held_ns)


class HeldPage(BaseModel):
    items: list[HeldOut]
    total: int = Field(description="items matching the filter, all pages together")
    limit: int
    offset: int


class Key(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=MAX_TEXT)
    seq: int = Field(ge=1, le=2**63 - 1)


class HeldAction(BaseModel):
    """Exactly one of ``keys`` (these items) or ``filter`` (every held item matching it; {} means all)."""

    model_config = ConfigDict(extra="forbid")

    keys: list[Key] | None = Field(None, min_length=1, max_length=MAX_KEYS)
    filter: HeldQuery | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> HeldAction:
        if (self.keys is None) == (self.filter is None):
            raise ValueError('give exactly one of "keys" (a list of {source, seq}) or "filter" (an object)')
        return self


class ActionResult(BaseModel):
    action: str
    count: int = Field(description="items released or deleted")
    audit_id: int


class Device(BaseModel):
    source: str
    address: str
    connected: bool
    connected_at: str
    last_seen: str
    batches: int
    records: int


class Devices(BaseModel):
    items: list[Device]


class FateCount(BaseModel):
    source: str
    fate: str
    rule: str
    count: int


class Outbox(BaseModel):
    batches: int
    records: int
    bytes: int


class CollectorLink(BaseModel):
    address: str
    connected: bool
    sessions: int
    last_error: str
    batches_sent: int
    batches_acked: int
    in_flight: int


class RateOut(BaseModel):
    """Per-second rates over one sampling interval: in = from agents, syslog and line; out = acked by the
    collector. Bytes in are batch bodies (agents) and message sizes (syslog, line); bytes out are bodies."""

    at: str | None = Field(description="end of the interval (null before the second sample)")
    at_ns: int
    records_in: float
    bytes_in: float
    records_out: float
    bytes_out: float


class Lag(BaseModel):
    """How far the collector trails: the oldest outbox batch it has not acknowledged yet."""

    oldest_unacked_at: str | None = Field(description="when that batch entered the outbox; null when none")
    oldest_unacked_ns: int | None
    lag_s: float = Field(description="its age in seconds; 0 when the outbox is drained")
    records: int = Field(description="records not yet acknowledged")


class Totals(BaseModel):
    """Running totals since the relay started."""

    records_in: int
    bytes_in: int
    records_out: int
    bytes_out: int


class Rates(BaseModel):
    interval_s: float = Field(description="seconds between samples")
    latest: RateOut
    totals: Totals
    lag: Lag
    history: list[RateOut] = Field(description="oldest first, at most the last 10 minutes")


class RelayStatus(BaseModel):
    role: str
    name: str
    version: str
    uptime_s: float
    listen: dict[str, str]
    collector: CollectorLink
    devices_connected: int
    acked_through: dict[str, int]
    fates: list[FateCount]
    fate_totals: dict[str, int]
    held: int = Field(description="held items: records and whole files")
    held_records: int = Field(description="held records")
    held_files: int = Field(description="held whole files")
    outbox: Outbox
    rates: RateOut
    lag: Lag


class AuditOut(BaseModel):
    id: int
    at: str
    at_ns: int
    operator: str
    action: str
    target: dict[str, Any]
    state: str = Field(description="started (outcome unknown: the process stopped meanwhile), done, failed")
    count: int | None
    detail: str
    finished_at: str | None


def audit_out(e: AuditEntry) -> AuditOut:
    return AuditOut(
        id=e.id,
        at=iso(e.at_ns),
        at_ns=e.at_ns,
        operator=e.operator,
        action=e.action,
        target=e.target,
        state=e.state.value,
        count=e.count,
        detail=e.detail,
        finished_at=None if e.finished_ns is None else iso(e.finished_ns),
    )


class AuditPage(BaseModel):
    items: list[AuditOut]
    total: int
    limit: int
    offset: int


class StoredOut(RecordOut):
    relay: str
    received_at: str


def stored_out(s: StoredRecord) -> StoredOut:
    base = record_out(s.source, s.record).model_dump()
    return StoredOut(**base, relay=s.relay, received_at=iso(s.received_ns))


class RecordPage(BaseModel):
    items: list[StoredOut]
    limit: int
    offset: int
    fts_pending: int = Field(description="stored records not yet searchable by q (indexing trails storage)")


class SourceCount(BaseModel):
    source: str
    count: int
    max_seq: int


class Inbox(BaseModel):
    records: int
    bytes: int


class CollectorStatus(BaseModel):
    role: str
    name: str
    version: str
    uptime_s: float
    listen: dict[str, str]
    records: int
    inbox: Inbox
    sources: list[SourceCount]
    conflicts: int
    fts_pending: int
    relays_connected: list[Device]


class Conflicts(BaseModel):
    items: list[StoredOut]


class MissingOut(BaseModel):
    id: int
    source: str
    item: str = Field(description="record or file")
    first_seq: int
    last_seq: int
    count: int = Field(description="seqs in the range")
    kind: MissingKind
    state: MissingState
    found_at: str
    found_ns: int
    seen_at: str = Field(description="the last reconciliation that still found it")
    seen_ns: int
    resent_at: str | None
    resent_ns: int | None
    resends: int
    acknowledged_by: str | None
    acknowledged_at: str | None
    acknowledged_ns: int | None
    resolved_at: str | None  # resolved: reconciliation found it settled; recovered: the device sent it
    resolved_ns: int | None


def _iso_or_none(ns: int | None) -> str | None:
    return None if ns is None else iso(ns)


def missing_out(e: MissingEntry) -> MissingOut:
    return MissingOut(
        id=e.id,
        source=e.source,
        item=e.item.name.lower(),
        first_seq=e.first_seq,
        last_seq=e.last_seq,
        count=e.count,
        kind=e.kind,
        state=e.state,
        found_at=iso(e.found_ns),
        found_ns=e.found_ns,
        seen_at=iso(e.seen_ns),
        seen_ns=e.seen_ns,
        resent_at=_iso_or_none(e.resent_ns),
        resent_ns=e.resent_ns,
        resends=e.resends,
        acknowledged_by=e.acknowledged_by,
        acknowledged_at=_iso_or_none(e.acknowledged_ns),
        acknowledged_ns=e.acknowledged_ns,
        resolved_at=_iso_or_none(e.resolved_ns),
        resolved_ns=e.resolved_ns,
    )


class MissingPage(BaseModel):
    items: list[MissingOut]
    total: int = Field(description="entries matching the filter, all pages together")
    limit: int
    offset: int


class MissingSource(BaseModel):
    """One source's share of the missing list: entries and seqs, in all and per kind."""

    source: str
    entries: int
    seqs: int
    kinds: dict[str, int] = Field(description="entries per kind")


class MissingSources(BaseModel):
    items: list[MissingSource]


class MissingIds(BaseModel):
    """The missing entries an action is about, by id (as listed by GET /api/missing)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(min_length=1, max_length=MAX_KEYS)


class AskDevice(BaseModel):
    """Ask agents again for seqs: the ``missing_at_device`` entries named by id, and/or every hole of one
    source past its contiguous prefix. At least one of the two."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(default_factory=list, max_length=MAX_KEYS)
    source: str | None = Field(None, min_length=1, max_length=1000, description="an agent's source name")

    @model_validator(mode="after")
    def _something_to_ask(self) -> AskDevice:
        if not self.ids and not self.source:
            raise ValueError("give ids of missing_at_device entries, or a source, or both")
        return self


class AskOut(BaseModel):
    action: str
    sources: list[str]
    ranges: dict[str, list[tuple[int, int]]] = Field(description="per source: the seq ranges asked for")
    seqs: int = Field(description="how many seqs were asked for")
    audit_id: int


class ResendOut(BaseModel):
    action: str
    entries: int = Field(description="entries whose records went back into the outbox")
    records: int = Field(description="records put back into the outbox")
    files: int = Field(0, description="whole files put back into the file outbox")
    skipped: list[int] = Field(
        description="ids not resent: lost, missing at the device, already settled, or no longer kept"
    )
    audit_id: int


class AckOut(BaseModel):
    action: str
    acknowledged: int = Field(description="entries acknowledged now (already settled ones do not count)")
    audit_id: int


class ReconcileOut(BaseModel):
    started_at: str
    started_ns: int
    duration_s: float
    sources: int
    questions: int = Field(description="queries sent to the collector")
    leaves: int = Field(description="buckets listed item by item")
    bytes_sent: int
    bytes_received: int
    clean: bool = Field(description="true: relay and collector agree on every source")
    new_entries: int = Field(description="entries added to the missing list by this run")
    resent_entries: int = Field(description="entries resent at once (resend_policy auto)")


def reconcile_out(r: ReconcileReport) -> ReconcileOut:
    return ReconcileOut(
        started_at=iso(r.started_ns),
        started_ns=r.started_ns,
        duration_s=r.duration_s,
        sources=r.sources,
        questions=r.questions,
        leaves=r.leaves,
        bytes_sent=r.bytes_sent,
        bytes_received=r.bytes_received,
        clean=r.clean,
        new_entries=r.new_entries,
        resent_entries=r.resent_entries,
    )


class ReconcileRun(ReconcileOut):
    audit_id: int


class ReconcileState(BaseModel):
    last_report: ReconcileOut | None = Field(description="the last successful run since the relay started")
    last_error: str = Field(description="why the last scheduled run failed; empty after a success")
    interval_s: float = Field(description="seconds between scheduled runs; 0: only on demand")
    resend_policy: str = Field(description="auto: resend at once; confirm: list for an operator")
    collector_connected: bool
