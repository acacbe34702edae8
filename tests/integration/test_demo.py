"""``logferry demo`` as an operator meets it: real processes, the consoles' REST API, a short run.

The demo must leave held items (records and a held file) and missing items (records and one whole file it
removed at the collector) listed at the relay; a resend through the relay's API must bring them back to the
collector; and after Ctrl-C its final accounting must say every line is accounted for, the resent items
counted as back.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.procs import wait_until

SAFETY_DURATION_S = 150  # the demo stops by itself even if this test never sends Ctrl-C


class DemoRun:
    """``logferry demo`` in a child process; its stdout collected line by line."""

    def __init__(self, data: Path) -> None:
        cmd = [sys.executable, "-m", "logferry", "demo", "--duration", str(SAFETY_DURATION_S),
               "--data", str(data), "--rate", "100"]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.popen = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def url(self, what: str) -> str:
        found = re.search(rf"{what} console\s+(http://127\.0\.0\.1:\d+)/", self.text)
        assert found, f"no {what} console address in the demo's output:\n{self.text}"
        return found.group(1)

    def token(self) -> str:
        found = re.search(r"API token\s+(lft_\S+)", self.text)
        assert found, f"no API token in the demo's output:\n{self.text}"
        return found.group(1)

    def interrupt(self, timeout_s: float) -> int:
        """Ctrl-C, as an operator ends the demo; SIGKILL only if it does not end in time."""
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGINT)
        try:
            code = self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)
            raise
        self._reader.join(10)
        return code


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoRun]:
    run = DemoRun(tmp_path / "demo")
    try:
        yield run
    finally:
        if run.popen.poll() is None:
            run.interrupt(60)


class Api:
    """The REST API of the demo's relay or collector, as the demo's operator (its printed token)."""

    def __init__(self, base: str, token: str) -> None:
        self.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                   trust_env=False, timeout=30)  # fmt: skip

    def status(self, path: str) -> int:
        return self.client.get(path).status_code

    def get(self, path: str, **params: Any) -> Any:
        got = self.client.get(path, params=params)
        assert got.status_code == 200, got.text
        return got.json()


def test_demo_lists_held_and_missing_and_a_resend_brings_them_back(demo: DemoRun) -> None:
    wait_until(lambda: "removed at the collector, behind its back" in demo.text, 90, "the demo's removal")
    relay, collector = Api(demo.url("relay"), demo.token()), Api(demo.url("collector"), demo.token())
    assert httpx.get(demo.url("relay") + "/api/held", trust_env=False).status_code == 401  # users: a token

    assert relay.get("/api/held", limit=200)["total"] > 0
    assert any(item["kind"] == "file" for item in relay.get("/api/held", q="export")["items"])

    listed: list[dict[str, Any]] = []

    def records_and_a_file_missing() -> bool:
        nonlocal listed
        listed = relay.get("/api/missing", state="open", limit=200)["items"]
        records = [e for e in listed if e["item"] == "record"]
        files = [e for e in listed if e["item"] == "file"]
        return sum(e["count"] for e in records) >= 12 and len(files) == 1

    wait_until(records_and_a_file_missing, 30, "the removed records and file on the relay's missing list")
    assert {e["kind"] for e in listed} == {"missing_at_collector"}
    assert {e["source"] for e in listed} == {"device-1", "device-2/files"}
    seqs = [s for e in listed if e["item"] == "record" for s in range(e["first_seq"], e["last_seq"] + 1)]
    (file_entry,) = [e for e in listed if e["item"] == "file"]
    for seq in seqs:  # really gone at the collector
        assert collector.status(f"/api/records/device-1/{seq}") == 404

    answer = relay.client.post("/api/missing/resend", json={"ids": [e["id"] for e in listed]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["files"] == 1 and answer.json()["records"] >= 12

    def all_back() -> bool:
        records = all(collector.status(f"/api/records/device-1/{s}") == 200 for s in seqs)
        stored = collector.get("/api/files", source="device-2/files")["items"]
        return records and any(f["seq"] == file_entry["first_seq"] for f in stored)

    wait_until(all_back, 30, "the resent records and file stored at the collector again")
    audit = relay.get("/api/audit", q="missing.resend")["items"]
    assert [(a["operator"], a["state"]) for a in audit] == [("demo-operator", "done")]

    started = time.monotonic()
    assert demo.interrupt(90) == 0, demo.text
    assert time.monotonic() - started < 90
    assert "every line is accounted for: yes" in demo.text, demo.text
    assert re.search(r"12 records of device-1 — 12 back \(resent\), 0 still missing", demo.text), demo.text
    assert "diagnostics-device-2.bin: back (resent); nothing of it is missing any more" in demo.text, (
        demo.text
    )
