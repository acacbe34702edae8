"""Syslog input benchmark: loggen → relay's syslog TCP input → collector commit, beside loggen → one rsyslogd
(imtcp) writing a file, in the same run.

logferry: N / (loggen start → N records committed at the collector; progress as in logferry_side).
rsyslog: N / (loggen start → out.log holds N lines), stage C of the plain chain alone (imtcp → omfile).
Both receive the same loggen stream: ``loggen -i -S -s 200 -n N`` over plain TCP, newline-framed.
"""

from __future__ import annotations

import re
import shutil
import time
from typing import Any

from common import OUT_DIR, BenchError, Proc, free_ports, listening, log, wait_for
from install import Tools
from latency import FileTail
from logferry_side import Cluster, Records
from rsyslog_peers import CONF_DIR


def _loggen(tools: Tools, n: int, port: int, log_path: Any) -> Proc:
    argv = [tools.loggen, "-i", "-S", "-s", "200", "-n", str(n), "-r", "100000000", "-I", "3600"]
    return Proc("loggen", [*argv, "127.0.0.1", str(port)], log_path=log_path, env=tools.loggen_env)


def logferry(cmd: list[str], tools: Tools, n: int, timeout: float) -> float:
    cluster = Cluster(cmd, OUT_DIR / "logferry" / "syslog-in")
    records = Records(cluster.db_path)
    gen: Proc | None = None
    try:
        cluster.start_collector()
        cluster.start_relay()
        port = int(cluster.listen["relay"]["syslog"].rsplit(":", 1)[1])
        t0 = time.monotonic()
        gen = _loggen(tools, n, port, cluster.workdir / "loggen.log")
        deadline = t0 + timeout
        while records.progress() < n:
            if time.monotonic() > deadline:
                raise BenchError(f"logferry syslog: {records.progress()} of {n} records after {timeout:.0f}s")
            cluster.check_alive()
            time.sleep(0.02)
        rate = n / (time.monotonic() - t0)
        log(f"logferry syslog input: {n} records committed at the collector = {rate:,.0f} msgs/s")
        return rate
    finally:
        if gen is not None:
            gen.stop(timeout=5)
        records.close()
        cluster.stop()


def rsyslog(tools: Tools, n: int, timeout: float) -> float:
    workdir = OUT_DIR / "peers" / "syslog-in"
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "C").mkdir(parents=True)
    (port,) = free_ports(1)
    text = (CONF_DIR / "C_plain.conf").read_text().replace("@PEERDIR@", str(workdir))
    (workdir / "C.conf").write_text(re.sub(r'port="\d+"', f'port="{port}"', text))
    pidfile = workdir / "C" / "rsyslogd.pid"
    argv = [tools.rsyslogd, "-n", "-f", str(workdir / "C.conf"), "-i", str(pidfile)]
    proc = Proc("rsyslogd-syslog-in", argv, log_path=workdir / "C" / "stderr.log")
    gen: Proc | None = None
    try:
        wait_for(f"rsyslogd on {port}", lambda: listening(port) or not proc.alive(), 20)
        tail = FileTail(workdir / "C" / "out.log")
        t0 = time.monotonic()
        gen = _loggen(tools, n, port, workdir / "loggen.log")
        deadline = t0 + timeout
        while tail.count() < n:
            if time.monotonic() > deadline or not proc.alive():
                raise BenchError(f"rsyslog syslog: {tail.lines} of {n} lines; see {workdir}")
            time.sleep(0.02)
        rate = n / (time.monotonic() - t0)
        log(f"rsyslog imtcp -> file: {n} lines = {rate:,.0f} msgs/s")
        return rate
    finally:
        if gen is not None:
            gen.stop(timeout=5)
        proc.stop(timeout=20)


def measure(cmd: list[str], tools: Tools, n: int, timeout: float) -> dict[str, Any]:
    ours = logferry(cmd, tools, n, timeout)
    peer = rsyslog(tools, n, timeout)
    return {"n": n, "logferry_msgs_per_s": ours, "rsyslog_msgs_per_s": peer, "ratio": ours / peer}
