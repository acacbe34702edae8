"""logferry benchmark: logferry against its peer (an rsyslog chain), same workloads, same run.

`make bench` runs this file. Usage: bench/run.py [--quick] [--reps R] [-n N] [--only {peers,logferry}]
[--skip-install]. Progress goes to stderr; the results table to stdout and bench/out/results.json.
See docs/BENCHMARKS.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import console
import files
import logferry_side
import reconcile
import rsyslog_peers
import syslog_input
from common import OUT_DIR, REPO_DIR, BenchError, Proc, log, median
from install import ensure_tools, foreign_rsyslogd

LATENCY_RATE = 10_000
KILL_AT = 0.30


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="logferry vs rsyslog benchmark (see docs/BENCHMARKS.md)")
    ap.add_argument("--quick", action="store_true", help="1 repetition, N=200k, shorter latency run")
    ap.add_argument("--reps", type=int, help="repetitions of the throughput run (default 3, quick 1)")
    ap.add_argument("-n", type=int, help="messages per throughput and loss run (default 1M, quick 200k)")
    ap.add_argument("--only", choices=["peers", "logferry"], help="run one side only")
    ap.add_argument("--skip-install", action="store_true", help="do not run apt-get / unpack loggen")
    ap.add_argument(
        "--latency-seconds", type=float, help="length of the 10k msg/s latency run (default 10, quick 5)"
    )
    ap.add_argument("--logferry-cmd", help="command that runs logferry (default: the venv's logferry)")
    return ap.parse_args(argv)


class Runner:
    """Runs each measurement, records its result or its error, and never lets one failure stop the rest."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results
        self.errors: list[str] = results.setdefault("errors", [])
        self.last_exc: Exception | None = None

    def step(self, system: str, what: str, fn: Callable[[], Any]) -> Any:
        t0 = time.monotonic()
        self.last_exc = None
        try:
            value = fn()
        except (BenchError, OSError, ValueError, KeyError, RuntimeError, subprocess.TimeoutExpired) as exc:
            self.last_exc = exc
            msg = f"{system} {what}: {exc}"
            log(f"FAILED {msg}")
            self.errors.append(msg)
            self.results.setdefault(system, {})[what] = {"error": str(exc)}
            return None
        finally:
            Proc.stop_all()  # nothing of a step outlives it, whatever happened
        log(f"{system} {what} done in {time.monotonic() - t0:.0f}s")
        self.results.setdefault(system, {})[what] = value
        return value


def throughput_result(rates: list[float]) -> dict[str, Any]:
    return {"msgs_per_s": median(rates), "reps": rates}


@dataclass(frozen=True)
class Plan:
    """What one run measures (from the command line)."""

    n: int
    reps: int
    lat_count: int
    warmup: int
    timeout: float
    quiet: float
    skip_install: bool
    logferry_cmd: list[str]


def run_peers(run: Runner, plan: Plan) -> None:
    tools = run.step("setup", "install", lambda: ensure_tools(plan.skip_install))
    if tools is None:
        return
    run.results.pop("setup", None)
    for kind in ("plain", "reliable"):
        system = f"rsyslog_{kind}"

        def tput(kind: str = kind) -> dict[str, Any]:
            rates = [
                rsyslog_peers.throughput(tools, kind, plan.n, rep, plan.timeout) for rep in range(plan.reps)
            ]
            return throughput_result(rates)

        def lat(kind: str = kind) -> dict[str, Any]:
            return rsyslog_peers.latency(tools, kind, LATENCY_RATE, plan.lat_count, plan.warmup, plan.timeout)

        run.step(system, "throughput", tput)
        run.step(system, "latency", lat)
    run.step(
        "rsyslog_reliable",
        "loss",
        lambda: rsyslog_peers.loss(tools, plan.n, KILL_AT, plan.quiet, plan.timeout),
    )
    # Devices without an agent: the same loggen stream into the relay's syslog input and into rsyslog imtcp.
    run.step(
        "syslog_input",
        "throughput",
        lambda: syslog_input.measure(plan.logferry_cmd, tools, plan.n, plan.timeout),
    )


def run_logferry(run: Runner, plan: Plan) -> None:
    cmd = plan.logferry_cmd
    try:
        logferry_side.check_cli(cmd)
    except (BenchError, OSError, subprocess.TimeoutExpired) as exc:
        msg = f"logferry side not run: {exc}"
        log("=" * 78)
        log(f"{msg}. logferry is not runnable yet: its row stays empty, the peers' numbers still count.")
        log("=" * 78)
        run.errors.append(msg)
        run.results["logferry"] = {"error": str(exc)}
        return

    def tput() -> dict[str, Any]:
        pairs = [logferry_side.throughput(cmd, plan.n, rep, plan.timeout) for rep in range(plan.reps)]
        result = throughput_result([durable for durable, _ in pairs])
        result["searchable_msgs_per_s"] = median([rows for _, rows in pairs])
        result["searchable_reps"] = [rows for _, rows in pairs]
        return result

    if run.step("logferry", "throughput", tput) is None and isinstance(
        run.last_exc, logferry_side.StartupError
    ):
        log("logferry did not start; skipping its latency and loss runs")
        run.errors.append("logferry latency/loss: skipped (the daemons did not start)")
        return
    run.step(
        "logferry",
        "latency",
        lambda: logferry_side.latency(cmd, LATENCY_RATE, plan.lat_count, plan.warmup, plan.timeout),
    )
    run.step("logferry", "loss", lambda: logferry_side.loss(cmd, plan.n, KILL_AT, plan.quiet, plan.timeout))
    run.step("logferry", "reconcile", lambda: reconcile.measure(10_000_000, 3))
    run.step("logferry", "files", lambda: files.measure(cmd, skip_install=plan.skip_install))  # vs rsync
    # The operator console on 1M held records and 10M stored records (stores cached under /tmp).
    run.step("logferry", "console", console.measure)


def _get(results: dict[str, Any], system: str, what: str, key: str) -> float:
    value = results.get(system, {}).get(what, {})
    if isinstance(value, dict) and isinstance(value.get(key), int | float):
        return float(value[key])
    return math.nan


def _fmt(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)


def table(results: dict[str, Any]) -> str:
    rows = [
        ("rsyslog plain", "rsyslog_plain", "-"),
        ("rsyslog reliable", "rsyslog_reliable", "B"),
        ("logferry", "logferry", "relay"),
    ]
    head = f"{'system':<18} {'msgs/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'lost':>9} {'dup':>7}  kill -9 of"
    lines = [head, "-" * len(head)]
    for label, key, killed in rows:
        lines.append(
            f"{label:<18} {_fmt(_get(results, key, 'throughput', 'msgs_per_s'), ',.0f'):>10} "
            f"{_fmt(_get(results, key, 'latency', 'p50_ms'), '.2f'):>8} "
            f"{_fmt(_get(results, key, 'latency', 'p99_ms'), '.2f'):>8} "
            f"{_fmt(_get(results, key, 'loss', 'lost'), ',.0f'):>9} "
            f"{_fmt(_get(results, key, 'loss', 'duplicated'), ',.0f'):>7}  {killed}"
        )
    sys_ours = _get(results, "syslog_input", "throughput", "logferry_msgs_per_s")
    sys_peer = _get(results, "syslog_input", "throughput", "rsyslog_msgs_per_s")
    lines.append(
        f"syslog input (loggen TCP): logferry relay -> collector commit {_fmt(sys_ours, ',.0f')} msgs/s, "
        f"rsyslog imtcp -> file {_fmt(sys_peer, ',.0f')} msgs/s"
    )
    searchable = _get(results, "logferry", "throughput", "searchable_msgs_per_s")
    lines.append(
        f"logferry, until all N are searchable rows at the collector: {_fmt(searchable, ',.0f')} msgs/s"
    )
    for case, label in (("in_sync", "in sync"), ("few_differences", "3 differences")):
        rec = results.get("logferry", {}).get("reconcile", {})
        got = rec.get(case) if isinstance(rec, dict) else None
        if isinstance(got, dict):
            lines.append(f"logferry reconciliation, {got['items']:,} items, {label}: "
                         f"{got['seconds'] * 1000:.1f} ms, {got['bytes']:,} bytes")  # fmt: skip
    shipped = results.get("logferry", {}).get("files")
    if isinstance(shipped, dict) and "error" not in shipped:
        lines.extend(files.summary(shipped))
    measured = results.get("logferry", {}).get("console")
    if isinstance(measured, dict) and "error" not in measured:
        lines.extend(console.summary(measured))
    lines.append("")
    for peer in ("rsyslog_plain", "rsyslog_reliable"):
        ratios = results["ratios"][f"logferry/{peer}"]
        lines.append(
            f"logferry / {peer.replace('_', ' '):<17} msgs/s x{_fmt(ratios['msgs_per_s'], '.2f')}   "
            f"p50 x{_fmt(ratios['p50_ms'], '.2f')}   p99 x{_fmt(ratios['p99_ms'], '.2f')}"
        )
    p = results["params"]
    lines.append("")
    lines.append(
        f"N={p['n']:,} x {p['reps']} reps (median), 200-byte messages; latency at {p['latency_rate']:,}/s "
        f"over {p['latency_count']:,} messages after {p['latency_warmup']:,} of warm-up; "
        f"kill -9 at {int(p['kill_at'] * 100)} % of N"
    )
    lines.append(f"command: {results['command']}")
    if results["errors"]:
        lines.append("errors:")
        lines.extend(f"  - {e}" for e in results["errors"])
    return "\n".join(lines)


def ratios(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for peer in ("rsyslog_plain", "rsyslog_reliable"):
        r: dict[str, float] = {}
        for what, key in (("throughput", "msgs_per_s"), ("latency", "p50_ms"), ("latency", "p99_ms")):
            ours, theirs = _get(results, "logferry", what, key), _get(results, peer, what, key)
            r[key] = ours / theirs if theirs and not math.isnan(theirs) else math.nan
        out[f"logferry/{peer}"] = r
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _git_state() -> dict[str, Any]:
    """Which logferry was measured: HEAD and whether the tree had local changes (read-only git calls)."""

    def git(*args: str) -> str:
        res = subprocess.run(
            ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, check=False, timeout=30
        )
        return res.stdout.strip() if res.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "src"))}


def _on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    n = args.n or (200_000 if args.quick else 1_000_000)
    reps = args.reps or (1 if args.quick else 3)
    seconds = args.latency_seconds or (5.0 if args.quick else 10.0)
    lat_count = int(LATENCY_RATE * seconds)
    plan = Plan(
        n=n,
        reps=reps,
        lat_count=lat_count,
        warmup=LATENCY_RATE,  # 1 s of warm-up (connections, first batches) left out of the percentiles
        timeout=max(120.0, n / 2000),
        quiet=5.0 if args.quick else 10.0,
        skip_install=args.skip_install,
        logferry_cmd=shlex.split(args.logferry_cmd) if args.logferry_cmd else logferry_side.default_command(),
    )
    signal.signal(signal.SIGTERM, _on_sigterm)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "git": _git_state(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "params": {
            "n": n,
            "reps": reps,
            "latency_rate": LATENCY_RATE,
            "latency_count": lat_count,
            "latency_warmup": plan.warmup,
            "kill_at": KILL_AT,
        },
        "errors": [],
    }
    run = Runner(results)
    foreign_before = set(foreign_rsyslogd())
    try:
        if args.only != "logferry":
            run_peers(run, plan)
        if args.only != "peers":
            run_logferry(run, plan)
    finally:
        Proc.stop_all()
    leftover = set(foreign_rsyslogd()) - foreign_before
    if leftover:
        run.errors.append(
            f"rsyslogd processes appeared during the run and are still there: {sorted(leftover)}"
        )
    results["ratios"] = ratios(results)
    text = table(results)
    print(text)
    out = OUT_DIR / "results.json"
    out.write_text(json.dumps(_json_safe(results), indent=2) + "\n")
    log(f"results written to {out}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
