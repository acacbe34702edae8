"""A chain for reconciliation tests: collector, relay reconciling every second, one tailing agent.

Records are deleted from and corrupted in the collector's store *while it runs*, with sqlite3 from the test
(an operator's tool, or a bad disk): the store's triggers mark the buckets dirty, which is exactly how such
damage must be found. The relay's Python API (``Reconciler``) is used offline on its stores, as a REST
handler or the CLI would use it in-process: the relay is stopped first, since the stores have one writer.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logferry.reconcile.relay_side import Reconciler, ResendResult
from logferry.store.journal import Journal
from logferry.store.missing import MissingStore
from tests.integration.pipeline import write_lines
from tests.integration.procs import Proc, Procs, query, wait_until

SOURCE = "dev-r"
# The relay and collector pick free ports for every listener, so tests never collide.
FREE_PORTS = ("--api-listen", "127.0.0.1:0", "--set", "syslog_listen=127.0.0.1:0", "--set",
              "line_listen=127.0.0.1:0")  # fmt: skip


@dataclass
class ReconcileChain:
    procs: Procs
    root: Path
    collector: Proc
    relay: Proc

    @property
    def records_db(self) -> Path:
        return self.root / "collector" / "records.db"

    @property
    def missing_db(self) -> Path:
        return self.root / "relay" / "missing.db"

    def stored(self) -> int:
        return int(query(self.records_db, "SELECT count(*) FROM records WHERE source = ?", SOURCE)[0][0])

    def rows(self, first: int, last: int) -> dict[int, tuple[str, bytes]]:
        sql = "SELECT seq, msg, digest FROM records WHERE source = ? AND seq BETWEEN ? AND ?"
        got = query(self.records_db, sql, SOURCE, first, last)
        return {int(s): (str(m), bytes(d)) for s, m, d in got}

    def tamper(self, sql: str, *params: object) -> None:
        conn = sqlite3.connect(self.records_db, timeout=30)
        try:
            with conn:
                conn.execute(sql, params)
        finally:
            conn.close()

    def missing(self, state: str | None = None) -> list[tuple[Any, ...]]:
        sql = "SELECT id, kind, first_seq, last_seq, state FROM missing"
        if state is None:
            return query(self.missing_db, sql + " ORDER BY id")
        return query(self.missing_db, sql + " WHERE state = ? ORDER BY id", state)

    def restart_relay(self) -> None:
        self.relay.terminate()
        self.relay = self.procs.restart(self.relay)

    def offline(self, action: str, ids: list[int], who: str = "") -> ResendResult | int:
        """Run the relay's Python API on its stores with the relay stopped, then start it again."""
        self.relay.terminate()

        async def run() -> ResendResult | int:
            journal = await Journal.open(self.root / "relay" / "journal.db")
            missing = await MissingStore.open(self.missing_db)
            try:
                api = Reconciler(journal, missing, None, auto_resend=False, interval_s=0)
                return await api.resend(ids) if action == "resend" else await api.acknowledge_lost(ids, who)
            finally:
                await missing.close()
                await journal.close()

        result = asyncio.run(run())
        self.relay = self.procs.restart(self.relay)
        return result


def start(procs: Procs, root: Path, n: int, *, policy: str, keep_bytes: int = 256 << 20) -> ReconcileChain:
    collector = procs.start("collector", "--data", str(root / "collector"), "--listen", "127.0.0.1:0",
                            "--api-listen", "127.0.0.1:0")  # fmt: skip
    config = root / "relay.toml"
    config.write_text(
        f'[relay]\nheartbeat_s = 1\nreconcile_interval_s = 1\nresend_policy = "{policy}"\n'
        f"outbox_keep_bytes = {keep_bytes}\n",
        encoding="utf-8",
    )
    relay = procs.start("relay", "--config", str(config), "--data", str(root / "relay"), "--listen",
                        "127.0.0.1:0", "--collector", collector.address(), *FREE_PORTS)  # fmt: skip
    relay.args[relay.args.index("--listen") + 1] = relay.address()  # restarts keep the agent's port
    chain = ReconcileChain(procs, root, collector, relay)
    log = root / "app.log"
    write_lines(log, 1, n)
    procs.start("agent", "--data", str(root / "agent"), "--relay", relay.address(), "--source", SOURCE,
                "--tail", str(log))  # fmt: skip
    wait_until(lambda: chain.stored() == n, 60, f"{n} records at the collector")
    return chain
