"""A real collector (and relay and agent) on 127.0.0.1: once records arrive, the analysis API answers with
their templates and the metrics count them; the search histogram and facets answer too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.api_chain import ANY_PORT, get_json
from tests.integration.pipeline import RELAY_RULES, write_lines
from tests.integration.procs import Procs, wait_until

pytestmark = pytest.mark.integration


def test_analysis_api_answers_after_records_arrive(procs: Procs, tmp_path: Path) -> None:
    collector = procs.start(
        "collector", "--data", str(tmp_path / "collector"), "--listen", ANY_PORT, "--api-listen", ANY_PORT,
        "--set", "analysis_interval_s=0.2", "--set", "analysis_warmup_records=0",
    )  # fmt: skip
    config = tmp_path / "relay.toml"
    config.write_text(f"[relay]\nheartbeat_s = 1\n{RELAY_RULES}", encoding="utf-8")
    relay = procs.start(
        "relay", "--config", str(config), "--data", str(tmp_path / "relay"), "--listen", ANY_PORT,
        "--collector", collector.address(),
    )  # fmt: skip
    log = tmp_path / "app.log"
    write_lines(log, 1, 200)
    procs.start("agent", "--data", str(tmp_path / "agent"), "--relay", relay.address(), "--source", "edge-1",
                "--tail", str(log))  # fmt: skip
    api = "http://" + collector.address("api")

    def mined() -> bool:
        return int(get_json(f"{api}/api/analysis/status")["mined"]) >= 140  # forwarded + redacted lines

    wait_until(mined, 60, "the collector's analysis to mine the records")
    page = get_json(f"{api}/api/analysis/templates")
    assert page["records"] >= 140 and page["items"]
    assert any("GET /api/orders 200" in t["template"] for t in page["items"])
    alerts = get_json(f"{api}/api/analysis/alerts", kind="new_template")
    assert alerts["total"] >= 1
    metrics = __import__("httpx").get(f"{api}/metrics", trust_env=False).text
    assert 'logferry_collector_analysis_alerts_total{kind="new_template"}' in metrics
    assert "logferry_collector_analysis_lag_records" in metrics
    assert "logferry_collector_analysis_pruned_rows_total 0.0" in metrics  # nothing is 30 days old
    hist = get_json(f"{api}/api/records/histogram", q="orders")
    assert hist["total"] >= 1 and hist["buckets"]
    facets = get_json(f"{api}/api/records/facets")
    assert [f["value"] for f in facets["source"]] == ["edge-1"]
