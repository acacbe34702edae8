"""schemathesis against each running role's /openapi.json: generated requests (valid and not) never get a 5xx,
and every answer matches the documented status codes, content types and response schemas.

Bounded: a few examples per operation and no deadline per example, so each role takes seconds. The relay
holds a few items and lists one missing record first, so the held and missing routes answer with data and
not only with empty pages."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.api_chain import ApiChain, call, get_json, start_api_chain
from tests.integration.pipeline import write_lines
from tests.integration.procs import Procs, query, wait_until

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
BOUNDED = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                   database=None)  # fmt: skip


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiChain]:
    root = tmp_path_factory.mktemp("api-schema")
    procs = Procs(root)
    try:
        chain = start_api_chain(procs, root)
        path = Path(root / "dev.log")
        write_lines(path, 1, 60)
        chain.start_agent("dev-s", "--tail", str(path))
        wait_until(lambda: get_json(chain.relay_api + "/api/held")["total"] == 6, 30, "6 held items")
        # One record lost at the collector behind its back, so the missing list has an entry to show.
        wait_until(
            lambda: get_json(chain.relay_api + "/api/status")["outbox"]["records"] == 0, 30, "all acked"
        )
        records = root / "collector" / "records.db"
        # Acked means in the collector's inbox; wait until seq 1 is a row before deleting it behind its back.
        seq_1 = "SELECT count(*) FROM records WHERE source = 'dev-s' AND seq = 1"
        wait_until(lambda: query(records, seq_1) == [(1,)], 30, "seq 1 stored as a row")
        with sqlite3.connect(records) as conn:
            conn.execute("DELETE FROM records WHERE source = 'dev-s' AND seq = 1")
        conn.close()
        assert call("POST", chain.relay_api + "/api/reconcile").json()["new_entries"] == 1
        yield chain
    finally:
        procs.stop_all()


def check_spec(base_url: str) -> list[str]:
    """Run every operation of the spec at ``base_url`` with valid and invalid generated input."""
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @BOUNDED
            def run(case: Any) -> None:
                case.call_and_validate(base_url=base_url, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # an operation without inputs has no invalid input
        checked.append(operation.label)
    return checked


def test_relay_api_conforms_to_its_spec(chain: ApiChain) -> None:
    checked = check_spec(chain.relay_api)
    assert "POST /api/held/release" in checked and "GET /api/held/{source}/{seq}" in checked
    assert {"GET /api/missing", "POST /api/missing/resend", "POST /api/missing/ack", "POST /api/reconcile",
            "GET /api/reconcile"} <= set(checked)  # fmt: skip


def test_collector_api_conforms_to_its_spec(chain: ApiChain) -> None:
    checked = check_spec(chain.collector_api)
    assert "GET /api/records/search" in checked and "GET /metrics" in checked
