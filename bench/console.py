"""Console benchmark: the operator console and its API on big stores, measured over real HTTP.

A relay with 1,000,000 held records and a collector with 10,000,000 stored, full-text indexed records
(built straight into SQLite once and cached: ``console_stores.py``) run as real processes on OS-picked
127.0.0.1 ports (READY line). Then:

- **page load**: Debian's chromium, driven by Playwright, opens the relay's Held page and the collector's
  Search page and waits until NiceGUI has rendered the first table rows (the page's HTML, its scripts, the
  websocket and the first server-side render). The first load of each page is reported apart (cold).
  Without chromium: the page's HTML GET plus the API call the page makes (said so in the output).
- **page turn**: the Held page's "Next" button in the browser (until the next rows show), and
  ``GET /api/held?limit=50&offset=…`` for pages 2 … 20,000 (the API behind it, deep offsets included).
- **search**: ``GET /api/records/search`` with a term query and a time range (since/until), 60 queries over
  terms of very different frequency and windows of an hour to 30 days; p50 / p95 / max.

Targets: page load and page turn < 1 s; search p95 < 300 ms. Usage: bench/console.py [--held N]
[--records N] [--queries Q]. Prints the figures and whether each target is met; JSON in
bench/out/console.json. Every process it starts is stopped by PID; it never writes outside bench/out/ and
its cache under /tmp.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import console_stores
import httpx
from common import OUT_DIR, BenchError, Proc, free_ports, log, median, percentile

from logferry.demo.processes import StartError, read_ready

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
TARGET_PAGE_S = 1.0
TARGET_SEARCH_P95_S = 0.300
PAGE = 50
LOADS = 8
TURNS = 10
API_PAGES = (1, 2, 10, 100, 1000, 5000, 10_000, 19_999)
HELD_FILTERS = (("rule", "hold-pii"), ("source", "device-03"), ("level", "error"), ("q", "amount=42."))
WINDOWS_S = (3600, 86_400, 7 * 86_400, 30 * 86_400)
TERMS = (
    "GET", "gateway", "slow", "lookup", "login", "volume", "orders", "payments", "ETIMEDOUT", "ENOSPC",
    "user007", "user150", "\"host-03\"", "sessions", "true", '"payment gateway"', "user01*", "audit AND slow",
    "ECONNRESET OR EPIPE", "nosuchword",
)  # fmt: skip


def start_role(role: str, data: Path, extra: list[str], workdir: Path) -> tuple[Proc, dict[str, str]]:
    argv = [sys.executable, "-m", "logferry", role, "--data", str(data), "--listen", "127.0.0.1:0",
            "--api-listen", "127.0.0.1:0", *extra]  # fmt: skip
    log_path = workdir / f"{role}.log"
    proc = Proc(f"logferry-{role}", argv, log_path=log_path, stdout=subprocess.PIPE)
    try:
        ready = read_ready(proc.popen, log_path, timeout_s=120)
    except StartError as exc:
        raise BenchError(f"{role} did not start on {data}: {exc}") from None
    return proc, {str(k): str(v) for k, v in ready["listen"].items()}


def timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _get_page(client: httpx.Client, url: str, params: dict[str, str]) -> float:
    """Median seconds of three identical requests (the first may warm the page cache)."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        got = client.get(url, params=params)
        times.append(time.perf_counter() - t0)
        # A page past the matching total is rightly empty (a small store's deep filtered page); the first
        # page, or one within the total, must not be.
        body = got.json() if got.status_code == 200 else {}
        offset = int(params["offset"])
        if not body or (not body["items"] and (offset == 0 or body["total"] > offset)):
            raise BenchError(f"GET {url} {params}: {got.status_code} {got.text[:200]}")
    return median(times)


def api_page_turns(client: httpx.Client, relay: str, held: int) -> dict[str, Any]:
    """``GET /api/held`` for pages far apart (what the Held page's Next asks, deep pages included), and
    pages 1 and 10 with each kind of filter the page offers (each answer carries the matching total)."""
    url = f"{relay}/api/held"
    last = held // PAGE
    per_page = {
        str(n): _get_page(client, url, {"limit": str(PAGE), "offset": str((n - 1) * PAGE)})
        for n in sorted({p for p in API_PAGES if p < last} | {last})
    }
    filtered = {
        f"{k}={v} page {n}": _get_page(client, url, {k: v, "limit": str(PAGE), "offset": str((n - 1) * PAGE)})
        for k, v in HELD_FILTERS
        for n in (1, 10)
    }
    return {
        "per_page_s": per_page,
        "filtered_s": filtered,
        "max_s": max([*per_page.values(), *filtered.values()]),
    }


def search_queries(collector_db: Path, count: int) -> list[dict[str, str]]:
    """Term + time-range queries: the fixed terms, plus rare request ids read from the store itself."""
    rng = random.Random(5)
    conn = sqlite3.connect(f"file:{collector_db}?mode=ro", uri=True)
    try:
        (top,) = conn.execute("SELECT MAX(id) FROM records").fetchone()
        rare = []
        for _ in range(10):
            (msg,) = conn.execute("SELECT msg FROM records WHERE id = ?", (rng.randint(1, top),)).fetchone()
            rare.append(msg.rsplit("req=", 1)[1])  # a hex id: a bare FTS5 term
    finally:
        conn.close()
    terms = [*TERMS, *rare]
    t0 = console_stores.T0_NS // 10**9
    span = console_stores.SPAN_NS // 10**9
    out = []
    for i in range(count):
        window = WINDOWS_S[i % len(WINDOWS_S)]
        start = t0 + rng.randint(0, max(0, span - window))
        out.append({"q": terms[i % len(terms)], "since": str(start), "until": str(start + window)})
    return out


def search(client: httpx.Client, collector: str, queries: list[dict[str, str]]) -> dict[str, Any]:
    times: list[float] = []
    slow: list[tuple[float, dict[str, str]]] = []
    for params in queries:
        t0 = time.perf_counter()
        got = client.get(f"{collector}/api/records/search", params={**params, "limit": str(PAGE)})
        took = time.perf_counter() - t0
        if got.status_code != 200:
            raise BenchError(f"search {params}: {got.status_code} {got.text[:200]}")
        times.append(took)
        slow.append((took, params))
    slow.sort(key=lambda x: -x[0])
    return {
        "queries": len(times), "p50_s": median(times), "p95_s": percentile(times, 95), "max_s": max(times),
        "slowest": [{"s": round(t, 4), **p} for t, p in slow[:5]],
    }  # fmt: skip


def _load(page: Any, url: str, expect: Any) -> float:
    """Seconds from navigating to ``url`` until the page's table shows its first page of rows."""
    page.goto("about:blank")
    t0 = time.perf_counter()
    page.goto(url)
    expect(page.locator(".q-table tbody tr")).to_have_count(PAGE, timeout=60_000)
    return time.perf_counter() - t0


def browser(relay: str, collector: str) -> dict[str, Any]:
    """Page loads and Held page turns in chromium (Playwright driving Debian's build, no download)."""
    from playwright.sync_api import expect, sync_playwright

    out: dict[str, Any] = {"method": "chromium (Playwright): HTML, assets, websocket, first render"}
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for name, url in (("relay_held", f"{relay}/held"), ("collector_search", f"{collector}/")):
                fresh, cached = [], []
                for _ in range(LOADS + 1):
                    # A new context has an empty cache: an operator's first visit, every asset fetched.
                    context = chromium.new_context(viewport={"width": 1400, "height": 900})
                    page = context.new_page()
                    fresh.append(_load(page, url, expect))
                    cached.append(_load(page, url, expect))  # the same tab again: assets cached
                    context.close()
                out[name] = {"cold_s": fresh[0], "median_s": median(fresh[1:]), "max_s": max(fresh[1:]),
                             "cached_median_s": median(cached)}  # fmt: skip
            page = chromium.new_page(viewport={"width": 1400, "height": 900})
            rows = page.locator(".q-table tbody tr")
            page.goto(f"{relay}/held")
            expect(rows).to_have_count(PAGE, timeout=60_000)
            turns = []
            for _ in range(TURNS):
                first = rows.first.inner_text()
                t0 = time.perf_counter()
                page.get_by_role("button", name="Next").click()
                expect(rows.first).not_to_have_text(first, timeout=60_000)
                turns.append(time.perf_counter() - t0)
            out["held_next"] = {"median_s": median(turns), "max_s": max(turns)}
        finally:
            chromium.close()
    return out


def _in_browser(relay: str, collector: str) -> dict[str, Any]:
    """:func:`browser`, its failures (a page that never rendered its rows) as BenchError."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        return browser(relay, collector)
    except (PlaywrightError, AssertionError) as exc:
        raise BenchError(f"console page in chromium: {exc}") from exc


def without_browser(client: httpx.Client, relay: str, collector: str) -> dict[str, Any]:
    """No chromium here: the page's HTML GET plus the API call the page makes, as the load figure."""
    out: dict[str, Any] = {"method": "no chromium: HTML GET + the page's API call"}
    for name, html, api in (
        ("relay_held", f"{relay}/held", f"{relay}/api/held?limit={PAGE}"),
        ("collector_search", f"{collector}/", f"{collector}/api/records/search?limit={PAGE}"),
    ):
        loads = [timed(lambda h=html, a=api: (client.get(h), client.get(a))) for _ in range(LOADS + 1)]
        out[name] = {"cold_s": loads[0], "median_s": median(loads[1:]), "max_s": max(loads[1:])}
    return out


def verdicts(r: dict[str, Any]) -> dict[str, bool]:
    pages = r["pages"]
    load = max(pages["relay_held"]["max_s"], pages["collector_search"]["max_s"])
    turn = max(r["api_page_turn"]["max_s"], pages.get("held_next", {}).get("max_s", 0.0))
    return {
        "page_load_under_1s": load < TARGET_PAGE_S,
        "page_turn_under_1s": turn < TARGET_PAGE_S,
        "search_p95_under_300ms": r["search"]["p95_s"] < TARGET_SEARCH_P95_S,
    }


def measure(held: int = 1_000_000, records: int = 10_000_000, queries: int = 60) -> dict[str, Any]:
    workdir = OUT_DIR / "console"
    workdir.mkdir(parents=True, exist_ok=True)
    relay_data = console_stores.build_relay(held)
    collector_data = console_stores.build_collector(records)
    (nowhere,) = free_ports(1)  # the relay forwards nowhere: only its console and API are measured
    relay_proc, relay = start_role("relay", relay_data, [
        "--collector", f"127.0.0.1:{nowhere}", "--set", "syslog_listen=127.0.0.1:0",
        "--set", "line_listen=127.0.0.1:0", "--set", "syslog_tls_listen=127.0.0.1:0"], workdir)  # fmt: skip
    collector_proc, collector = start_role("collector", collector_data, [], workdir)
    r_url, c_url = f"http://{relay['api']}", f"http://{collector['api']}"
    result: dict[str, Any] = {"held": held, "records": records}
    try:
        with httpx.Client(timeout=120, trust_env=False) as client:
            total = client.get(f"{r_url}/api/held?limit=1").json()["total"]
            if total != held:
                raise BenchError(f"the relay says {total} held, expected {held}")
            log("console bench: page loads")
            result["pages"] = (
                _in_browser(r_url, c_url) if CHROMIUM.exists() else without_browser(client, r_url, c_url)
            )
            log("console bench: API page turns")
            result["api_page_turn"] = api_page_turns(client, r_url, held)
            log("console bench: searches")
            result["search"] = search(client, c_url, search_queries(collector_data / "records.db", queries))
    finally:
        relay_proc.stop(timeout=30)
        collector_proc.stop(timeout=30)
    result["targets_met"] = verdicts(result)
    (OUT_DIR / "console.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _ms(s: float) -> str:
    return f"{s * 1000:,.0f} ms"


def summary(r: dict[str, Any]) -> list[str]:
    p, t, s, ok = r["pages"], r["api_page_turn"], r["search"], r["targets_met"]

    def met(key: str) -> str:
        return "met" if ok[key] else "NOT met"

    lines = [
        f"console, relay with {r['held']:,} held, collector with {r['records']:,} records ({p['method']}):",
        f"  page load  Held {_ms(p['relay_held']['median_s'])} median, {_ms(p['relay_held']['max_s'])} max "
        f"(cold {_ms(p['relay_held']['cold_s'])}); Search {_ms(p['collector_search']['median_s'])} median, "
        f"{_ms(p['collector_search']['max_s'])} max (cold {_ms(p['collector_search']['cold_s'])}) "
        f"— target < 1 s: {met('page_load_under_1s')}",
    ]
    if "cached_median_s" in p["relay_held"]:
        held, found = p["relay_held"]["cached_median_s"], p["collector_search"]["cached_median_s"]
        lines.append(f"             with the browser's cache: Held {_ms(held)}, Search {_ms(found)} median")
    if "held_next" in p:
        lines.append(f"  page turn  Held 'Next' {_ms(p['held_next']['median_s'])} median, "
                     f"{_ms(p['held_next']['max_s'])} max; GET /api/held page 1…20,000: max "
                     f"{_ms(t['max_s'])} — target < 1 s: {met('page_turn_under_1s')}")  # fmt: skip
    else:
        lines.append(f"  page turn  GET /api/held page 1…20,000: max {_ms(t['max_s'])} "
                     f"— target < 1 s: {met('page_turn_under_1s')}")  # fmt: skip
    lines.append(f"  search     {s['queries']} term + time-range queries: p50 {_ms(s['p50_s'])}, "
                 f"p95 {_ms(s['p95_s'])}, max {_ms(s['max_s'])} "
                 f"— target p95 < 300 ms: {met('search_p95_under_300ms')}")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="console benchmark (see docs/BENCHMARKS.md)")
    ap.add_argument("--held", type=int, default=1_000_000, help="held records at the relay")
    ap.add_argument("--records", type=int, default=10_000_000, help="stored records at the collector")
    ap.add_argument("--queries", type=int, default=60, help="search queries (p95 over them)")
    args = ap.parse_args(argv)
    try:
        result = measure(args.held, args.records, args.queries)
    finally:
        Proc.stop_all()
    print("\n".join(summary(result)))
    details = {"api_page_turn": result["api_page_turn"], "slowest_searches": result["search"]["slowest"]}
    print(json.dumps(details, indent=1))
    return 0 if all(result["targets_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
