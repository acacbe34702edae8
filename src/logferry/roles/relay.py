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
import logging
from collections.abc import Callable
from pathlib import Path

import msgspec

from logferry.config import RelayConfig, device_tokens, parse_address, read_token
from logferry.lifecycle import StopSignal, announce_ready
from logferry.model import Codec, decode_body
from logferry.pipeline.rules import RuleSet
from logferry.protocol.connection import Authenticated
from logferry.protocol.messages import Ack, Batch, Code, PeerRole
from logferry.roles.server import LogferryListener, server_limits, store_durability
from logferry.store.journal import Journal
from logferry.transport.sender import Outgoing, Sender, SenderConfig
from logferry.transport.serve import BatchRefused

log = logging.getLogger("logferry.relay")

MAX_BODY_BYTES = 256 << 20


class RelaySink:
    """Journals agents' batches with their fates."""

    def __init__(self, journal: Journal, rules: RuleSet, on_outbox: Callable[[], None]) -> None:
        self.journal = journal
        self.rules = rules
        self.on_outbox = on_outbox
        self.devices: dict[str, str] = {}  # address -> source

    async def opened(self, peer: Authenticated, address: str) -> int:
        if peer.role is not PeerRole.AGENT:
            raise BatchRefused(Code.PROTOCOL, "only agents connect to a relay's logferry/1 port", False)
        self.devices[address] = peer.source
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
        first, last = records[0].seq, records[-1].seq
        if self.rules.is_trivial and last - first + 1 == len(records) and first >= 1:
            contiguous = all(r.seq == first + i for i, r in enumerate(records))
            if contiguous and await self.journal.commit_forward_body(
                batch.source, first, last, len(records), Codec(batch.codec), batch.body
            ):
                self.on_outbox()
                return [(first, last)]
        if any(r.seq < 1 for r in records):
            raise BatchRefused(Code.MALFORMED, "seqs start at 1", retry=False)
        decisions = self.rules.decide_many(batch.source, records)
        ranges = await self.journal.commit(batch.source, decisions)
        self.on_outbox()
        return [(a, b) for a, b in ranges]

    def closed(self, peer: Authenticated | None, address: str, reason: str) -> None:
        self.devices.pop(address, None)


class OutboxQueue:
    """The journal's outbox seen as the sender's durable queue."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def pending(self, after_key: int, max_batches: int) -> list[Outgoing]:
        rows = await self.journal.outbox_pending(after_key, max_batches)
        return [Outgoing(r.id, r.source, r.count, r.codec, r.body) for r in rows]

    async def acked(self, key: int, ack: Ack) -> None:
        await self.journal.outbox_ack([key])


class Relay:
    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir)

    async def run(self, stop: StopSignal) -> int:
        cfg = self.config
        rules = RuleSet.from_config(cfg.rules, cfg.default_action)
        codec = Codec.ZSTD if cfg.compression.value == "zstd" else Codec.MSGPACK
        journal = await Journal.open(
            self.data_dir / "journal.db",
            store_durability(cfg.durability),
            codec=codec,
            keep_acked_outbox_bytes=cfg.outbox_keep_bytes,
        )
        collector_host, collector_port = parse_address(cfg.collector)
        token = read_token(cfg.token, cfg.token_file, "relay.token")
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
            ),
            OutboxQueue(journal),
        )
        sink = RelaySink(journal, rules, sender.notify)
        listener = LogferryListener(
            "relay",
            cfg.listen,
            sink,
            server_limits(cfg),
            device_tokens(cfg),
            cfg.accepts_unknown_devices(),
        )
        sender_stop = asyncio.Event()
        forwarding = asyncio.create_task(sender.run(sender_stop))
        try:
            address = await listener.start()
            announce_ready("relay", {"logferry": address}, data=str(self.data_dir), collector=cfg.collector)
            await stop.wait()
            log.info("relay stopping: finishing in-flight commits from devices")
            await listener.shutdown(cfg.shutdown_timeout_s)
        finally:
            sender_stop.set()
            try:
                await asyncio.wait_for(forwarding, cfg.shutdown_timeout_s)
            except TimeoutError:
                log.warning("forwarding to the collector did not stop in time; the outbox keeps the rest")
            await journal.close()
        log.info("relay stopped")
        return 0
