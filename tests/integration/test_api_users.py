"""Users and roles at a real relay's REST API: a viewer's token reads but a release answers 403 and writes
nothing; an operator's token releases and the audit log names that operator (not the header); the shared
api_token still works, as an operator named by the header; the console is mounted and wants a sign-in."""

from __future__ import annotations

import socket
from pathlib import Path

import argon2
import httpx

from tests.integration.api_chain import ANY_PORT, call
from tests.integration.procs import Procs, wait_until

SHARED = "shared-api-token"
KIM_TOKEN = "lft_kim-operator-token-for-the-test"
LEE_TOKEN = "lft_lee-viewer-token-for-the-test"


def config(root: Path) -> Path:
    from logferry.users.credentials import token_digest

    cheap = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    path = root / "relay.toml"
    path.write_text(
        f'[relay]\napi_token = "{SHARED}"\n\n'
        '[[relay.rules]]\nname = "hold-cards"\naction = "hold"\nmessage = \'card=\\d{16}\'\n\n'
        f'[[relay.users]]\nname = "kim"\nrole = "operator"\npassword_hash = "{cheap.hash("kim-password")}"\n'
        f'api_token_hash = "{token_digest(KIM_TOKEN)}"\n\n'
        f'[[relay.users]]\nname = "lee"\nrole = "viewer"\npassword_hash = "{cheap.hash("lee-password")}"\n'
        f'api_token_hash = "{token_digest(LEE_TOKEN)}"\n',
        encoding="utf-8",
    )
    return path


def send_lines(address: str, *lines: str) -> None:
    host, port = address.rsplit(":", 1)
    for line in lines:
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(line.encode() + b"\n")
            s.recv(1024)  # the reply comes once the line is journaled


def test_roles_at_the_rest_api(procs: Procs, tmp_path: Path) -> None:
    relay = procs.start(
        "relay", "--config", str(config(tmp_path)), "--data", str(tmp_path / "relay"), "--listen", ANY_PORT,
        "--api-listen", ANY_PORT, "--collector", "127.0.0.1:9",
    )  # fmt: skip
    api = "http://" + relay.address("api")
    send_lines(
        relay.address("line"), "pos-1&&charge card=4111111111111111", "pos-1&&charge card=5500000000000004"
    )

    def held_total() -> int:
        return int(call("GET", api + "/api/held", token=LEE_TOKEN).json()["total"])

    wait_until(lambda: held_total() == 2, 20, "two held records")
    assert call("GET", api + "/api/health").status_code == 200  # stays open
    assert call("GET", api + "/api/held").status_code == 401
    assert call("GET", api + "/api/held", token="lft_nobody").status_code == 401

    # A viewer reads, but may not act: 403, and nothing is written, not even a "started" audit entry.
    refused = call("POST", api + "/api/held/release", {"filter": {}}, token=LEE_TOKEN, operator="kim")
    assert refused.status_code == 403, refused.text
    assert "lee is a viewer" in refused.json()["error"] and refused.json()["hint"]
    assert call("POST", api + "/api/missing/ack", {"ids": [1]}, token=LEE_TOKEN).status_code == 403
    assert call("POST", api + "/api/reconcile", token=LEE_TOKEN).status_code == 403
    assert call("GET", api + "/api/audit", token=LEE_TOKEN).json()["total"] == 0
    assert held_total() == 2

    # An operator acts under their own name; the header cannot put another name in the audit log.
    key = {"keys": [{"source": "pos-1", "seq": 1}]}
    released = call("POST", api + "/api/held/release", key, token=KIM_TOKEN, operator="mallory")
    assert released.status_code == 200, released.text
    assert released.json()["count"] == 1
    # The shared api_token is an operator too, named by the header as before.
    deleted = call("POST", api + "/api/held/delete", {"filter": {}}, token=SHARED, operator="ops-bot")
    assert deleted.status_code == 200 and deleted.json()["count"] == 1
    audit = call("GET", api + "/api/audit", token=LEE_TOKEN).json()["items"]
    assert [(e["operator"], e["action"], e["state"], e["count"]) for e in audit] == [
        ("ops-bot", "held.delete", "done", 1),
        ("kim", "held.release", "done", 1),
    ]

    # With users, the console is mounted even though api_token is set, and it wants a sign-in.
    page = httpx.get(api + "/held", follow_redirects=False, timeout=10, trust_env=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/held"
    login = httpx.get(api + "/login", timeout=10, trust_env=False)
    assert login.status_code == 200 and "logferry relay" in login.text
    for secret in (SHARED, KIM_TOKEN, LEE_TOKEN, "kim-password", "$argon2id$"):
        assert secret not in relay.log_text()
