"""The relay (Server1): receives from agents, gives every record its fate by the rules, journals it, and
forwards what may leave the site to the collector.

Per batch, in one journal transaction: every seq gets exactly one fate (forwarded, redacted, held, dropped),
held records go to the held store, forwarded ones to the outbox; only then is the agent acknowledged. The
outbox drains to the collector through the credit window; while the collector is down the backlog waits on
disk. With no rules at all the relay keeps each batch's body as it came (no re-encoding), after checking
that it decodes and that its seqs are contiguous.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec

from logferry.api.launch import RelayView, RunningApi, api_token, start_api
from logferry.api.rates import RateHistory, Throughput
from logferry.config import RelayConfig, device_tokens, parse_address, read_token
from logferry.config.schema import ResendPolicy
from logferry.inputs.line import LineInput
from logferry.inputs.syslog import JournalFeed, SyslogInput
from logferry.lifecycle import StopSignal, announce_ready
from logferry.log_repeats import Repeats
from logferry.model import Codec, decode_body
from logferry.pipeline.rules import RuleSet
from logferry.protocol.connection import Authenticated
from logferry.protocol.messages import (
    Ack,
    Batch,
    Code,
    PeerRole,
)
from logferry.reconcile.gaps import AgentGaps
from logferry.reconcile.relay_side import Reconciler
from logferry.reconcile.summary import BucketTally
from logferry.roles.relay_files import RelayFileOutbox, file_intake
from logferry.roles.server import (
    FileIntakeSink,
    LogferryListener,
    PeerTable,
    server_limits,
    store_durability,
)
from logferry.store.audit import AuditLog
from logferry.store.content import ContentStore
from logferry.store.file_intake import FileIntake
from logferry.store.file_retention import FileRetention
from logferry.store.journal import Journal
from logferry.store.missing import MissingStore
from logferry.tls import collector_tls, listener_tls, syslog_tls
from logferry.transport.file_sender import WHOLE_MAX_BYTES, FileSender
from logferry.transport.sender import Outgoing, Sender, SenderConfig
from logferry.transport.serve import BatchRefused

log = logging.getLogger("logferry.relay")

MAX_BODY_BYTES = 256 << 20


class RelaySink(FileIntakeSink):
    """Journals agents' batches with their fates (and whole files, through ``FileIntakeSink``)."""

    role = "relay"

    def __init__(self, journal: Journal, rules: RuleSet, on_outbox: Callable[[], None]) -> None:
        self.journal = journal
        self.rules = rules
        self.on_outbox = on_outbox
        self.devices: dict[str, str] = {}  # address -> source
        self._refused: dict[str, Repeats] = {}  # source -> why another spool for it was refused
        self.peers = PeerTable()  # per source: address, last seen, batches and records (for the API)
        self.gaps: AgentGaps | None = None  # holes in agents' seqs: asked for again (reconcile.gaps)
        self.files: FileIntake | None = None  # whole files from agents (roles/relay_files.py)
        self.throughput = Throughput()  # records and bytes in (here and in the inputs) and out (acks)

    async def opened(self, peer: Authenticated, address: str) -> int:
        if peer.role is not PeerRole.AGENT:
            raise BatchRefused(Code.PROTOCOL, "only agents connect to a relay's logferry/1 port", False)
        if peer.spool and (other := await self.journal.bind_spool(peer.source, peer.spool)) is not None:
            # Said once, then as a reminder: the refused agent keeps trying with its back-off.
            self._refused.setdefault(peer.source, Repeats(log)).say(logging.ERROR, (
                f"refused device {peer.source} from {address.rpartition(':')[0]}: its spool {peer.spool} is "
                f"not spool {other}, which numbered this source's items so far (a second device with the "
                "same source name, or this device's spool was reset): its seqs would repeat ones held here; "
                "give that device a source name of its own"))  # fmt: skip
            raise BatchRefused(
                Code.SOURCE_MISMATCH,
                f"source {peer.source!r} is numbered by another spool ({other}) at this relay, not this one "
                f"({peer.spool}): give this device a source name of its own",
                retry=True,
            )
        self.devices[address] = peer.source
        self.peers.opened(peer.source, address)
        log.info("device %s connected from %s", peer.source, address)
        return self.journal.acked_through(peer.source)

    async def commit(self, peer: Authenticated, batch: Batch) -> list[tuple[int, int]]:
        try:
            records = decode_body(batch.body, batch.codec, MAX_BODY_BYTES)
        except (ValueError, msgspec.DecodeError) as exc:
            raise BatchRefused(Code.MALFORMED, f"batch body cannot be decoded: {exc}", retry=False) from exc
        if len(records) != batch.count or not records:
            raise BatchRefused(
                Code.MALFORMED, f"batch says {batch.count} records but holds {len(records)}", retry=False
            )
        self.peers.received(batch.source, len(records))
        self.throughput.came_in(len(records), len(batch.body))
        first, last = records[0].seq, records[-1].seq
        if self.rules.is_trivial and last - first + 1 == len(records) and first >= 1:
            contiguous = all(r.seq == first + i for i, r in enumerate(records))
            tally = BucketTally().add_all((r.seq, r.digest) for r in records)
            if contiguous and await self.journal.commit_forward_body(
                batch.source, first, last, len(records), Codec(batch.codec), batch.body, tally=tally
            ):
                self.on_outbox()
                return [(first, last)]
        if any(r.seq < 1 for r in records):
            raise BatchRefused(Code.MALFORMED, "seqs start at 1", retry=False)
        decisions = self.rules.decide_many(batch.source, records)
        ranges = await self.journal.commit(batch.source, decisions)
        self.on_outbox()
        return [(a, b) for a, b in ranges]

    async def holes_after(self, peer: Authenticated, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return [] if self.gaps is None else await self.gaps.wanted(peer.source, ranges)

    async def unavailable(self, peer: Authenticated, ranges: list[tuple[int, int]]) -> None:
        if self.gaps is not None:
            await self.gaps.unavailable(peer.source, ranges)

    def attach_asker(
        self, peer: Authenticated, address: str, ask: Callable[[list[tuple[int, int]]], Awaitable[None]]
    ) -> None:
        if self.gaps is not None:  # an operator's "ask the device" travels on this session
            self.gaps.attach(peer.source, address, ask)

    def closed(self, peer: Authenticated | None, address: str, reason: str) -> None:
        self.devices.pop(address, None)
        if self.files is not None:
            self.files.peer_closed(peer)  # its files in transfer stop (their partials stay, to resume)
        if peer is not None:
            self.peers.closed(peer.source, address)
            if self.gaps is not None:
                self.gaps.detach(peer.source, address)


class OutboxQueue:
    """The journal's outbox seen as the sender's durable queue; counts what the collector acknowledged."""

    def __init__(self, journal: Journal, throughput: Throughput | None = None) -> None:
        self.journal = journal
        self.throughput = throughput or Throughput()
        # Records and bytes of each batch handed to the sender, until its ack: bounded by what is in flight
        # (and by the batches re-read after a reconnect, which replace their own entries).
        self._sizes: dict[int, tuple[int, int]] = {}

    async def pending(self, after_key: int, max_batches: int) -> list[Outgoing]:
        rows = await self.journal.outbox_pending(after_key, max_batches)
        if after_key == 0:
            self._sizes.clear()  # a new session starts over: what was in flight is re-read now
        for r in rows:
            self._sizes[r.id] = (r.count, len(r.body))
        return [Outgoing(r.id, r.source, r.count, r.codec, r.body) for r in rows]

    async def acked(self, key: int, ack: Ack) -> None:
        await self.journal.outbox_ack([key])
        records, nbytes = self._sizes.pop(key, (0, 0))
        self.throughput.went_out(records, nbytes)


class Relay:
    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.reconciler: Reconciler | None = None  # set while running: reconcile now, the missing list

    async def run(self, stop: StopSignal) -> int:
        cfg = self.config
        rules = RuleSet.from_config(cfg.rules, cfg.default_action)
        codec = Codec.ZSTD if cfg.compression.value == "zstd" else Codec.MSGPACK
        # TLS files are read and checked before any store opens: a bad certificate stops the start at once.
        agents_tls, syslog_tls_ctx, syslog_tls_off = listener_tls(cfg), *syslog_tls(cfg)
        upstream_tls = collector_tls(cfg, parse_address(cfg.collector)[0])
        journal = await Journal.open(
            self.data_dir / "journal.db",
            store_durability(cfg.durability),
            codec=codec,
            keep_acked_outbox_bytes=cfg.outbox_keep_bytes,
        )
        collector_host, collector_port = parse_address(cfg.collector)
        token = read_token(cfg.token, cfg.token_file, "relay.token")
        throughput = Throughput()  # what came in and what the collector acked, for rates (api/rates.py)
        sender = Sender(
            SenderConfig(
                host=collector_host,
                port=collector_port,
                source=cfg.name,
                role=PeerRole.RELAY,
                token=token.encode() if token else None,
                max_frame_bytes=cfg.max_frame_bytes,
                handshake_timeout_s=cfg.handshake_timeout_s,
                write_timeout_s=cfg.write_timeout_s,
                tls=upstream_tls.context if upstream_tls else None,
                server_hostname=upstream_tls.server_hostname if upstream_tls else "",
            ),
            OutboxQueue(journal, throughput),
        )
        sink = RelaySink(journal, rules, sender.notify)
        sink.throughput = throughput
        rates = RateHistory(throughput)
        # One store for the intake, the outbox, retention and reconciliation: one small-table connection.
        content = ContentStore(self.data_dir / "files", small_max_bytes=WHOLE_MAX_BYTES)
        retention = FileRetention(journal, content, cfg.file_keep_bytes)
        file_outbox = RelayFileOutbox(journal, content, retention.notify)
        file_sender = FileSender(sender.config, file_outbox)
        sink.files, file_outbox.live = file_intake(content, journal, rules, file_sender.notify)
        missing = await MissingStore.open(self.data_dir / "missing.db", store_durability(cfg.durability))
        gaps = sink.gaps = AgentGaps(journal, missing)
        reconciler = self.reconciler = Reconciler(
            journal, missing, sender, auto_resend=cfg.resend_policy is ResendPolicy.AUTO,
            interval_s=cfg.reconcile_interval_s, codec=codec, on_outbox=sender.notify,
            content=content, on_files=file_sender.notify,
        )  # fmt: skip
        listener = LogferryListener(
            "relay",
            cfg.listen,
            sink,
            server_limits(cfg),
            device_tokens(cfg),
            cfg.accepts_unknown_devices(),
            tls=agents_tls,
        )
        # Inputs without an agent: their records get seqs here and meet the same rules, held store, outbox.
        feed = JournalFeed(journal, rules, sender.notify, throughput)
        inputs: list[SyslogInput | LineInput] = [
            SyslogInput(feed, cfg.syslog_listen, max_message_bytes=cfg.syslog_max_message_bytes,
                        frame_timeout_s=cfg.idle_timeout_s),
            LineInput(feed, cfg.line_listen, max_message_bytes=cfg.line_max_message_bytes,
                      idle_s=cfg.line_idle_s, reply=cfg.line_reply, invalid_reply=cfg.line_invalid_reply,
                      write_timeout_s=cfg.write_timeout_s),
        ]  # fmt: skip
        if syslog_tls_ctx is not None:
            inputs.append(SyslogInput(
                feed, cfg.syslog_tls_listen, max_message_bytes=cfg.syslog_max_message_bytes,
                frame_timeout_s=cfg.idle_timeout_s, tls=syslog_tls_ctx,
                tls_handshake_timeout_s=cfg.handshake_timeout_s,
            ))  # fmt: skip
        else:
            log.info("%s", syslog_tls_off)
        secret = api_token(cfg, "relay")
        audit = await AuditLog.open(self.data_dir / "audit.db", store_durability(cfg.durability))
        sender_stop = asyncio.Event()
        to = cfg.collector
        forwarding = stop.watch(asyncio.create_task(sender.run(sender_stop)), f"forwarding records to {to}")
        reconciling = stop.watch(
            asyncio.create_task(reconciler.run(sender_stop)), f"reconciling with {to}", may_finish=True
        )  # interval 0: on demand only
        # Device gaps the journal filled close:
        sweeping = stop.watch(asyncio.create_task(gaps.run(sender_stop)), "sweeping devices' gaps")
        forwarding_files = stop.watch(
            asyncio.create_task(file_sender.run(sender_stop)), f"forwarding files to {to}"
        )
        # Files' content within file_keep_bytes:
        retaining = stop.watch(asyncio.create_task(retention.run(sender_stop)), "retaining files' content")
        # The console's and /api/rates' history:
        sampling = stop.watch(asyncio.create_task(rates.run(sender_stop)), "sampling rates")
        api: RunningApi | None = None
        try:
            address = await listener.start()
            listen = {"logferry": address}
            for extra in inputs:
                if extra.enabled:
                    listen[extra.name] = await extra.start()
            # The API starts after the logferry/1 port accepts: devices never wait for fastapi to load.
            view = RelayView(name=cfg.name, token=secret, peers=sink.peers,
                             counters=listener.counters, audit=audit, journal=journal, sender=sender,
                             config=cfg, listen=listen, reconciler=reconciler, gaps=sink.gaps,
                             throughput=throughput, rates=rates, intake=sink.files,
                             file_sender=file_sender)  # fmt: skip
            api = await start_api(view, "relay", cfg.api_listen)
            if api is not None:
                view.listen["api"] = api.address
            announce_ready("relay", view.listen, data=str(self.data_dir), collector=cfg.collector)
            await stop.wait()
            log.info("relay stopping: finishing in-flight commits from devices")
            if api is not None:
                await api.stop(cfg.shutdown_timeout_s)  # operators' requests end before the stores close
            await listener.shutdown(cfg.shutdown_timeout_s)
        finally:
            stop.wind_down()  # the duties end now: that is no failure
            for extra in inputs:  # after the agents' port, before the stores close; a no-op if never started
                await extra.shutdown(cfg.shutdown_timeout_s)
            if api is not None:
                await api.stop(cfg.shutdown_timeout_s)  # no-op unless an error skipped the ordered stop
            await audit.close()
            sender_stop.set()
            try:
                await asyncio.wait_for(forwarding, cfg.shutdown_timeout_s)
            except TimeoutError:
                log.warning("forwarding to the collector did not stop in time; the outbox keeps the rest")
            reconciling.cancel()  # a reconciliation in progress only reads; the next run starts over
            sweeping.cancel()  # a sweep's write is one missing-list transaction: it commits or rolls back
            with contextlib.suppress(asyncio.CancelledError):
                await reconciling
            with contextlib.suppress(asyncio.CancelledError):
                await sweeping
            await missing.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(forwarding_files, cfg.shutdown_timeout_s)
            retaining.cancel()  # a pass in progress is one journal transaction: it commits or rolls back
            sampling.cancel()  # only reads counters
            with contextlib.suppress(asyncio.CancelledError):
                await retaining
            sink.files.close()
            await journal.close()
            content.close()  # after the journal: its writer thread removes content in retention passes
        log.info("relay stopped")
        return stop.status
