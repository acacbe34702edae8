"""The peer: a three-stage rsyslog chain (A ingest -> B relay -> C collector writing out.log).

Configs come from bench/peers/rsyslog/ (our copy of the shared peer reference). Each run materialises them
in a fresh work directory under bench/out/peers/, with ``@PEERDIR@`` replaced and the reference ports
15141-15144 replaced by free 127.0.0.1 ports. Every rsyslogd runs in the foreground (``-n``) with its own
pid file and is stopped by its PID.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import BENCH_DIR, OUT_DIR, BenchError, Proc, free_ports, listening, log, wait_for, wait_quiescent
from install import Tools
from latency import FileTail, latency_stats, read_latencies

CONF_DIR = BENCH_DIR / "peers" / "rsyslog"
REF_PORTS = (15141, 15142, 15143, 15144)
CHAINS: dict[str, tuple[str, str, str]] = {
    "plain": ("A.conf", "B_plain.conf", "C_plain.conf"),
    "reliable": ("A.conf", "B_relp_w4096.conf", "C_relp.conf"),
}
STAGE_START_TIMEOUT = 20.0
LOGGEN_SEQ_RE = re.compile(rb"seq: (\d+)")


@dataclass
class Chain:
    """One materialised chain; ``start()`` brings up C, B, A in that order, ``stop()`` tears them down."""

    tools: Tools
    kind: str
    workdir: Path
    ports: dict[int, int] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.ports = dict(zip(REF_PORTS, free_ports(len(REF_PORTS)), strict=True))
        for stage, conf in zip("ABC", CHAINS[self.kind], strict=True):
            (self.workdir / stage).mkdir(parents=True)
            text = (CONF_DIR / conf).read_text()
            text = text.replace("@PEERDIR@", str(self.workdir))
            text = re.sub(r'port="(1514[1-4])"', lambda m: f'port="{self.ports[int(m.group(1))]}"', text)
            (self.workdir / f"{stage}.conf").write_text(text)

    def listen_port(self, stage: str) -> int:
        conf = (self.workdir / f"{stage}.conf").read_text()
        m = re.search(r'input\(type="im(?:tcp|relp)"[^)]*port="(\d+)"', conf)
        if not m:
            raise BenchError(f"no input port in {stage}.conf")
        return int(m.group(1))

    @property
    def out_log(self) -> Path:
        return self.workdir / "C" / "out.log"

    def start_stage(self, stage: str) -> None:
        pidfile = self.workdir / stage / "rsyslogd.pid"
        pidfile.unlink(missing_ok=True)  # a stale pid file (after kill -9) would stop rsyslogd from starting
        argv = [self.tools.rsyslogd, "-n", "-f", str(self.workdir / f"{stage}.conf"), "-i", str(pidfile)]
        proc = Proc(f"rsyslogd-{self.kind}-{stage}", argv, log_path=self.workdir / stage / "stderr.log")
        self.procs[stage] = proc
        port = self.listen_port(stage)
        wait_for(
            f"rsyslogd {stage} on port {port}",
            lambda: listening(port) or not proc.alive(),
            STAGE_START_TIMEOUT,
        )
        if not proc.alive():
            raise BenchError(f"rsyslogd {stage} exited at start; see {self.workdir / stage}/stderr.log")

    def start(self) -> None:
        for stage in "CBA":
            self.start_stage(stage)

    def check_alive(self) -> None:
        for stage, proc in self.procs.items():
            if not proc.alive():
                raise BenchError(f"rsyslogd {stage} died; see {self.workdir / stage}/stderr.log")

    def stop(self) -> None:
        for stage in "ABC":
            proc = self.procs.pop(stage, None)
            if proc is not None:
                proc.stop(timeout=20)


def _loggen(tools: Tools, n: int, port: int, log_path: Path, rate: int = 100_000_000) -> Proc:
    argv = [
        tools.loggen,
        "-i",
        "-S",
        "-s",
        "200",
        "-n",
        str(n),
        "-r",
        str(rate),
        "-I",
        "3600",
        "127.0.0.1",
        str(port),
    ]
    return Proc("loggen", argv, log_path=log_path, env=tools.loggen_env)


def _wait_lines(chain: Chain, tail: FileTail, n: int, timeout: float, extra: Callable[[], None]) -> None:
    deadline = time.monotonic() + timeout
    while tail.count() < n:
        if time.monotonic() > deadline:
            raise BenchError(f"{chain.kind}: only {tail.lines} of {n} lines at C after {timeout:.0f}s")
        chain.check_alive()
        extra()
        time.sleep(0.02)


def throughput(tools: Tools, kind: str, n: int, rep: int, timeout: float) -> float:
    """msgs/s = n / (loggen start -> C's out.log holds n lines)."""
    chain = Chain(tools, kind, OUT_DIR / "peers" / f"{kind}-tput-{rep}")
    try:
        chain.start()
        tail = FileTail(chain.out_log)
        t0 = time.monotonic()
        gen = _loggen(tools, n, chain.listen_port("A"), chain.workdir / "loggen.log")
        try:

            def loggen_ok() -> None:
                if gen.popen.poll() not in (None, 0):
                    raise BenchError(f"loggen failed; see {chain.workdir}/loggen.log")

            _wait_lines(chain, tail, n, timeout, loggen_ok)
            elapsed = time.monotonic() - t0
        finally:
            gen.stop(timeout=5)
        rate = n / elapsed
        log(f"rsyslog {kind} rep {rep}: {n} lines in {elapsed:.2f}s = {rate:,.0f} msgs/s")
        return rate
    finally:
        chain.stop()


def latency(tools: Tools, kind: str, rate: int, count: int, warmup: int, timeout: float) -> dict[str, Any]:
    """Paced timestamped sender -> A; C's out.log tailed; latency = read time - embedded send time.
    The first ``warmup`` messages are sent but left out of the percentiles."""
    chain = Chain(tools, kind, OUT_DIR / "peers" / f"{kind}-latency")
    try:
        chain.start()
        tail = FileTail(chain.out_log)
        total = warmup + count
        argv = [sys.executable, str(BENCH_DIR / "latency.py"), "send", "--count", str(total)]
        argv += ["--rate", str(rate), "--port", str(chain.listen_port("A"))]
        sender = Proc("latency-sender", argv, log_path=chain.workdir / "sender.log")
        try:
            samples = read_latencies(tail, total, timeout, alive=sender.alive)
        finally:
            sender.stop(timeout=5)
        chain.check_alive()
        if len(samples) < total:
            log(f"rsyslog {kind} latency: only {len(samples)} of {total} lines arrived")
        res = latency_stats(samples, rate, count, warmup)
        log(f"rsyslog {kind} latency at {rate}/s: p50 {res['p50_ms']:.2f} ms, p99 {res['p99_ms']:.2f} ms")
        return res
    finally:
        chain.stop()


def _loggen_count(path: Path) -> int | None:
    """Messages loggen reports as sent (its closing ``average rate = ..., count=N`` line)."""
    counts = re.findall(r"average rate = .*?count=(\d+)", path.read_text(errors="replace"))
    return int(counts[-1]) if counts else None


def _seq_counts(path: Path) -> tuple[int, int]:
    """(lines with a loggen seq, distinct seqs) in C's out.log."""
    seen: set[int] = set()
    lines = 0
    with path.open("rb") as fh:
        for line in fh:
            m = LOGGEN_SEQ_RE.search(line)
            if m:
                lines += 1
                seen.add(int(m.group(1)))
    return lines, len(seen)


def loss(tools: Tools, n: int, kill_at: float, quiet: float, timeout: float) -> dict[str, Any]:
    """Reliable chain: kill -9 B once C holds ``kill_at`` x n lines, restart it, wait until quiet, count."""
    chain = Chain(tools, "reliable", OUT_DIR / "peers" / "reliable-loss")
    try:
        chain.start()
        tail = FileTail(chain.out_log)
        gen = _loggen(tools, n, chain.listen_port("A"), chain.workdir / "loggen.log")
        try:
            _wait_lines(chain, tail, int(n * kill_at), timeout, lambda: None)
            at_kill = tail.count()
            chain.procs.pop("B").kill9()
            chain.start_stage("B")
            log(f"rsyslog B killed with {at_kill} lines at C and restarted")
            wait_for("loggen to finish", lambda: not gen.alive(), timeout, interval=0.2)
            final = wait_quiescent("C's out.log", tail.count, quiet=quiet, timeout=timeout)
        finally:
            gen.stop(timeout=5)
        chain.check_alive()
        lines, distinct = _seq_counts(chain.out_log)
        res = {
            "sent": n,
            "sent_by_loggen": _loggen_count(chain.workdir / "loggen.log"),
            "killed_at_lines": at_kill,
            "lines_at_c": final,
            "seq_lines": lines,
            "distinct": distinct,
            "lost": n - distinct,
            "duplicated": lines - distinct,
        }
        log(f"rsyslog reliable kill -9 of B: lost {res['lost']}, duplicated {res['duplicated']} of {n}")
        return res
    finally:
        chain.stop()
