"""``logferry demo``: the whole system on one machine, on embedded defaults, with live progress.

Starts a collector, a relay with the demo's rules (hold card numbers and cardholder export files, redact
passwords, drop debug) and three agents, each tailing its simulated device's log file and shipping the whole
files the device drops into its outgoing folder; shows sent / held / redacted / dropped / forwarded / stored
with rates. A few seconds in, once the collector stores them, the demo removes some records and one file
there behind its back (``demo/damage.py``), so the relay's reconciliation (policy confirm) lists them as
missing: held → release and missing → resend can both be clicked through in the consoles, whose addresses
and walk-through it prints first. At the end it waits for the pipeline to drain, accounts for every line
and file — removed items count as absent and must be on the relay's missing list — and says where the data
is. Without a terminal it prints a progress line every few seconds; ``--duration`` stops it by itself.

The demo owns every directory under its data root; it must never touch another path, and never remove
anything at the collector except what ``damage.remove_at_collector`` chose.
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

from logferry.demo import damage
from logferry.demo.credentials import DemoUser, credential_lines, make_demo_users, users_toml
from logferry.demo.damage import Removed
from logferry.demo.devices import Device
from logferry.demo.processes import StartError, read_ready, spawn, stop

DEMO_RULES = """\
[relay]
name = "demo-relay"
# The demo's devices are agents; the syslog and line inputs take any free port so the demo never collides.
syslog_listen = "127.0.0.1:0"
line_listen = "127.0.0.1:0"
heartbeat_s = 2
# Reconcile with the collector every 2 s and let an operator confirm each resend (the Missing page).
reconcile_interval_s = 2
resend_policy = "confirm"

# Cardholder exports (whole files) wait for an operator's review too.
[[relay.rules]]
name = "hold-exports"
action = "hold"
items = "files"
file_name = "*export*.csv"

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

AGENT_CONFIG = """\
[agent]
source = "{source}"
relay = "{relay}"
data_dir = "{data}"

[[agent.inputs]]
type = "tail"
paths = ["{log}"]

[[agent.inputs]]
type = "files"
paths = ["{outgoing}"]
stable_s = 0.5
"""

FATES = {1: "forwarded", 2: "redacted", 3: "held", 4: "dropped", 5: "released", 6: "purged"}
DELIVERED = ("forwarded", "redacted", "released")  # what the collector must have (or the relay list missing)
# Every insert ever counts in ``sources``; the demo's removals are the only deletes, so it subtracts them.
STORED_SQL = (
    "SELECT (SELECT COALESCE(SUM(count), 0) FROM sources) + (SELECT COALESCE(SUM(count), 0) FROM inbox)"
)
FILES_SUFFIX = "/files"  # a device's whole files are items of the source "<device>/files"
DAMAGE_SOURCE = "device-1"
DAMAGE_FILE_SOURCE = "device-2" + FILES_SUFFIX
DAMAGE_AFTER_S = 4.0
TICK_S = 0.25
PLAIN_EVERY_S = 5.0
DRAIN_TIMEOUT_S = 30.0


@dataclass
class Snapshot:
    t: float
    sent: int = 0
    spooled: int = 0
    acked: int = 0
    fates: dict[str, int] = field(default_factory=dict)  # of the devices' log lines
    file_fates: dict[str, int] = field(default_factory=dict)  # of their whole files
    outbox: int = 0  # records and files the collector has not acknowledged yet
    stored: int = 0
    files_stored: int = 0
    missing_open: int = 0  # entries of the relay's missing list waiting for an operator
    gone: damage.Accounting | None = None  # where the items the demo removed are now


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
        self.removed = Removed()
        self.users = make_demo_users()

    def start(self) -> tuple[dict[str, str], dict[str, str]]:
        """Start everything on OS-picked ports (a real system may hold the defaults); returns what the
        collector and the relay listen on, by name (logferry, api, syslog, line)."""
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        config = self.root / "relay.toml"
        config.write_text(DEMO_RULES + users_toml("relay", self.users), encoding="utf-8")
        collector_config = self.root / "collector.toml"
        collector_config.write_text("[collector]\n" + users_toml("collector", self.users), encoding="utf-8")
        any_port = "127.0.0.1:0"
        collector = self._start("collector", ["--config", str(collector_config), "--data",
                                              str(self.root / "collector"), "--listen", any_port,
                                              "--api-listen", any_port])  # fmt: skip
        relay = self._start("relay", ["--config", str(config), "--data", str(self.root / "relay"),
                                      "--listen", any_port, "--api-listen", any_port,
                                      "--collector", collector["logferry"]])  # fmt: skip
        for dev in self.devices:
            dev.write_files()
            agent_config = self.root / "agents" / f"{dev.name}.toml"
            agent_config.parent.mkdir(parents=True, exist_ok=True)
            agent_config.write_text(
                AGENT_CONFIG.format(source=dev.name, relay=relay["logferry"], log=dev.log_path,
                                    data=self.root / "agents" / dev.name, outgoing=dev.outgoing),
                encoding="utf-8",
            )  # fmt: skip
            self._start("agent", ["--config", str(agent_config)])
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

    @property
    def files_written(self) -> int:
        return sum(len(d.files) for d in self.devices)

    def snapshot(self) -> Snapshot:
        snap = Snapshot(time.monotonic(), sent=sum(d.written for d in self.devices))
        for dev in self.devices:
            spool = self.root / "agents" / dev.name / "spool.db"
            snap.spooled += max(0, _num(_one(spool, "SELECT next_seq FROM meta")) - 1)
            snap.acked += _num(_one(spool, "SELECT acked_through FROM meta"))
        journal = self.root / "relay" / "journal.db"
        for source, fate, n in _one(journal, "SELECT source, fate, SUM(n) FROM counters GROUP BY 1, 2"):
            into = snap.file_fates if str(source).endswith(FILES_SUFFIX) else snap.fates
            name = FATES.get(int(fate), str(fate))  # type: ignore[call-overload]
            into[name] = into.get(name, 0) + int(n)  # type: ignore[call-overload]
        snap.outbox = _num(_one(journal, "SELECT COALESCE(SUM(count), 0) FROM outbox WHERE acked = 0"))
        snap.outbox += _num(
            _one(journal, "SELECT COUNT(*) FROM file_items WHERE sent = 0 AND fate IN (1, 5)")
        )
        # Stored = turned into rows, plus batches committed to the inbox and not yet turned into rows.
        snap.stored = _num(_one(self.root / "collector" / "records.db", STORED_SQL)) - len(self.removed.seqs)
        snap.files_stored = _num(_one(self.root / "collector" / "files.db", "SELECT COUNT(*) FROM files"))
        snap.missing_open = _num(_one(self.root / "relay" / "missing.db",
                                      "SELECT COUNT(*) FROM missing WHERE state = 'open'"))  # fmt: skip
        if self.removed.done:
            try:
                snap.gone = damage.account(self.root, self.removed)
            except sqlite3.Error:
                snap.gone = None  # a store busy right now: the next tick tells
        return snap

    def settled(self, snap: Snapshot) -> bool:
        """Every line and file has its fate at the relay, and everything delivered is stored at the
        collector — except what the demo removed there, which must be listed missing at the relay."""
        f, ff = snap.fates, snap.file_fates
        gone = snap.gone if self.removed.done else damage.Accounting(0, False, 0)
        if gone is None:
            return False
        return (
            snap.acked == snap.sent
            and sum(f.values()) == snap.sent
            and sum(ff.values()) == self.files_written
            and snap.outbox == 0
            and snap.stored + gone.absent_records == sum(f.get(k, 0) for k in DELIVERED)
            and snap.files_stored + int(gone.absent_file) == sum(ff.get(k, 0) for k in DELIVERED)
            and gone.unlisted == 0
        )

    def damage_ready(self) -> bool:
        return damage.ready(self.root / "collector", DAMAGE_SOURCE, DAMAGE_FILE_SOURCE)

    def remove_some(self) -> list[str]:
        """Remove records and a file at the collector (see ``demo/damage.py``); what to tell the operator."""
        self.removed = damage.remove_at_collector(self.root / "collector", DAMAGE_SOURCE, DAMAGE_FILE_SOURCE)
        r = self.removed
        return [
            f"logferry demo: removed at the collector, behind its back: {len(r.seqs)} records of {r.source} "
            f"(between seq {r.seqs[0]} and {r.seqs[-1]}) and the file {r.file_source}:{r.file_seq} "
            f"({r.file_path})",
            f"  the relay lists them on its Missing page within seconds; search the collector for "
            f'"{r.source}-{r.seqs[0]}": nothing until you resend them',
        ]


def _rate(now: Snapshot, before: Snapshot, attr: str) -> float:
    dt = now.t - before.t
    return (getattr(now, attr) - getattr(before, attr)) / dt if dt > 0 else 0.0


def render(snap: Snapshot, before: Snapshot, elapsed: float) -> list[str]:
    f, ff = snap.fates, snap.file_fates
    return [
        f"logferry demo — {elapsed:5.0f} s   (Ctrl-C to stop)",
        f"  devices wrote   {snap.sent:>9,}   {_rate(snap, before, 'sent'):>8,.0f}/s",
        f"  agents spooled  {snap.spooled:>9,}   acknowledged by the relay {snap.acked:,}",
        f"  relay           forwarded {f.get('forwarded', 0):,}  redacted {f.get('redacted', 0):,}  "
        f"held {f.get('held', 0):,}  dropped {f.get('dropped', 0):,}  released {f.get('released', 0):,}  "
        f"outbox {snap.outbox:,}",
        f"  files           forwarded {ff.get('forwarded', 0):,}  held {ff.get('held', 0):,}  "
        f"released {ff.get('released', 0):,}  stored at the collector {snap.files_stored:,}",
        f"  collector       stored {snap.stored:>9,}   {_rate(snap, before, 'stored'):>8,.0f}/s",
        f"  missing         {snap.missing_open:,} open entries on the relay's Missing page",
    ]


def _guide(collector: dict[str, str], relay: dict[str, str], rate: int, users: tuple[DemoUser, ...]) -> None:
    """The addresses, the walk-through of the whole flow, and how to sign in."""
    print(f"  collector logferry/1 on {collector['logferry']}; relay logferry/1 on {relay['logferry']}")
    if "line" in relay:
        print(f"  the prototype's line input on {relay['line']}; syslog over TCP on {relay.get('syslog')}")
    print(f"  3 simulated devices writing {rate} lines/s each, and shipping 4 whole files")
    if "api" not in relay or "api" not in collector:
        return
    r, c = f"http://{relay['api']}", f"http://{collector['api']}"
    print(
        f"""
  relay console      {r}/   (overview, held, missing, audit)
  collector console  {c}/   (search, analysis, files)
  REST API + CLI     logferry held list --api {r} --token TOKEN   ·   logferry missing list …
{chr(10).join(credential_lines(users))}
  What to click (sign in to each console as demo-operator; demo-viewer may only look):
    1. {r}/held — records with card numbers and the file cardholder-export.csv are held:
       select some → Release selected (or Delete); "Release all matching" takes every one.
    2. After ~{DAMAGE_AFTER_S:.0f} s the demo removes {damage.REMOVE_RECORDS} records and one file at the \
collector behind its back;
       the relay reconciles every 2 s and lists them: {r}/missing → select → Resend selected.
    3. {c}/ — search "card" (released records), or the removed records by the words printed below
       (found again once resent).
""",
        flush=True,
    )


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
    ok = False
    try:
        collector, relay = demo.start()
        _guide(collector, relay, rate, demo.users)
        started = last_plain = time.monotonic()
        before = demo.snapshot()
        shown = 0
        while not stopping and (duration_s is None or time.monotonic() - started < duration_s):
            time.sleep(TICK_S)
            demo.write(TICK_S)
            if not demo.removed.done and time.monotonic() - started >= DAMAGE_AFTER_S and demo.damage_ready():
                print("\n".join(demo.remove_some()), flush=True)
                shown = 0  # the live block starts again below the message
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
        while not demo.removed.done and time.monotonic() < deadline:
            if demo.damage_ready():  # stopped before the removal: remove now, so missing items still show
                print("\n".join(demo.remove_some()), flush=True)
                break
            time.sleep(TICK_S)
        snap = demo.snapshot()
        while not demo.settled(snap) and time.monotonic() < deadline:
            time.sleep(TICK_S)
            snap = demo.snapshot()
        for line in render(snap, snap, time.monotonic() - started):
            print(line)
        ok = demo.settled(snap)
        print("  every line is accounted for: " + ("yes" if ok else "NO (see the logs)"))
        print("\n".join(_removed_account(demo, snap)))
    except StartError as exc:
        print(f"logferry demo: {exc}", file=sys.stderr)
        return 1
    finally:
        demo.stop()
    _explain(root)
    return 0 if ok else 1


def _removed_account(demo: Demo, snap: Snapshot) -> list[str]:
    """What became of the items the demo removed at the collector, for the final accounting."""
    r, gone = demo.removed, snap.gone
    if not r.done:
        return ["  nothing was removed at the collector (the devices stopped before it stored enough)"]
    if gone is None:
        return ["  the removed items could not be checked (a store was busy)"]
    back = len(r.seqs) - gone.absent_records
    file_state = "still missing" if gone.absent_file else "back (resent)"
    if gone.absent_records == 0 and not gone.absent_file:
        listed = "nothing of it is missing any more"
    elif gone.unlisted == 0:
        listed = "what is still absent is listed as missing at the relay"
    else:
        listed = f"{gone.unlisted} still absent and NOT listed as missing at the relay"
    return [
        f"  removed at the collector by the demo: {len(r.seqs)} records of {r.source} — {back} back "
        f"(resent), {gone.absent_records} still missing; the file {r.file_path}: {file_state}; {listed}"
    ]


def _explain(root: Path) -> None:
    print(
        f"""
Where the data is ({root}):
  devices/*/app.log        what the simulated devices wrote
  devices/*/outgoing/      the whole files they shipped
  agents/*/spool.db        each agent's durable spool
  relay/journal.db         the relay's journal, held store and outbox; relay/missing.db its missing list
  collector/records.db     what arrived at the collector (full-text indexed); collector/files/ the files
  logs/                    each process's log
Look at it:
  sqlite3 {root}/relay/journal.db "SELECT rule, msg FROM held LIMIT 5"
  sqlite3 {root}/relay/missing.db "SELECT source, first_seq, last_seq, kind, state FROM missing"
  sqlite3 {root}/collector/records.db \\
    "SELECT source, seq, msg FROM records WHERE msg LIKE '%REDACTED%' LIMIT 5"
  sqlite3 {root}/collector/records.db "SELECT msg FROM records_fts WHERE records_fts MATCH 'gateway' LIMIT 5"
"""
    )
    with contextlib.suppress(OSError):
        sys.stdout.flush()
