"""Whole-file shipping benchmark: logferry agent → relay → collector beside ``rsync -a src/ dst/``, same run.

Two workloads, each a fresh folder: one large file (1 GiB by default) and many small files (10,000 of
4 KiB). rsync copies the folder over loopback, as the issue names it (``rsync -a src/
rsync://127.0.0.1:PORT/bench/dst/``: its daemon protocol over TCP, the daemon run the way inetd runs it, on
a port the OS picked), and, the harder reference, on the same machine (``rsync -a src/ dst/``: a sender and
a receiver over a pipe); neither fsyncs. logferry ships it through its three roles on 127.0.0.1, each hop
sha256-checked and fsynced before it is acknowledged. logferry's time runs from the agent's start (the
files are already in the folder, with old mtimes: complete at once) until the collector's ``files.db``
holds every manifest; the stages are read from the stores afterwards (when the agent had queued the last
file, when the relay had journaled it, when the collector had), and each role's CPU seconds over that time
from /proc (the agent's including its start). Each workload runs ``--rounds`` rounds (3)
of the four copies (rsync locally, over loopback, locally with --fsync; logferry), each after a sync(2)
and into a new folder (``settle``): one copy's time here varies two- to fourfold from run to run (this
VM's disk and page allocation), so the figures are medians, with every run kept. Figures: MB/s (10^6
bytes), files/s, and logferry / rsync ratios (of the medians, and the range over runs); the headline ratio
is against rsync over loopback. ``sha256_mb_s`` is this machine's single-core hashing speed, for context.

Each round of the small files also times logferry's two hops one at a time (``logferry_hops``), as when
each role has a machine of its own: agent → relay with the collector stopped, then relay → collector once
it starts again.

A third case ships the large file again while the relay is killed (kill -9) at 30 % and 60 % of it and
restarted on the same port: the file must arrive intact (sha256 of the collector's copy checked) and every
cut may cost each hop at most two chunks sent again (read from the senders' log lines; printed per cut).

Memory stays bounded: files are written and hashed in 1 MiB pieces. Everything lives under
``bench/out/files/`` and is removed at the start of the next run. Every process is started and stopped by
PID (``common.Proc``). Usage: bench/files.py [--big-mib M] [--small N] [--small-bytes B] [--skip-install]
[--no-cuts] [--rounds R]; ``measure()`` returns the figures for ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT_DIR, BenchError, Proc, log, median, wait_for
from logferry_side import AGENT_READY_TIMEOUT, Cluster, _drain, _read_ready, default_command

WORK = OUT_DIR / "files"
SOURCE = "bench"
ITEMS = SOURCE + "/files"
PIECE = 1 << 20
OLD_NS = 3600 * 10**9  # files are backdated an hour: complete at once for the agent, as if renamed in


def ensure_rsync(skip_install: bool) -> str:
    found = shutil.which("rsync")
    if found:
        return found
    if skip_install:
        raise BenchError("rsync is not installed (and --skip-install was given)")
    log("installing rsync with apt-get")
    subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "rsync"], check=True, timeout=600)
    found = shutil.which("rsync")
    if not found:
        raise BenchError("rsync is still missing after apt-get install rsync")
    return found


def _backdate(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - OLD_NS))


def make_big(folder: Path, size: int) -> None:
    """One file of ``size`` bytes that does not repeat within 1 MiB pieces (written piece by piece)."""
    folder.mkdir(parents=True)
    path = folder / "big.bin"
    with path.open("wb") as f:
        left, i = size, 0
        while left:
            seed = hashlib.sha256(i.to_bytes(8, "big")).digest()
            piece = (seed * (PIECE // 32))[: min(left, PIECE)]
            f.write(piece)
            left -= len(piece)
            i += 1
    _backdate(path)


def make_small(folder: Path, count: int, size: int) -> None:
    """``count`` files of ``size`` distinct bytes each (no two alike: nothing is deduplicated)."""
    folder.mkdir(parents=True)
    for i in range(count):
        seed = hashlib.sha256(b"small" + i.to_bytes(8, "big")).digest()
        path = folder / f"s{i:06d}.bin"
        path.write_bytes((seed * (size // 32 + 1))[:size])
        _backdate(path)


def settle() -> None:
    """Start a timed copy on equal terms: what earlier steps left dirty is written out first (sync(2)), so no
    copy pays for another's writeback (logferry's collector flushes with syncfs, which would).

    Nothing is deleted between the copies of one case either: on an ext4 without a journal (this VM's root)
    the kernel skips inodes freed in the last 60-300 s when it allocates one, rescanning them at every
    create (``recently_deleted`` in ``perf record``); after 10,000 files are deleted, creating 10,000 more
    in that group cost ~10x per file (0.2 s -> 2 s here). Deleting rsync's copy before logferry's run
    handed that cost to logferry alone.
    """
    os.sync()


def rsync_copy(rsync: str, src: Path, dst: Path, *extra: str) -> float:
    shutil.rmtree(dst, ignore_errors=True)
    t0 = time.monotonic()
    subprocess.run([rsync, "-a", *extra, f"{src}/", f"{dst}/"], check=True, timeout=3600)
    return time.monotonic() - t0


RSYNC_MODULE = "bench"


def rsync_tcp_copy(rsync: str, src: Path, dst: Path, *extra: str) -> float:
    """``rsync -a src/ rsync://127.0.0.1:PORT/bench/dst/``: rsync's own daemon protocol over a loopback TCP
    connection, the daemon run the way inetd runs it (the accepted socket as its stdin and stdout), on a
    port the OS picked. Both rsync processes are started here and waited for (stopped by PID on failure);
    the time runs from the client's start until both exited."""
    shutil.rmtree(dst, ignore_errors=True)
    conf, rsync_log = WORK / "rsyncd.conf", WORK / "rsync.log"
    conf.write_text(
        # The daemon writes as we do (started by root it would switch to nobody).
        f"use chroot = no\nuid = {os.getuid()}\ngid = {os.getgid()}\n"
        f"[{RSYNC_MODULE}]\npath = {WORK}\nread only = no\n",
        encoding="utf-8",
    )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(60)
        port = listener.getsockname()[1]
        target = f"rsync://127.0.0.1:{port}/{RSYNC_MODULE}/{dst.relative_to(WORK)}/"
        t0 = time.monotonic()
        client = Proc("rsync-client", [rsync, "-a", *extra, f"{src}/", target], log_path=rsync_log)
        try:
            conn, _ = listener.accept()
        except TimeoutError as exc:
            client.stop()
            raise BenchError(f"rsync did not connect to 127.0.0.1:{port} in 60 s (see {rsync_log})") from exc
        with conn:
            daemon = Proc("rsync-daemon", [rsync, "--daemon", f"--config={conf}"], log_path=rsync_log,
                          stdin=conn.fileno(), stdout=conn.fileno())  # fmt: skip
    try:
        client_rc = client.popen.wait(timeout=3600)
        daemon_rc = daemon.popen.wait(timeout=60)
        seconds = time.monotonic() - t0
    finally:
        client.stop()
        daemon.stop()
    if client_rc or daemon_rc:
        raise BenchError(f"rsync over loopback failed: client {client_rc}, daemon {daemon_rc}; {rsync_log}")
    return seconds


def _ro(path: Path) -> sqlite3.Connection | None:
    if not path.exists():
        return None
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return None


def _one(path: Path, sql: str, *params: object) -> tuple[Any, ...]:
    conn = _ro(path)
    if conn is None:
        return (None,)
    try:
        row = conn.execute(sql, params).fetchone()
        return tuple(row) if row else (None,)
    except sqlite3.OperationalError:
        return (None,)  # the table is not created yet
    finally:
        conn.close()


def _start_agent(cluster: Cluster, cmd: list[str], workdir: Path, folder: Path, extra: str = "") -> Proc:
    """Start an agent shipping ``folder`` to the cluster's relay (``extra``: more lines for its files
    input); returns once it printed READY."""
    config = workdir / "agent.toml"
    config.write_text(
        f'[agent]\nsource = "{SOURCE}"\nrelay = "{cluster.relay_addr}"\n'
        f'data_dir = "{workdir / "agent"}"\n\n'
        f'[[agent.inputs]]\ntype = "files"\npaths = ["{folder}"]\nstable_s = 1.0\n{extra}',
        encoding="utf-8",
    )
    agent = Proc("logferry-agent", [*cmd, "agent", "--config", str(config)],
                 log_path=workdir / "agent.stderr.log", stdout=subprocess.PIPE)  # fmt: skip
    cluster.procs["agent"] = agent
    _read_ready(agent, AGENT_READY_TIMEOUT)
    assert agent.popen.stdout is not None
    threading.Thread(
        target=_drain, args=(agent.popen.stdout, workdir / "agent.stdout.log"), daemon=True
    ).start()
    return agent


def _wait_stored(cluster: Cluster, files_db: Path, count: int, total: int, timeout: float) -> int:
    """Wait until the collector's ``files.db`` holds ``count`` manifests of ``total`` bytes; when it stored
    the last (its ``received_ns``)."""
    sql = "SELECT count(*), coalesce(sum(size), 0), max(received_ns) FROM files WHERE source = ?"

    def stored() -> bool:
        cluster.check_alive()
        got = _one(files_db, sql, ITEMS)
        return len(got) == 3 and got[0] == count and got[1] == total

    wait_for(f"{count} files at the collector", stored, timeout, interval=0.05)
    return int(_one(files_db, sql, ITEMS)[2])


def logferry_ship(
    cmd: list[str], workdir: Path, folder: Path, count: int, total: int, timeout: float
) -> dict[str, Any]:
    """Ship ``folder`` through collector ← relay ← agent; seconds from the agent's start to the last
    manifest at the collector, when each stage had the last file, and the CPU seconds each role used
    meanwhile (the agent's include its start)."""
    cluster = Cluster(cmd, workdir)
    try:
        cluster.start_collector()
        cluster.start_relay()
        # CPU the servers spend on the transfer: what they used to start is left out (the agent's start is
        # part of its time, as rsync's is of rsync's).
        before = {role: proc.cpu_s() for role, proc in cluster.procs.items()}
        start_ns = time.time_ns()
        t0 = time.monotonic()
        _start_agent(cluster, cmd, workdir, folder)
        files_db = workdir / "collector" / "files.db"
        _wait_stored(cluster, files_db, count, total, timeout)
        seconds = time.monotonic() - t0
        cpu = {role: round(proc.cpu_s() - before.get(role, 0.0), 2) for role, proc in cluster.procs.items()}
        agent_db = workdir / "agent" / "files.db"
        first, queued = _one(agent_db, "SELECT min(queued_ns), max(queued_ns) FROM files")
        relayed = _one(workdir / "relay" / "journal.db", "SELECT max(received_ns) FROM file_items")[0]
        stored = _one(files_db, "SELECT max(received_ns) FROM files")[0]

        def at(ns: Any) -> float | None:
            return None if ns is None else round((int(ns) - start_ns) / 1e9, 3)

        return {"seconds": seconds, "agent_queued_first_s": at(first), "agent_queued_last_s": at(queued),
                "relay_journaled_last_s": at(relayed), "collector_stored_last_s": at(stored),
                "cpu_s": cpu}  # fmt: skip
    finally:
        cluster.stop()


FILES_CONNECTED = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ +logferry\.sender: connected to (\S+) as \S+ for files "
)


def _files_session_opened(log_path: Path, target: str, since: float) -> float:
    """When the relay's files session to ``target`` opened at or after ``since`` (epoch seconds), from its log
    lines (local time, to the millisecond). Its records session connects after a back-off of its own, often a
    second apart: the collector's first connection is not when files could start."""
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        found = FILES_CONNECTED.match(line)
        if found and found.group(2) == target:
            at = dt.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if at >= since - 0.001:
                return at
    raise BenchError(f"the relay logged no files session to {target} after {since:.3f}; see {log_path}")


def logferry_hops(
    cmd: list[str], workdir: Path, folder: Path, count: int, total: int, timeout: float
) -> dict[str, Any]:
    """Each of logferry's two hops alone, as when every role has a machine of its own (devices, Server1 and
    Server2 are three machines; here the three roles share two cores): seconds and each role's CPU.

    Hop 1, agent → relay: the collector is stopped, so the relay journals and keeps everything; from the
    agent's start until the relay journaled the last file (its own ``received_ns``). Hop 2, relay →
    collector: the collector is started again on its port (after a sync(2)); from the moment the relay's
    files session opened (its log line saying so; the relay reconnects after its back-off) until the
    last manifest was stored (its ``received_ns``). Both hops sha256-check and fsync as in the chain.
    """
    cluster = Cluster(cmd, workdir)
    try:
        cluster.start_collector()
        cluster.start_relay()
        collector = cluster.procs.pop("collector")
        collector.stop()
        relay = cluster.procs["relay"]
        before = relay.cpu_s()
        start_ns = time.time_ns()
        agent = _start_agent(cluster, cmd, workdir, folder)
        journal = workdir / "relay" / "journal.db"
        sql = "SELECT count(*), coalesce(sum(size), 0), max(received_ns) FROM file_items"

        def journaled() -> bool:
            cluster.check_alive()
            got = _one(journal, sql)
            return len(got) == 3 and got[0] == count and got[1] == total

        wait_for(f"{count} files journaled at the relay", journaled, timeout, interval=0.02)
        hop1_s = (int(_one(journal, sql)[2]) - start_ns) / 1e9
        cpu1 = {"agent": round(agent.cpu_s(), 2), "relay": round(relay.cpu_s() - before, 2)}
        cluster.procs.pop("agent").stop()
        settle()
        before = relay.cpu_s()
        restarted = time.time()
        cluster.start_collector(cluster.collector_addr)
        collector_before = cluster.procs["collector"].cpu_s()  # its start left out, as in the chain
        last_ns = _wait_stored(cluster, workdir / "collector" / "files.db", count, total, timeout)
        cpu2 = {"relay": round(relay.cpu_s() - before, 2),
                "collector": round(cluster.procs["collector"].cpu_s() - collector_before, 2)}  # fmt: skip
        opened = _files_session_opened(workdir / "relay.stderr.log", cluster.collector_addr, restarted)
        hop2_s = last_ns / 1e9 - opened
        return {"hop1_s": hop1_s, "hop2_s": hop2_s, "hop1_cpu_s": cpu1, "hop2_cpu_s": cpu2}
    finally:
        cluster.stop()


CUT_AT = (0.3, 0.6)  # fractions of the large file at the relay when it is killed
AGAIN = re.compile(r"from offset (\d+) of \d+ \((\d+) bytes sent again after a cut\) \[(\d+) chunks again\]")
CHUNK = 4 << 20  # the agent's chunk_bytes in the cuts case (its default)


def _partial_bytes(relay_dir: Path) -> int:
    total = 0
    for p in (relay_dir / "files" / "partial").glob("*.part"):
        with contextlib.suppress(OSError):
            total += p.stat().st_size
    return total


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while piece := f.read(PIECE):
            h.update(piece)
    return h.hexdigest()


def logferry_cuts(cmd: list[str], workdir: Path, folder: Path, size: int, timeout: float) -> dict[str, Any]:
    """Ship the large file while the relay is killed (-9) at each of ``CUT_AT``, restarted on the same port;
    check the collector's copy (sha256) and count the chunks each hop sent again per cut."""
    want = _sha256_file(folder / "big.bin")
    cluster = Cluster(cmd, workdir)
    try:
        cluster.start_collector()
        no_api = ("--set", "api_listen=")  # a restarted relay is READY as soon as it accepts agents
        cluster.start_relay(extra=no_api)
        t0 = time.monotonic()
        _start_agent(cluster, cmd, workdir, folder, extra=f"chunk_bytes = {CHUNK}\n")
        relay_dir = workdir / "relay"
        for fraction in CUT_AT:

            def reached(f: float = fraction) -> bool:
                if _one(relay_dir / "journal.db", "SELECT count(*) FROM file_items")[0]:
                    raise BenchError("the file was complete at the relay before the cut: use a larger file")
                return _partial_bytes(relay_dir) >= f * size

            wait_for(f"{fraction:.0%} of the file at the relay", reached, timeout, interval=0.005)
            cluster.procs["relay"].kill9()
            if _partial_bytes(relay_dir) >= size:
                raise BenchError("the file was complete at the relay before the cut: use a larger file")
            cluster.start_relay(listen=cluster.relay_addr, extra=no_api)
        files_db = workdir / "collector" / "files.db"

        def arrived() -> bool:
            cluster.check_alive()
            return _one(files_db, "SELECT count(*) FROM files WHERE source = ?", ITEMS)[0] == 1

        wait_for("the file at the collector", arrived, timeout, interval=0.05)
        seconds = time.monotonic() - t0
        sha = bytes(_one(files_db, "SELECT sha256 FROM files WHERE source = ?", ITEMS)[0]).hex()
        got = _sha256_file(workdir / "collector" / "files" / sha[:2] / sha)
        if not sha == got == want:
            raise BenchError(
                f"the file arrived damaged: sent {want[:16]}, manifest {sha[:16]}, content {got[:16]}"
            )

        def resent(log_file: Path) -> list[int]:
            """Chunks sent again at each resume after a cut (from the sender's log lines)."""
            text = log_file.read_text(encoding="utf-8", errors="replace")
            return [int(k) for o, _n, k in AGAIN.findall(text) if int(o) > 0]

        to_relay = resent(workdir / "agent.stderr.log")
        to_collector = resent(workdir / "relay.stderr.log")
        worst = max([0, *to_relay, *to_collector])
        if worst > 2:
            raise BenchError(
                f"a cut cost more than two chunks: agent->relay {to_relay}, relay->collector {to_collector}"
            )
        return {"cuts": len(CUT_AT), "seconds": seconds, "mb_s": size / seconds / 1e6, "sha256_ok": True,
                "resent_chunks_agent_to_relay": to_relay, "resent_chunks_relay_to_collector": to_collector,
                "chunk_bytes": CHUNK}  # fmt: skip
    finally:
        cluster.stop()


def sha256_speed(nbytes: int = 256 << 20) -> float:
    """Single-core sha256 throughput of this machine, MB/s (hashing in-memory 1 MiB pieces)."""
    piece = os.urandom(PIECE)
    h = hashlib.sha256()
    t0 = time.monotonic()
    for _ in range(nbytes // PIECE):
        h.update(piece)
    return nbytes / (time.monotonic() - t0) / 1e6


def _case(
    cmd: list[str],
    rsync: str,
    name: str,
    folder: Path,
    count: int,
    total: int,
    timeout: float,
    rounds: int,
    hops: bool = False,
) -> dict[str, Any]:
    """``rounds`` rounds of rsync -a, rsync -a --fsync and logferry copying ``folder``, each into a new
    folder after a sync(2); the medians (and every run). With ``hops``, each round also times logferry's
    two hops one at a time (``logferry_hops``). No copy is deleted until all are measured (``settle``)."""
    runs: dict[str, list[float]] = {"rsync": [], "rsync_tcp": [], "rsync_fsync": [], "logferry": []}
    if hops:
        runs |= {"hop1": [], "hop2": []}
    stages: list[dict[str, Any]] = []
    hop_cpu: list[dict[str, Any]] = []
    copies: list[Path] = []
    try:
        for r in range(1, rounds + 1):
            log(f"files/{name}, round {r} of {rounds}: rsync -a locally, over loopback, --fsync; logferry")
            copies.append(WORK / f"{name}-{r}-rsync")
            settle()
            runs["rsync"].append(rsync_copy(rsync, folder, copies[-1]))
            copies.append(WORK / f"{name}-{r}-rsync-tcp")
            settle()
            runs["rsync_tcp"].append(rsync_tcp_copy(rsync, folder, copies[-1]))
            copies.append(WORK / f"{name}-{r}-rsync-fsync")
            try:
                settle()
                runs["rsync_fsync"].append(rsync_copy(rsync, folder, copies[-1], "--fsync"))
            except subprocess.CalledProcessError:
                log("this rsync has no --fsync; only plain rsync -a is measured")
            copies.append(WORK / f"{name}-{r}-logferry")
            settle()
            lf = logferry_ship(cmd, copies[-1], folder, count, total, timeout)
            runs["logferry"].append(lf["seconds"])
            stages.append(lf)
            if hops:
                copies.append(WORK / f"{name}-{r}-hops")
                settle()
                each = logferry_hops(cmd, copies[-1], folder, count, total, timeout)
                runs["hop1"].append(each["hop1_s"])
                runs["hop2"].append(each["hop2_s"])
                hop_cpu.append({"hop1": each["hop1_cpu_s"], "hop2": each["hop2_cpu_s"]})
    finally:
        for copy in copies:
            shutil.rmtree(copy, ignore_errors=True)
    every = {who: [round(x, 3) for x in secs] for who, secs in runs.items()}
    out: dict[str, Any] = {"files": count, "bytes": total, "rounds": rounds, "runs_s": every}
    for who, secs in runs.items():
        out[f"{who}_s"] = median(secs) if secs else None
        if secs:
            out[f"{who}_mb_s"] = total / out[f"{who}_s"] / 1e6
            out[f"{who}_files_s"] = count / out[f"{who}_s"]
    mid = out["logferry_s"]
    out["logferry_stages"] = min(stages, key=lambda st: abs(st["seconds"] - mid))  # the median run
    out["logferry_cpu_s_runs"] = [st["cpu_s"] for st in stages]
    # The comparator is rsync over loopback (its daemon protocol on 127.0.0.1, as logferry's hops
    # are); the local copy (sender and receiver over a pipe) is the harder reference and is kept beside it.
    lf_runs = runs["logferry"]
    out["ratio"] = out["rsync_tcp_s"] / out["logferry_s"]  # logferry speed / rsync speed, medians
    out["ratio_range"] = [min(runs["rsync_tcp"]) / max(lf_runs), max(runs["rsync_tcp"]) / min(lf_runs)]
    out["ratio_vs_rsync_local"] = out["rsync_s"] / out["logferry_s"]
    out["ratio_vs_rsync_local_range"] = [min(runs["rsync"]) / max(lf_runs), max(runs["rsync"]) / min(lf_runs)]
    if runs["rsync_fsync"]:
        out["ratio_vs_rsync_fsync"] = out["rsync_fsync_s"] / out["logferry_s"]
    for hop in ("hop1", "hop2") if hops else ():
        out[f"{hop}_ratio"] = out["rsync_tcp_s"] / out[f"{hop}_s"]
        out[f"{hop}_ratio_range"] = [
            min(runs["rsync_tcp"]) / max(runs[hop]),
            max(runs["rsync_tcp"]) / min(runs[hop]),
        ]
    if hops:
        out["hops_cpu_s_runs"] = hop_cpu
    return out


def measure(
    cmd: list[str] | None = None,
    *,
    big_bytes: int = 1 << 30,
    small_count: int = 10_000,
    small_bytes: int = 4096,
    skip_install: bool = False,
    cuts: bool = True,
    rounds: int = 3,
) -> dict[str, Any]:
    """Both workloads, rsync and logferry each; the figures (also written to bench/out/files.json)."""
    cmd = cmd or default_command()
    rsync = ensure_rsync(skip_install)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    version = subprocess.run([rsync, "--version"], capture_output=True, text=True, check=False).stdout
    results: dict[str, Any] = {"rsync_version": version.splitlines()[0] if version else "?",
                               "sha256_mb_s": sha256_speed(), "cpus": os.cpu_count()}  # fmt: skip
    try:
        log(f"files: writing one {big_bytes:,}-byte file")
        make_big(WORK / "big-src", big_bytes)
        results["big"] = _case(cmd, rsync, "big", WORK / "big-src", 1, big_bytes, max(600.0, big_bytes / 2e6),
                               rounds)  # fmt: skip
        if cuts:
            at = ", ".join(f"{c:.0%}" for c in CUT_AT)
            log(f"files/cuts: the large file again, the relay killed (-9) at {at}")
            results["cuts"] = logferry_cuts(cmd, WORK / "cuts-logferry", WORK / "big-src", big_bytes,
                                            max(600.0, big_bytes / 2e6))  # fmt: skip
            shutil.rmtree(WORK / "cuts-logferry", ignore_errors=True)
        shutil.rmtree(WORK / "big-src", ignore_errors=True)
        log(f"files: writing {small_count:,} files of {small_bytes:,} bytes")
        make_small(WORK / "small-src", small_count, small_bytes)
        total = small_count * small_bytes
        results["small"] = _case(cmd, rsync, "small", WORK / "small-src", small_count, total,
                                 max(600.0, small_count / 20), rounds, hops=True)  # fmt: skip
    finally:
        Proc.stop_all()
        shutil.rmtree(WORK, ignore_errors=True)
    (OUT_DIR / "files.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


def summary(r: dict[str, Any]) -> list[str]:
    """The table lines for these figures."""
    lines = []
    for case, label in (("big", "1 large file"), ("small", "small files")):
        c = r.get(case)
        if not isinstance(c, dict):
            continue
        fsync = f", rsync --fsync {c['rsync_fsync_mb_s']:,.0f} MB/s" if c.get("rsync_fsync_mb_s") else ""
        lines.append(
            f"files, {label} ({c['files']:,} x {c['bytes'] // c['files']:,} B): logferry "
            f"{c['logferry_mb_s']:,.0f} MB/s {c['logferry_files_s']:,.0f} files/s; rsync -a over loopback "
            f"{c['rsync_tcp_mb_s']:,.0f} MB/s {c['rsync_tcp_files_s']:,.0f} files/s, locally "
            f"{c['rsync_mb_s']:,.0f} MB/s{fsync}; logferry/rsync over loopback x{c['ratio']:.2f} "
            f"(medians of {c['rounds']} rounds; x{c['ratio_range'][0]:.2f}-x{c['ratio_range'][1]:.2f} run to "
            f"run), logferry/local rsync x{c['ratio_vs_rsync_local']:.2f}; CPU-s of the median run "
            + ", ".join(f"{role} {s:.2f}" for role, s in c["logferry_stages"].get("cpu_s", {}).items())
        )
        if "hop1_s" in c:
            each = [
                f"{who} {c[f'{hop}_s']:.2f} s x{c[f'{hop}_ratio']:.2f} "
                f"(x{c[f'{hop}_ratio_range'][0]:.2f}-x{c[f'{hop}_ratio_range'][1]:.2f})"
                for hop, who in (("hop1", "agent->relay"), ("hop2", "relay->collector"))
            ]
            lines.append(
                f"files, {label}, each hop alone (as on machines of their own): {', '.join(each)}; "
                f"rsync over loopback {c['rsync_tcp_s']:.2f} s"
            )
    c = r.get("cuts")
    if isinstance(c, dict):
        lines.append(
            f"files, 1 large file, relay killed -9 {c['cuts']} times: arrived intact (sha256 checked) in "
            f"{c['seconds']:.1f} s ({c['mb_s']:,.0f} MB/s); chunks sent again per cut: agent->relay "
            f"{c['resent_chunks_agent_to_relay']}, relay->collector {c['resent_chunks_relay_to_collector']}"
        )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description="whole-file shipping: logferry vs rsync -a (docs/BENCHMARKS.md)")
    ap.add_argument("--big-mib", type=int, default=1024, help="size of the large file in MiB (default 1024)")
    ap.add_argument("--small", type=int, default=10_000, help="number of small files (default 10,000)")
    ap.add_argument("--small-bytes", type=int, default=4096, help="bytes per small file (default 4096)")
    ap.add_argument("--skip-install", action="store_true", help="do not apt-get install rsync if missing")
    ap.add_argument("--no-cuts", action="store_true", help="skip the large file shipped through relay kills")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each copy per workload (default 3)")
    args = ap.parse_args()
    r = measure(big_bytes=args.big_mib << 20, small_count=args.small, small_bytes=args.small_bytes,
                skip_install=args.skip_install, cuts=not args.no_cuts,
                rounds=max(1, args.rounds))  # fmt: skip
    print(json.dumps(r, indent=2))
    print("\n".join(summary(r)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
