"""``logferry demo``: the whole system on one machine, on embedded defaults, with live progress.

Starts a collector, a relay with the demo's rules (hold card numbers, redact passwords, drop debug) and three
agents tailing the log files of three simulated devices; shows sent / held / redacted / dropped / forwarded /
stored with rates; at the end waits for the pipeline to drain and says where the data is and how to look at
it. Without a terminal it prints a progress line every few seconds; ``--duration`` stops it by itself.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from logferry.demo.devices import Device
from logferry.demo.processes import StartError, read_ready, spawn, stop

DEMO_RULES = """\
[relay]
name = "demo-relay"
# The demo's devices are agents; the syslog and line inputs take any free port so the demo never collides.
syslog_listen = "127.0.0.1:0"
line_listen = "127.0.0.1:0"
heartbeat_s = 2

# Card numbers never leave the site without an operator's review.
[[relay.rules]]
name = "hold-cardholder"
action = "hold"
message = 'card=\\d{13,19}'

# Passwords are masked, then the record is forwarded.
[[relay.rules]]
name = "redact-passwords"
action = "redact"
message = 'password='
redact = ["password"]

# Debug chatter stays on site.
[[relay.rules]]
name = "drop-debug"
action = "drop"
level = "debug"
"""

FATES = {1: "forwarded", 2: "redacted", 3: "held", 4: "dropped", 5: "released", 6: "purged"}
STORED_SQL = (
    "SELECT (SELECT COALESCE(SUM(count), 0) FROM sources) + (SELECT COALESCE(SUM(count), 0) FROM inbox)"
)
TICK_S = 0.25
PLAIN_EVERY_S = 5.0
DRAIN_TIMEOUT_S = 30.0


@dataclass
class Snapshot:
    t: float
    sent: int = 0
    spooled: int = 0
    acked: int = 0
    fates: dict[str, int] = field(default_factory=dict)
    outbox: int = 0
    stored: int = 0


def _one(db: Path, sql: str) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []  # a store being created or migrated: show it on the next tick


def _num(rows: list[tuple[object, ...]]) -> int:
    value = rows[0][0] if rows else 0
    return int(value) if isinstance(value, int) else 0


class Demo:
    def __init__(self, root: Path, rate: int) -> None:
        self.root = root
        self.rate = rate
        self.children: list[subprocess.Popen[bytes]] = []
        self.devices = [
            Device(f"device-{i}", root / "devices" / f"device-{i}" / "app.log", seed=i) for i in (1, 2, 3)
        ]

    def start(self) -> tuple[dict[str, str], dict[str, str]]:
        """Start everything on OS-picked ports (a real system may hold the defaults); returns what the
        collector and the relay listen on, by name (logferry, api, syslog, line)."""
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        config = self.root / "relay.toml"
        config.write_text(DEMO_RULES, encoding="utf-8")
        any_port = "127.0.0.1:0"
        collector = self._start("collector", ["--data", str(self.root / "collector"), "--listen", any_port,
                                              "--api-listen", any_port])  # fmt: skip
        relay = self._start("relay", ["--config", str(config), "--data", str(self.root / "relay"),
                                      "--listen", any_port, "--api-listen", any_port,
                                      "--collector", collector["logferry"]])  # fmt: skip
        for dev in self.devices:
            spool = str(self.root / "agents" / dev.name)
            self._start("agent", ["--data", spool, "--relay", relay["logferry"],
                                  "--source", dev.name, "--tail", str(dev.log_path)])  # fmt: skip
        return collector, relay

    def _start(self, role: str, args: list[str]) -> dict[str, str]:
        log = self.root / "logs" / f"{role}-{len(self.children)}.log"
        popen = spawn(role, args, log)
        self.children.append(popen)
        info = read_ready(popen, log)
        return {str(k): str(v) for k, v in info.get("listen", {}).items()}

    def stop(self) -> None:
        for child in reversed(self.children):  # agents first, collector last
            stop(child)

    def write(self, seconds: float) -> None:
        for dev in self.devices:
            dev.write(max(1, round(self.rate * seconds)))

    def snapshot(self) -> Snapshot:
        snap = Snapshot(time.monotonic(), sent=sum(d.written for d in self.devices))
        for dev in self.devices:
            spool = self.root / "agents" / dev.name / "spool.db"
            snap.spooled += max(0, _num(_one(spool, "SELECT next_seq FROM meta")) - 1)
            snap.acked += _num(_one(spool, "SELECT acked_through FROM meta"))
        journal = self.root / "relay" / "journal.db"
        for fate, n in _one(journal, "SELECT fate, SUM(n) FROM counters GROUP BY fate"):
            snap.fates[FATES.get(int(fate), str(fate))] = int(n)  # type: ignore[call-overload]
        snap.outbox = _num(_one(journal, "SELECT COALESCE(SUM(count), 0) FROM outbox WHERE acked = 0"))
        # Stored = turned into rows, plus batches committed to the inbox and not yet turned into rows.
        snap.stored = _num(_one(self.root / "collector" / "records.db", STORED_SQL))
        return snap

    def settled(self, snap: Snapshot) -> bool:
        f = snap.fates
        decided = sum(f.get(k, 0) for k in ("forwarded", "redacted", "held", "dropped"))
        return (
            snap.acked == snap.sent
            and decided == snap.sent
            and snap.outbox == 0
            and (snap.stored == f.get("forwarded", 0) + f.get("redacted", 0) + f.get("released", 0))
        )


def _rate(now: Snapshot, before: Snapshot, attr: str) -> float:
    dt = now.t - before.t
    return (getattr(now, attr) - getattr(before, attr)) / dt if dt > 0 else 0.0


def render(snap: Snapshot, before: Snapshot, elapsed: float) -> list[str]:
    f = snap.fates
    return [
        f"logferry demo — {elapsed:5.0f} s   (Ctrl-C to stop)",
        f"  devices wrote   {snap.sent:>9,}   {_rate(snap, before, 'sent'):>8,.0f}/s",
        f"  agents spooled  {snap.spooled:>9,}   acknowledged by the relay {snap.acked:,}",
        f"  relay           forwarded {f.get('forwarded', 0):,}  redacted {f.get('redacted', 0):,}  "
        f"held {f.get('held', 0):,}  dropped {f.get('dropped', 0):,}  outbox {snap.outbox:,}",
        f"  collector       stored {snap.stored:>9,}   {_rate(snap, before, 'stored'):>8,.0f}/s",
    ]


def run_demo(duration_s: float | None, data: Path | None, rate: int) -> int:
    root = data.resolve() if data is not None else Path(tempfile.mkdtemp(prefix="logferry-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    demo = Demo(root, rate)
    stopping = False

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    tty = sys.stdout.isatty()
    print(f"logferry demo: data in {root}")
    try:
        collector, relay = demo.start()
        print(f"  collector logferry/1 on {collector['logferry']}; relay logferry/1 on {relay['logferry']}")
        if "api" in relay and "api" in collector:
            print(f"  relay console      http://{relay['api']}/   (held items, missing, overview)")
            print(f"  collector console  http://{collector['api']}/   (search)")
            print(f"  REST API + CLI     logferry held list --api http://{relay['api']}")
        if "line" in relay:
            print(
                f"  the prototype's line input on {relay['line']}; syslog over TCP on {relay.get('syslog')}"
            )
        print(f"  3 simulated devices writing {rate} lines/s each")
        started = last_plain = time.monotonic()
        before = demo.snapshot()
        shown = 0
        while not stopping and (duration_s is None or time.monotonic() - started < duration_s):
            time.sleep(TICK_S)
            demo.write(TICK_S)
            snap = demo.snapshot()
            lines = render(snap, before, snap.t - started)
            if tty:
                sys.stdout.write(
                    (f"\x1b[{shown}F" if shown else "") + "".join(f"\x1b[2K{x}\n" for x in lines)
                )
                sys.stdout.flush()
                shown = len(lines)
            elif snap.t - last_plain >= PLAIN_EVERY_S:
                print(" | ".join(x.strip() for x in lines[1:]), flush=True)
                last_plain = snap.t
            if snap.t - before.t >= 2.0:
                before = snap
        print("logferry demo: devices stopped; waiting for the pipeline to drain…", flush=True)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        snap = demo.snapshot()
        while not demo.settled(snap) and time.monotonic() < deadline:
            time.sleep(TICK_S)
            snap = demo.snapshot()
        for line in render(snap, snap, time.monotonic() - started):
            print(line)
        ok = demo.settled(snap)
        print("  every line is accounted for: " + ("yes" if ok else "NO (see the logs)"))
    except StartError as exc:
        print(f"logferry demo: {exc}", file=sys.stderr)
        return 1
    finally:
        demo.stop()
    _explain(root)
    return 0 if ok else 1


def _explain(root: Path) -> None:
    print(
        f"""
Where the data is ({root}):
  devices/*/app.log        what the simulated devices wrote
  agents/*/spool.db        each agent's durable spool
  relay/journal.db         the relay's journal, held store and outbox
  collector/records.db     what arrived at the collector (full-text indexed)
  logs/                    each process's log
Look at it:
  sqlite3 {root}/relay/journal.db "SELECT rule, msg FROM held LIMIT 5"
  sqlite3 {root}/collector/records.db \\
    "SELECT source, seq, msg FROM records WHERE msg LIKE '%REDACTED%' LIMIT 5"
  sqlite3 {root}/collector/records.db "SELECT msg FROM records_fts WHERE records_fts MATCH 'gateway' LIMIT 5"
"""
    )
    with contextlib.suppress(OSError):
        sys.stdout.flush()
