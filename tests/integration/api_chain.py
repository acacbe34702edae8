"""A collector and a relay with the test rules, both with their REST API on an OS-picked port, for the API
tests; plus a small JSON client and the ``logferry`` admin CLI run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.integration.pipeline import RELAY_RULES
from tests.integration.procs import Proc, Procs

ANY_PORT = "127.0.0.1:0"


@dataclass
class ApiChain:
    procs: Procs
    root: Path
    collector: Proc
    relay: Proc

    @property
    def relay_api(self) -> str:
        return "http://" + self.relay.address("api")

    @property
    def collector_api(self) -> str:
        return "http://" + self.collector.address("api")

    def start_agent(self, name: str, *args: str) -> Proc:
        return self.procs.start(
            "agent", "--data", str(self.root / f"agent-{name}"), "--relay", self.relay.address(),
            "--source", name, *args,
        )  # fmt: skip


def start_api_chain(procs: Procs, root: Path, relay_extra: str = "", collector_extra: str = "") -> ApiChain:
    """``relay_extra`` goes at the end of the relay's ``[relay]`` table, ``collector_extra`` is the
    collector's config file after ``[collector]`` (none when empty)."""
    configured: list[str] = []
    if collector_extra:
        collector_config = root / "collector.toml"
        collector_config.write_text(f"[collector]\n{collector_extra}\n", encoding="utf-8")
        configured = ["--config", str(collector_config)]
    collector = procs.start(
        "collector", *configured, "--data", str(root / "collector"), "--listen", ANY_PORT,
        "--api-listen", ANY_PORT,
    )  # fmt: skip
    config = root / "relay.toml"
    config.write_text(f"[relay]\nheartbeat_s = 1\n{relay_extra}\n{RELAY_RULES}", encoding="utf-8")
    relay = procs.start(
        "relay", "--config", str(config), "--data", str(root / "relay"), "--listen", ANY_PORT,
        "--api-listen", ANY_PORT, "--collector", collector.address(),
    )  # fmt: skip
    return ApiChain(procs, root, collector, relay)


def call(
    method: str, url: str, body: Any = None, *, token: str = "", operator: str = "", **params: Any
) -> httpx.Response:
    assert url.startswith("http://127.0.0.1:"), "tests only ever call the API on 127.0.0.1"
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if operator:
        headers["X-Logferry-Operator"] = operator
    return httpx.request(method, url, json=body, params=params or None, headers=headers, timeout=30,
                         trust_env=False)  # fmt: skip


def get_json(url: str, **params: Any) -> Any:
    response = call("GET", url, **params)
    assert response.status_code == 200, response.text
    return response.json()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``logferry ARGS`` with no stdin (as in CI): confirmations need --yes."""
    return subprocess.run(
        [sys.executable, "-m", "logferry", *args], capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, check=False, env=env,
    )  # fmt: skip


def cli_json(*args: str) -> Any:
    run = cli(*args, "--json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)
