"""Held items through the REST API and the CLI, with real processes: review with filters and paging, release
(they reach the collector), delete (fate PURGED), and the audit log of both, which survives kill -9."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.integration.api_chain import ApiChain, call, cli, cli_json, get_json, start_api_chain
from tests.integration.pipeline import write_lines
from tests.integration.procs import Procs, query, wait_until

PURGED = 6  # logferry.model.Fate.PURGED, as the journal's counters store it


def held_total(chain: ApiChain, **filters: str) -> int:
    return int(get_json(chain.relay_api + "/api/held", **filters)["total"])


def feed(chain: ApiChain) -> None:
    """dev-a writes lines 1..100 and dev-b 1..50: every line ending in 3 is held by rule hold-cards."""
    for name, n in (("dev-a", 100), ("dev-b", 50)):
        path = chain.root / f"{name}.log"
        write_lines(path, 1, n)
        chain.start_agent(name, "--tail", str(path))
    wait_until(lambda: held_total(chain) == 15, 30, "15 held items")


def test_review_release_delete_and_audit(procs: Procs, tmp_path: Path) -> None:
    chain = start_api_chain(procs, tmp_path)
    feed(chain)
    api, relay_cli = chain.relay_api, ("--api", chain.relay_api)

    # Review: filters and paging.
    assert held_total(chain, source="dev-a") == 10
    assert held_total(chain, rule="hold-cards") == 15
    assert held_total(chain, q="N=13", source="dev-a") == 1  # substring, case-insensitive
    assert held_total(chain, level="info") == 15 and held_total(chain, level="warning") == 0
    assert held_total(chain, since="2000-01-01T00:00:00Z", until="2100-01-01") == 15
    hour_ago, in_an_hour = str(int(time.time()) - 3600), str(int(time.time()) + 3600)
    assert held_total(chain, since=hour_ago) == 15 and held_total(chain, since=in_an_hour) == 0
    assert held_total(chain, until=hour_ago, source="dev-a") == 0
    assert held_total(chain, since="2999-01-01") == 0  # past what 64-bit ns hold: no bound, not a 500
    page = get_json(api + "/api/held", source="dev-a", limit=4, offset=8)
    assert (page["total"], len(page["items"])) == (10, 2)
    one = get_json(api + "/api/held/dev-a/13")
    assert (one["rule"], one["level"]) == ("hold-cards", "info") and "n=13" in one["msg"]
    assert cli_json("held", "list", *relay_cli, "--source", "dev-b")["total"] == 5
    assert cli_json("held", "show", *relay_cli, "dev-b:3")["seq"] == 3

    # Release two by key through the API: they reach the collector.
    released = call("POST", api + "/api/held/release", {"keys": [{"source": "dev-a", "seq": 3},
                    {"source": "dev-a", "seq": 13}]}, operator="kim").json()  # fmt: skip
    assert released["count"] == 2
    wait_until(lambda: call("GET", chain.collector_api + "/api/records/dev-a/13").status_code == 200, 20,
               "dev-a:13 at the collector")  # fmt: skip
    # The same keys again: stale, nothing changes.
    stale = call("POST", api + "/api/held/release", {"keys": [{"source": "dev-a", "seq": 3}]})
    assert stale.status_code == 409 and "not held" in stale.json()["error"]

    # Release all of dev-b by filter through the CLI; search finds them at the collector.
    run = cli_json("held", "release", *relay_cli, "--all-matching", "--source", "dev-b", "--yes",
                   "--operator", "lee")  # fmt: skip
    assert run["count"] == 5

    def found_at_collector() -> int:
        page = get_json(chain.collector_api + "/api/records/search", q="card", source="dev-b")
        return len(page["items"])

    wait_until(lambda: found_at_collector() == 5, 20, "dev-b's released items searchable at the collector")

    # Delete: one by filter (API), one by key (CLI); they are gone and PURGED in the journal.
    gone = call(
        "POST", api + "/api/held/delete", {"filter": {"source": "dev-a", "q": "n=23"}}, operator="kim"
    )
    assert gone.json()["count"] == 1
    assert cli_json("held", "delete", *relay_cli, "dev-a:33", "--yes")["count"] == 1
    assert call("GET", api + "/api/held/dev-a/23").status_code == 404
    purged = query(chain.root / "relay" / "journal.db",
                   "SELECT SUM(n) FROM counters WHERE source = 'dev-a' AND fate = ?", PURGED)  # fmt: skip
    assert purged == [(2,)]
    assert held_total(chain) == 15 - 2 - 5 - 2

    # The audit log has all four actions, and keeps them across kill -9.
    audit = get_json(api + "/api/audit")
    assert audit["total"] == 4
    summary = [(e["operator"], e["action"], e["count"], e["state"]) for e in reversed(audit["items"])]
    assert summary[0] == ("kim", "held.release", 2, "done")
    assert summary[1] == ("lee", "held.release", 5, "done")
    assert [s[1] for s in summary[2:]] == ["held.delete", "held.delete"]
    assert audit["items"][0]["target"] == {"keys": ["dev-a:33"]}
    assert audit["items"][1]["target"] == {"filter": {"source": "dev-a", "q": "n=23"}}
    chain.relay.kill9()
    chain.relay = procs.restart(chain.relay)
    after = cli_json("audit", "--api", chain.relay_api)
    assert after["items"] == audit["items"]
    assert cli_json("audit", "--api", chain.relay_api, "--q", "lee")["total"] == 1

    # Status and metrics agree with what happened.
    status = cli_json("status", "--api", chain.relay_api)
    assert status["held"] == 6 and status["fate_totals"]["released"] == 7
    assert status["fate_totals"]["purged"] == 2
    metrics = call("GET", chain.relay_api + "/metrics").text
    assert "logferry_relay_held_records 6.0" in metrics
    assert 'logferry_relay_records{fate="released"} 7.0' in metrics
    human = cli("status", "--api", chain.relay_api)
    assert human.returncode == 0 and "held 6" in human.stdout
    collector = cli_json("status", "--api", chain.collector_api)
    assert collector["role"] == "collector" and collector["records"] >= 7


def test_rates_lag_and_time_bounded_bulk_action(procs: Procs, tmp_path: Path) -> None:
    chain = start_api_chain(procs, tmp_path)
    feed(chain)
    api = chain.relay_api

    def rates() -> dict[str, Any]:
        answer: dict[str, Any] = get_json(api + "/api/rates")
        return answer

    # 150 lines came in; what went out (not held, not dropped) is counted when the collector acknowledged it.
    totals = get_json(api + "/api/status")["fate_totals"]
    out = totals["forwarded"] + totals["redacted"]
    assert 0 < out < 135 and totals["held"] == 15
    wait_until(lambda: rates()["totals"]["records_out"] == out, 20, f"{out} records acked by the collector")
    wait_until(lambda: len(rates()["history"]) >= 2, 10, "two rate samples")
    now = rates()
    assert now["totals"]["records_in"] == 150 and now["totals"]["bytes_in"] > 0
    assert sum(r["records_in"] for r in now["history"]) >= 0 and now["interval_s"] == 2.0
    assert now["lag"] == {"oldest_unacked_at": None, "oldest_unacked_ns": None, "lag_s": 0.0, "records": 0}
    status = get_json(api + "/api/status")
    assert set(status["rates"]) >= {"records_in", "bytes_in", "records_out", "bytes_out"}
    assert status["lag"]["lag_s"] == 0.0
    metrics = call("GET", api + "/metrics").text
    assert "logferry_relay_input_records_total 150.0" in metrics
    assert f"logferry_relay_forwarded_records_total {out}.0" in metrics
    assert "logferry_relay_collector_lag_seconds 0.0" in metrics
    assert call("GET", api + "/api/rates", seconds="0").status_code == 400

    # A bulk action bounded in time moves only that span: nothing was held before an hour ago.
    old = call("POST", api + "/api/held/delete", {"filter": {"until": str(int(time.time()) - 3600)}}).json()
    assert old["count"] == 0 and held_total(chain) == 15
    recent = call("POST", api + "/api/held/release", {"filter": {"since": str(int(time.time()) - 3600),
                  "source": "dev-b"}}, operator="kim").json()  # fmt: skip
    assert recent["count"] == 5 and held_total(chain) == 10
    [entry] = get_json(api + "/api/audit", action="held.release", operator="kim")["items"]
    assert entry["target"]["filter"]["source"] == "dev-b" and "since" in entry["target"]["filter"]
    assert get_json(api + "/api/audit", action="held.")["total"] == 2
    assert get_json(api + "/api/audit", since="2999-01-01")["total"] == 0
    assert call("GET", api + "/api/audit", since="2026-02-01", until="2026-01-01").status_code == 400
