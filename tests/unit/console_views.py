"""A relay's live objects on real stores in a temporary directory, for the console's page tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from logferry.api.launch import RelayView
from logferry.config import RelayConfig
from logferry.protocol.messages import PeerRole
from logferry.reconcile.gaps import AgentGaps
from logferry.reconcile.relay_side import Reconciler
from logferry.roles.relay import OutboxQueue
from logferry.roles.server import PeerTable
from logferry.store.audit import AuditLog
from logferry.store.journal import Journal
from logferry.store.missing import MissingStore
from logferry.store.sqlite import Durability
from logferry.transport.sender import Sender, SenderConfig
from logferry.transport.serve import SessionCounters


@asynccontextmanager
async def relay_view(root: Path, config: RelayConfig | None = None) -> AsyncIterator[RelayView]:
    """Journal, audit log, missing list, agent gaps and an unconnected sender, closed on exit."""
    journal = await Journal.open(root / "journal.db", Durability.NORMAL)
    audit = await AuditLog.open(root / "audit.db", Durability.NORMAL)
    missing = await MissingStore.open(root / "missing.db", Durability.NORMAL)
    sender = Sender(SenderConfig("127.0.0.1", 9, "relay-test", PeerRole.RELAY, None), OutboxQueue(journal))
    reconciler = Reconciler(journal, missing, None, auto_resend=False, interval_s=0)
    try:
        yield RelayView(
            name="relay-test", token="", peers=PeerTable(), counters=SessionCounters(), audit=audit,
            journal=journal, sender=sender, config=config or RelayConfig(), reconciler=reconciler,
            gaps=AgentGaps(journal, missing),
        )  # fmt: skip
    finally:
        await missing.close()
        await audit.close()
        await journal.close()
