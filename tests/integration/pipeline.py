"""A whole logferry chain for integration tests: collector, relay with the test rules, agents.

The rules give every generated line a fate that the test can compute from the line alone, so "each record
arrived exactly once with the fate its rule gives it" is checked record by record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.integration.procs import Proc, Procs, query

RELAY_RULES = """
[[relay.rules]]
name = "hold-cards"
action = "hold"
message = 'card=\\d{16}'

[[relay.rules]]
name = "redact-passwords"
action = "redact"
redact = ["password"]
message = 'password='

[[relay.rules]]
name = "drop-debug"
action = "drop"
level = "debug"
"""


def line(i: int) -> str:
    """The i-th generated line (1-based); its fate follows from i."""
    kind = i % 10
    if kind == 3:
        return f"2026-11-25T10:00:00 INFO billing: charge card=4111111111111111 n={i}"
    if kind == 5:
        return f"2026-11-25T10:00:00 INFO auth: login user=kim password=hunter{i} n={i}"
    if kind == 7:
        return f"2026-11-25T10:00:00 DEBUG cache: lookup key=k{i} n={i}"
    return f"2026-11-25T10:00:00 INFO http: GET /api/orders 200 {i % 900}ms n={i}"


def fate_of(i: int) -> str:
    return {3: "held", 5: "redacted", 7: "dropped"}.get(i % 10, "forwarded")


def expected_counts(n: int) -> dict[str, int]:
    counts = {"held": 0, "redacted": 0, "dropped": 0, "forwarded": 0}
    for i in range(1, n + 1):
        counts[fate_of(i)] += 1
    return counts


def write_lines(path: Path, first: int, last: int) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(line(i) + "\n" for i in range(first, last + 1)))


_N = re.compile(r"n=(\d+)")


@dataclass
class Chain:
    procs: Procs
    root: Path
    collector: Proc
    relay: Proc

    @property
    def records_db(self) -> Path:
        return self.root / "collector" / "records.db"

    @property
    def journal_db(self) -> Path:
        return self.root / "relay" / "journal.db"

    def stored(self, source: str | None = None) -> int:
        if source is None:
            rows = query(self.records_db, "SELECT count(*) FROM records")
        else:
            rows = query(self.records_db, "SELECT count(*) FROM records WHERE source = ?", source)
        return int(rows[0][0]) if rows else 0

    def held(self) -> int:
        rows = query(self.journal_db, "SELECT count(*) FROM held")
        return int(rows[0][0]) if rows else 0

    def stored_numbers(self, source: str) -> list[int]:
        """The n= of every stored record of ``source``, one entry per stored row."""
        rows = query(self.records_db, "SELECT msg FROM records WHERE source = ?", source)
        return [int(m.group(1)) for (msg,) in rows if (m := _N.search(msg))]

    def held_numbers(self, source: str) -> list[int]:
        rows = query(self.journal_db, "SELECT msg FROM held WHERE source = ?", source)
        return [int(m.group(1)) for (msg,) in rows if (m := _N.search(msg))]

    def start_agent(self, name: str, *args: str) -> Proc:
        return self.procs.start(
            "agent", "--data", str(self.root / f"agent-{name}"), "--relay", self.relay.address(),
            "--source", name, *args,
        )  # fmt: skip


def start_chain(procs: Procs, root: Path, relay_extra: str = "", *relay_args: str) -> Chain:
    collector = procs.start("collector", "--data", str(root / "collector"), "--listen", "127.0.0.1:0")
    config = root / "relay.toml"
    config.write_text(f"[relay]\nheartbeat_s = 1\n{relay_extra}\n{RELAY_RULES}", encoding="utf-8")
    relay = procs.start(
        "relay", "--config", str(config), "--data", str(root / "relay"), "--listen", "127.0.0.1:0",
        "--collector", collector.address(), *relay_args,
    )  # fmt: skip
    return Chain(procs, root, collector, relay)


def pin_port(proc: Proc, flag: str = "--listen") -> None:
    """Make a restart of ``proc`` bind the port it got from the OS the first time."""
    i = proc.args.index(flag)
    proc.args[i + 1] = proc.address()


def check_exactly_once(chain: Chain, source: str, n: int) -> None:
    """Every line 1..n has arrived exactly once where its fate sends it, and nowhere else."""
    stored = chain.stored_numbers(source)
    held = chain.held_numbers(source)
    want_stored = sorted(i for i in range(1, n + 1) if fate_of(i) in ("forwarded", "redacted"))
    want_held = sorted(i for i in range(1, n + 1) if fate_of(i) == "held")
    assert len(stored) == len(set(stored)), f"{len(stored) - len(set(stored))} duplicates at the collector"
    lost, extra = set(want_stored) - set(stored), set(stored) - set(want_stored)
    assert sorted(stored) == want_stored, f"collector: {len(lost)} lost, {len(extra)} unexpected"
    assert len(held) == len(set(held)), "duplicates in the held store"
    assert sorted(held) == want_held, f"held store: {len(set(want_held) - set(held))} lost"
