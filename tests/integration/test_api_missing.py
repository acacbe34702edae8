"""The missing list and reconcile-now through the REST API and the CLI, with real processes: records deleted
from the collector's store behind its back are found by ``POST /api/reconcile``, listed with their exact
ranges, resent (API and CLI) and back at the collector byte-identical; a range the relay no longer has is
lost until acknowledged; every action is in the audit log; a reconciliation without a collector is a 503."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.api_chain import call, cli, cli_json, get_json
from tests.integration.pipeline import write_lines
from tests.integration.procs import Procs, wait_until
from tests.integration.reconcile_chain import FREE_PORTS, SOURCE, ReconcileChain

N = 3_000


def start_on_demand(procs: Procs, root: Path) -> ReconcileChain:
    """Collector, relay (confirm, no scheduled reconciliation: only the API's), one agent with N lines."""
    collector = procs.start("collector", "--data", str(root / "collector"), "--listen", "127.0.0.1:0",
                            "--api-listen", "127.0.0.1:0")  # fmt: skip
    config = root / "relay.toml"
    config.write_text('[relay]\nheartbeat_s = 1\nreconcile_interval_s = 0\nresend_policy = "confirm"\n')
    relay = procs.start("relay", "--config", str(config), "--data", str(root / "relay"), "--listen",
                        "127.0.0.1:0", "--collector", collector.address(), *FREE_PORTS)  # fmt: skip
    relay.args[relay.args.index("--listen") + 1] = relay.address()  # restarts keep the agent's port
    chain = ReconcileChain(procs, root, collector, relay)
    write_lines(root / "app.log", 1, N)
    procs.start("agent", "--data", str(root / "agent"), "--relay", relay.address(), "--source", SOURCE,
                "--tail", str(root / "app.log"))  # fmt: skip
    wait_until(lambda: chain.stored() == N, 60, f"{N} records at the collector")
    return chain


def api(chain: ReconcileChain) -> str:
    return "http://" + chain.relay.address("api")


def settled(chain: ReconcileChain) -> None:
    """Wait until the collector acknowledged everything: items in flight are never reported missing."""
    wait_until(lambda: get_json(api(chain) + "/api/status")["outbox"]["records"] == 0, 20, "an empty outbox")


def reconcile(chain: ReconcileChain, who: str = "kim") -> dict[str, Any]:
    settled(chain)
    response = call("POST", api(chain) + "/api/reconcile", operator=who)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def listed(chain: ReconcileChain, **filters: Any) -> list[tuple[str, int, int, str]]:
    page = get_json(api(chain) + "/api/missing", **filters)
    assert page["total"] == len(page["items"])
    return sorted((e["kind"], e["first_seq"], e["last_seq"], e["state"]) for e in page["items"])


def test_find_resend_acknowledge_through_api_and_cli(procs: Procs, tmp_path: Path) -> None:
    chain = start_on_demand(procs, tmp_path)
    relay_cli = ("--api", api(chain))
    first = reconcile(chain)
    assert first["clean"] and first["new_entries"] == 0 and first["sources"] == 1

    # Damage behind the collector's back; reconcile now finds exactly that.
    original = chain.rows(1, N)
    chain.tamper(f"DELETE FROM records WHERE source = '{SOURCE}' AND (seq BETWEEN 100 AND 109 OR seq BETWEEN "
                 "2500 AND 2502)")  # fmt: skip
    report = reconcile(chain)
    assert not report["clean"] and report["new_entries"] == 2 and report["resent_entries"] == 0
    assert get_json(api(chain) + "/api/reconcile")["last_report"] == {
        k: v for k, v in report.items() if k != "audit_id"
    }
    assert listed(chain, state="open") == [
        ("missing_at_collector", 100, 109, "open"),
        ("missing_at_collector", 2500, 2502, "open"),
    ]
    assert listed(chain, kind="lost") == [] and listed(chain, source="elsewhere") == []
    page = get_json(api(chain) + "/api/missing", source=SOURCE, limit=1, offset=1)
    assert (page["total"], len(page["items"])) == (2, 1)
    assert page["items"][0]["first_seq"] == 100 and page["items"][0]["count"] == 10  # newest first
    metrics = call("GET", api(chain) + "/metrics").text
    assert 'logferry_relay_missing_entries{kind="missing_at_collector",state="open"} 2.0' in metrics
    assert "logferry_relay_reconcile_last_clean 0.0" in metrics
    by_range = {e["first_seq"]: e["id"] for e in cli_json("missing", "list", *relay_cli)["items"]}
    table = cli("missing", "list", *relay_cli, "--state", "open")
    assert table.returncode == 0 and "100-109" in table.stdout and "1-2 of 2 entries" in table.stdout

    # Bad input: 400 or 404 in the error shape, and nothing done.
    unknown = call("POST", api(chain) + "/api/missing/resend", {"ids": [by_range[100], 999_999]})
    assert unknown.status_code == 404 and "999999" in unknown.json()["error"] and unknown.json()["hint"]
    for bad in ({"ids": []}, {"ids": [0]}, {"ids": ["x"]}, {"keys": [1]}, [1]):
        refused = call("POST", api(chain) + "/api/missing/ack", bad)
        assert refused.status_code == 400 and set(refused.json()) == {"status", "error", "hint"}, bad
    assert call("GET", api(chain) + "/api/missing", state="bogus").status_code == 400
    assert call("GET", api(chain) + "/api/missing", limit=1001).status_code == 400
    no_tty = cli("missing", "resend", *relay_cli, str(by_range[100]))
    assert no_tty.returncode == 2 and "--yes" in no_tty.stderr
    assert cli("missing", "resend", *relay_cli, "seven").returncode == 2

    # Resend one through the API and one through the CLI: back at the collector, byte-identical.
    resent = call("POST", api(chain) + "/api/missing/resend", {"ids": [by_range[100]]}, operator="kim").json()
    assert (resent["entries"], resent["records"], resent["skipped"]) == (1, 10, [])
    by_cli = cli_json("missing", "resend", *relay_cli, str(by_range[2500]), "--yes", "--operator", "lee")
    assert (by_cli["entries"], by_cli["records"], by_cli["skipped"]) == (1, 3, [])
    assert listed(chain, state="resent") == [
        ("missing_at_collector", 100, 109, "resent"),
        ("missing_at_collector", 2500, 2502, "resent"),
    ]
    wait_until(lambda: chain.stored() == N, 20, "the resent records at the collector")
    assert chain.rows(1, N) == original  # msg and digest, every record

    # Reconcile again (CLI): clean, and both entries resolved.
    settled(chain)
    again = cli_json("reconcile", *relay_cli, "--operator", "lee")
    assert again["clean"] and again["new_entries"] == 0
    assert listed(chain, state="resolved") == [
        ("missing_at_collector", 100, 109, "resolved"),
        ("missing_at_collector", 2500, 2502, "resolved"),
    ]
    human = cli("reconcile", *relay_cli, "--last")
    assert human.returncode == 0 and "in sync" in human.stdout and "on demand only" in human.stdout

    # The relay keeps no acknowledged batches any more: what the collector loses now is lost for good.
    chain.relay.terminate()
    chain.relay = procs.restart(chain.relay, "--set", "outbox_keep_bytes=0")
    relay_cli = ("--api", api(chain))
    write_lines(tmp_path / "app.log", N + 1, N + 10)
    wait_until(lambda: chain.stored() == N + 10, 20, "10 more records at the collector")
    settled(chain)
    chain.tamper(f"DELETE FROM records WHERE source = '{SOURCE}' AND seq BETWEEN 500 AND 520")
    assert reconcile(chain)["new_entries"] == 1
    lost = get_json(api(chain) + "/api/missing", kind="lost")["items"]
    assert [(e["first_seq"], e["last_seq"], e["state"]) for e in lost] == [(500, 520, "open")]
    not_kept = call("POST", api(chain) + "/api/missing/resend", {"ids": [lost[0]["id"]]}).json()
    assert (not_kept["entries"], not_kept["skipped"]) == (0, [lost[0]["id"]])
    acked = call("POST", api(chain) + "/api/missing/ack", {"ids": [lost[0]["id"]]}, operator="kim").json()
    assert acked["acknowledged"] == 1
    assert reconcile(chain)["new_entries"] == 0  # an acknowledged range is never reported again
    shown = cli_json("missing", "list", *relay_cli, "--state", "acknowledged")["items"]
    assert [(e["kind"], e["first_seq"], e["acknowledged_by"]) for e in shown] == [("lost", 500, "kim")]
    assert cli_json("missing", "ack", *relay_cli, str(lost[0]["id"]), "--yes")["acknowledged"] == 0

    # Without a collector, reconcile now is a 503 that says what to do, and is audited as failed.
    chain.collector.terminate()
    wait_until(lambda: not get_json(api(chain) + "/api/reconcile")["collector_connected"], 20, "link down")
    down = call("POST", api(chain) + "/api/reconcile", operator="kim")
    assert down.status_code == 503 and "not connected" in down.json()["error"] and down.json()["hint"]
    failed = cli("reconcile", *relay_cli)
    assert failed.returncode == 1 and "cannot reconcile now" in failed.stderr

    # Every action is in the audit log, with who and how many; the relay's restart kept them.
    audit = get_json(api(chain) + "/api/audit", limit=100)["items"]
    summary = [(e["operator"], e["action"], e["count"], e["state"]) for e in reversed(audit)]
    user = summary[-1][0]  # the CLI's default operator ($USER, or anonymous)
    assert summary == [
        ("kim", "reconcile", 0, "done"),
        ("kim", "reconcile", 2, "done"),
        ("kim", "missing.resend", 1, "done"),
        ("lee", "missing.resend", 1, "done"),
        ("lee", "reconcile", 0, "done"),
        ("kim", "reconcile", 1, "done"),
        ("anonymous", "missing.resend", 0, "done"),
        ("kim", "missing.ack", 1, "done"),
        ("kim", "reconcile", 0, "done"),
        (user, "missing.ack", 0, "done"),
        ("kim", "reconcile", 0, "failed"),
        (user, "reconcile", 0, "failed"),
    ]
    assert audit[0]["detail"].startswith("TransportError") and audit[0]["target"] == {}
    assert [e["target"] for e in audit if e["action"] == "missing.ack"][-1] == {"ids": [lost[0]["id"]]}
