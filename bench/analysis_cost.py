"""What the collector's analysis (drain3 miner, error-rate windows) costs ingestion.

Runs the durable-throughput measurement of ``logferry_side`` (agent -> relay -> collector, one agent fed N
lines on stdin) with ``analysis_enabled`` true and false, alternating, ``--reps`` times each. Per run it
prints msgs/s until every record is durable at the collector and until all are searchable rows, and the
collector's CPU seconds until then (from /proc: less sensitive than msgs/s to other load on a shared
machine). Usage: ``.venv/bin/python bench/analysis_cost.py -n 1000000 --reps 2``. Processes listen on
127.0.0.1 only and are stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import logferry_side as side
from common import OUT_DIR, Proc, log


def one_run(cmd: list[str], n: int, name: str, analysis: bool, timeout: float) -> dict[str, float]:
    cluster = side.Cluster(cmd, OUT_DIR / "logferry" / name)
    extra = ["--set", f"analysis_enabled={'true' if analysis else 'false'}"]
    cluster.collector_addr = cluster._server("collector", ["--listen", "127.0.0.1:0", *extra])
    cluster.start_relay()
    records = side.Records(cluster.db_path)
    feeder: Proc | None = None
    try:
        feeder = cluster.start_agent(n, 0)
        t_durable = side._wait_durable(cluster, records, n, timeout)
        cpu_durable = cluster.procs["collector"].cpu_s()
        t_rows = side._wait_records(cluster, records, n, timeout)
        cpu_rows = cluster.procs["collector"].cpu_s()
        first = side._first_send_ns(records)
        return {
            "durable_msgs_s": n / ((t_durable - first) / 1e9),
            "searchable_msgs_s": n / ((t_rows - first) / 1e9),
            "collector_cpu_s_durable": cpu_durable,
            "collector_cpu_s_searchable": cpu_rows,
        }
    finally:
        records.close()
        if feeder is not None:
            feeder.stop(timeout=5)
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="durable throughput with analysis on and off")
    ap.add_argument("-n", type=int, default=1_000_000, help="records per run")
    ap.add_argument("--reps", type=int, default=2, help="runs per case (the cases alternate)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per run at most")
    args = ap.parse_args(argv)
    cmd = side.default_command()
    results: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    for rep in range(args.reps):
        for case in ("on", "off"):
            got = one_run(cmd, args.n, f"analysis-{case}-{rep}", case == "on", args.timeout)
            log(f"analysis {case}, run {rep + 1}: " + ", ".join(f"{k} {v:,.1f}" for k, v in got.items()))
            results[case].append(got)
    out = OUT_DIR / "analysis_cost.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"n": args.n, "results": results}, indent=2))
    for case, runs in results.items():
        shown = " · ".join(
            f"{r['durable_msgs_s']:,.0f}/{r['searchable_msgs_s']:,.0f} msgs/s, "
            f"CPU {r['collector_cpu_s_durable']:.1f}/{r['collector_cpu_s_searchable']:.1f} s"
            for r in runs
        )
        print(f"analysis {case} (durable/searchable): {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
