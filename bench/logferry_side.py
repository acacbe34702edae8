"""logferry under the same workloads: agent (--stdin) -> relay -> collector, driven through the real CLI.

The servers print one ``READY {json}`` line on stdout when they listen; their logs (stderr) go to files under
bench/out/logferry/. Arrival is read from the collector's SQLite store (DIR/records.db, opened read-only):
``max(rowid)`` on an interval for progress, ``received_ns`` (set at commit) for latency.
"""

from __future__ import annotations

import compileall
import contextlib
import json
import os
import re
import select
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from common import (
    BENCH_DIR,
    OUT_DIR,
    BenchError,
    Proc,
    log,
    wait_for,
    wait_quiescent,
)
from latency import LAT_RE, latency_stats

READY_TIMEOUT = 30.0
AGENT_READY_TIMEOUT = 10.0


class StartupError(BenchError):
    """A logferry server did not come up (no READY line, or it exited)."""


MSG_COLUMNS = ("msg", "message", "payload", "body", "line", "text")


def default_command() -> list[str]:
    """The ``logferry`` command, its modules compiled to bytecode first, as an installed package has them:
    this machine sets PYTHONDONTWRITEBYTECODE=1, so a checkout never caches them and every process started
    compiled them again (~70 ms more for the agent, whose start is inside the timed window)."""
    import logferry

    compileall.compile_dir(Path(logferry.__file__).parent, quiet=1)
    exe = Path(sys.executable).parent / "logferry"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "logferry"]


def _drain(stream: IO[bytes], sink: Path) -> None:
    """Keep reading a server's stdout after READY so it never blocks on a full pipe."""
    fd = stream.fileno()
    with sink.open("ab") as out, contextlib.suppress(OSError):  # OSError: the pipe was closed at stop
        for chunk in iter(lambda: os.read(fd, 65536), b""):
            out.write(chunk)


def _read_ready(proc: Proc, timeout: float) -> dict[str, Any]:
    stream = proc.popen.stdout
    assert stream is not None
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise StartupError(f"{proc.name}: no READY line within {timeout:.0f}s")
        ready, _, _ = select.select([stream], [], [], min(left, 0.2))
        if ready:
            chunk = stream.read1(4096)  # type: ignore[attr-defined]
            if not chunk:
                raise StartupError(f"{proc.name} exited before READY (code {proc.popen.poll()})")
            buf += chunk
        elif not proc.alive():
            raise StartupError(f"{proc.name} exited before READY (code {proc.popen.returncode})")
    line, _, _rest = buf.partition(b"\n")
    text = line.decode(errors="replace").strip()
    if not text.startswith("READY "):
        raise StartupError(f"{proc.name}: expected a READY line on stdout, got {text[:200]!r}")
    return dict(json.loads(text[len("READY ") :]))


@dataclass
class Cluster:
    """collector + relay (+ agent) under one work directory; every process stopped by PID."""

    cmd: list[str]
    workdir: Path
    procs: dict[str, Proc] = field(default_factory=dict)
    collector_addr: str = ""
    relay_addr: str = ""
    listen: dict[str, dict[str, str]] = field(default_factory=dict)  # role -> READY's "listen"

    def __post_init__(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)

    def _server(self, role: str, args: list[str]) -> str:
        data = self.workdir / role
        data.mkdir(exist_ok=True)
        argv = [*self.cmd, role, "--data", str(data), *args]
        proc = Proc(
            f"logferry-{role}", argv, log_path=self.workdir / f"{role}.stderr.log", stdout=subprocess.PIPE
        )
        self.procs[role] = proc
        info = _read_ready(proc, READY_TIMEOUT)
        assert proc.popen.stdout is not None
        threading.Thread(
            target=_drain, args=(proc.popen.stdout, self.workdir / f"{role}.stdout.log"), daemon=True
        ).start()
        self.listen[role] = {str(k): str(v) for k, v in info["listen"].items()}
        addr = str(info["listen"]["logferry"])
        log(f"{role} ready: {addr} (pid {info.get('pid')})")
        return addr

    def start_collector(self, listen: str = "127.0.0.1:0") -> None:
        self.collector_addr = self._server("collector", ["--listen", listen])

    def start_relay(self, listen: str = "127.0.0.1:0", extra: Sequence[str] = ()) -> None:
        # Syslog and line inputs on OS-picked ports: the benchmark must not depend on 5514/12345 being free.
        self.relay_addr = self._server("relay", ["--listen", listen, "--collector", self.collector_addr,
                                                 "--set", "syslog_listen=127.0.0.1:0",
                                                 "--set", "line_listen=127.0.0.1:0", *extra])  # fmt: skip

    def start_agent(self, n: int, rate: int) -> Proc:
        """Start the agent, wait for its READY line, then start the feeder writing into its stdin (so no line
        waits for the agent to boot). Returns the feeder."""
        data = self.workdir / "agent"
        data.mkdir(exist_ok=True)
        argv = [*self.cmd, "agent", "--data", str(data), "--relay", self.relay_addr]
        argv += ["--source", "bench", "--stdin"]
        log_path = self.workdir / "agent.stderr.log"
        agent = Proc("logferry-agent", argv, log_path=log_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.procs["agent"] = agent
        try:
            _read_ready(agent, AGENT_READY_TIMEOUT)
        except StartupError:
            if not agent.alive():
                raise
            log(f"agent printed no READY line within {AGENT_READY_TIMEOUT:.0f}s; feeding it anyway")
        assert agent.popen.stdout is not None and agent.popen.stdin is not None
        threading.Thread(
            target=_drain, args=(agent.popen.stdout, self.workdir / "agent.stdout.log"), daemon=True
        ).start()
        feeder_argv = [sys.executable, str(BENCH_DIR / "latency.py"), "send", "--count", str(n)]
        feeder_argv += ["--rate", str(rate), "--stdout"]
        feeder = Proc("feeder", feeder_argv, log_path=self.workdir / "feeder.log", stdout=agent.popen.stdin)
        agent.popen.stdin.close()  # the feeder holds the write end now; the agent sees EOF when it exits
        return feeder

    def check_alive(self) -> None:
        """The servers must keep running; the agent may end, cleanly, once all of stdin is acknowledged."""
        for role, proc in self.procs.items():
            if role == "agent" and proc.popen.poll() == 0:
                continue
            if not proc.alive():
                raise BenchError(f"logferry {role} died (code {proc.popen.returncode}); see {self.workdir}")

    def stop(self) -> None:
        for role in ("agent", "relay", "collector"):
            proc = self.procs.pop(role, None)
            if proc is not None:
                proc.stop(timeout=20)

    @property
    def db_path(self) -> Path:
        return self.workdir / "collector" / "records.db"


class Records:
    """Read-only view of the collector's records table."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self.msg_col = ""

    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is None and self.path.exists():
            try:
                conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
                cols = [row[1] for row in conn.execute("PRAGMA table_info(records)")]
            except sqlite3.Error:
                return None
            if not cols:
                conn.close()
                return None
            self.msg_col = next((c for c in MSG_COLUMNS if c in cols), "")
            self._conn = conn
        return self._conn

    def progress(self) -> int:
        """Records durable at the collector: rows (``max(rowid)``, cheap, equal to count(*) for an
        insert-only table) plus batches received but not yet turned into rows (its inbox)."""
        conn = self._connect()
        if conn is None:
            return 0
        try:
            row = conn.execute(
                "SELECT (SELECT COALESCE(max(rowid), 0) FROM records) + "
                "(SELECT COALESCE(SUM(count), 0) FROM inbox)"
            ).fetchone()
        except sqlite3.Error:
            return 0
        return int(row[0] or 0)

    def rows(self) -> int:
        """Records turned into searchable rows."""
        conn = self._connect()
        if conn is None:
            return 0
        try:
            row = conn.execute("SELECT max(rowid) FROM records").fetchone()
        except sqlite3.Error:
            return 0
        return int(row[0] or 0)

    def counts(self) -> tuple[int, int]:
        """(count(*), count(DISTINCT msg))."""
        conn = self._connect()
        if conn is None:
            return 0, 0
        if not self.msg_col:
            raise BenchError(f"records has none of the columns {MSG_COLUMNS}")
        row = conn.execute(f"SELECT count(*), count(DISTINCT {self.msg_col}) FROM records").fetchone()
        return int(row[0]), int(row[1])

    def count(self) -> int:
        conn = self._connect()
        if conn is None:
            return 0
        return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])

    def latencies_ms(self) -> list[tuple[int, float]]:
        """(line seq, received_ns - embedded send ns in ms) for every timestamped record."""
        conn = self._connect()
        if conn is None or not self.msg_col:
            return []
        out: list[tuple[int, float]] = []
        for msg, received_ns in conn.execute(f"SELECT {self.msg_col}, received_ns FROM records"):
            raw = msg if isinstance(msg, bytes) else str(msg).encode()
            m = LAT_RE.search(raw)
            if m and received_ns:
                out.append((int(m.group(1)), (int(received_ns) - int(m.group(2))) / 1e6))
        return out

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _first_send_ns(records: Records) -> int:
    """The embedded send time of line 1 (the feeder stamps it just before writing it)."""
    conn = records._connect()
    if conn is None or not records.msg_col:
        raise BenchError("collector store not readable")
    row = conn.execute(
        f"SELECT {records.msg_col} FROM records WHERE {records.msg_col} LIKE 'LAT 0000000001 %' LIMIT 1"
    ).fetchone()
    if row is None:
        raise BenchError("line 1 not found at the collector")
    raw = row[0] if isinstance(row[0], bytes) else str(row[0]).encode()
    m = LAT_RE.search(raw)
    if m is None:
        raise BenchError("line 1 has no timestamp")
    return int(m.group(2))


def _wait_durable(cluster: Cluster, records: Records, n: int, timeout: float) -> int:
    """Wait until ``n`` records are durable at the collector; return time_ns when that was first seen."""
    deadline = time.monotonic() + timeout
    while records.progress() < n:
        if time.monotonic() > deadline:
            raise BenchError(
                f"logferry: only {records.progress()} of {n} records durable after {timeout:.0f}s"
            )
        cluster.check_alive()
        time.sleep(0.02)
    return time.time_ns()


def _wait_records(cluster: Cluster, records: Records, n: int, timeout: float) -> int:
    """Wait until the collector holds ``n`` searchable rows; return time_ns when ``max(rowid)`` showed it."""
    deadline = time.monotonic() + timeout
    while True:
        if records.rows() >= n:
            seen_ns = time.time_ns()
            if records.count() >= n:
                return seen_ns
        if time.monotonic() > deadline:
            raise BenchError(f"logferry: only {records.count()} of {n} records after {timeout:.0f}s")
        cluster.check_alive()
        time.sleep(0.02)


def _up(cmd: list[str], name: str) -> Cluster:
    cluster = Cluster(cmd, OUT_DIR / "logferry" / name)
    cluster.start_collector()
    cluster.start_relay()
    return cluster


def throughput(cmd: list[str], n: int, rep: int, timeout: float) -> tuple[float, float]:
    """(durable, searchable) msgs/s: n / (first line written into the agent's stdin -> n records committed
    at the collector), and the same until all n are searchable rows."""
    cluster = _up(cmd, f"tput-{rep}")
    records = Records(cluster.db_path)
    feeder: Proc | None = None
    try:
        feeder = cluster.start_agent(n, 0)
        t_durable = _wait_durable(cluster, records, n, timeout)
        t_rows = _wait_records(cluster, records, n, timeout)
        first = _first_send_ns(records)
        durable, rows = (t_durable - first) / 1e9, (t_rows - first) / 1e9
        log(f"logferry rep {rep}: {n} records durable at the collector in {durable:.2f}s = {n / durable:,.0f}"
            f" msgs/s; searchable in {rows:.2f}s = {n / rows:,.0f} msgs/s")  # fmt: skip
        return n / durable, n / rows
    finally:
        records.close()
        if feeder is not None:
            feeder.stop(timeout=5)
        cluster.stop()


def latency(cmd: list[str], rate: int, count: int, warmup: int, timeout: float) -> dict[str, Any]:
    """Paced timestamped lines into the agent; latency = received_ns (collector commit) - embedded send ns.
    The first ``warmup`` lines are sent but left out of the percentiles."""
    cluster = _up(cmd, "latency")
    records = Records(cluster.db_path)
    feeder: Proc | None = None
    try:
        feeder = cluster.start_agent(warmup + count, rate)
        _wait_records(cluster, records, warmup + count, timeout)
        res = latency_stats(records.latencies_ms(), rate, count, warmup)
        log(f"logferry latency at {rate}/s: p50 {res['p50_ms']:.2f} ms, p99 {res['p99_ms']:.2f} ms")
        return res
    finally:
        records.close()
        if feeder is not None:
            feeder.stop(timeout=5)
        cluster.stop()


def loss(cmd: list[str], n: int, kill_at: float, quiet: float, timeout: float) -> dict[str, Any]:
    """kill -9 of the relay once the collector holds ``kill_at`` x n records; restart on the same data dir
    and port; wait for quiescence; lost = n - distinct lines, duplicated = rows - distinct lines."""
    cluster = _up(cmd, "loss")
    records = Records(cluster.db_path)
    feeder: Proc | None = None
    try:
        feeder = cluster.start_agent(n, 0)
        target = int(n * kill_at)
        deadline = time.monotonic() + timeout
        while records.progress() < target:
            if time.monotonic() > deadline:
                raise BenchError(f"logferry: {records.progress()} of {target} records before the kill")
            cluster.check_alive()
            time.sleep(0.02)
        at_kill = records.progress()
        relay_port = cluster.relay_addr.rsplit(":", 1)[1]
        cluster.procs.pop("relay").kill9()
        cluster.start_relay(listen=f"127.0.0.1:{relay_port}")
        log(f"logferry relay killed at {at_kill} records durable at the collector; restarted on {relay_port}")
        fed = feeder
        wait_for("the feeder to finish", lambda: not fed.alive(), timeout, interval=0.2)
        wait_quiescent("collector records", records.count, quiet=quiet, timeout=timeout)
        rows, distinct = records.counts()
        cluster.check_alive()
        res = {
            "sent": n,
            "killed_at_records": at_kill,
            "rows": rows,
            "distinct": distinct,
            "lost": n - distinct,
            "duplicated": rows - distinct,
        }
        log(f"logferry kill -9 of the relay: lost {res['lost']}, duplicated {res['duplicated']} of {n}")
        return res
    finally:
        records.close()
        if feeder is not None:
            feeder.stop(timeout=5)
        cluster.stop()


def check_cli(cmd: list[str]) -> None:
    """Fail fast (with the reason) if the logferry command cannot even show its help."""
    res = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=60, check=False)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise BenchError(f"`{' '.join(cmd)} --help` exited with {res.returncode}: {tail[0]}")
    missing = [r for r in ("collector", "relay", "agent") if not re.search(rf"\b{r}\b", res.stdout)]
    if missing:
        log(f"note: `logferry --help` does not mention {missing}; trying anyway")
