"""What goes wrong at the API and the CLI gets a clear answer: 401 without the token, 400 (never 500) for bad
filters and bodies, 404 for unknown items, and CLI exit codes 1 (API) and 2 (usage)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.api_chain import ANY_PORT, call, cli
from tests.integration.procs import Proc, Procs

TOKEN = "s3cret-api-token"


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """One relay with an API token for the whole module; no collector is needed to review what it holds."""
    root = tmp_path_factory.mktemp("api-errors")
    token_file = root / "api.token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    procs = Procs(root)
    try:
        yield procs.start(
            "relay", "--data", str(root / "relay"), "--listen", ANY_PORT, "--api-listen", ANY_PORT,
            "--collector", "127.0.0.1:9", "--set", f"api_token_file={token_file}",
        )  # fmt: skip
    finally:
        procs.stop_all()


def test_the_token_is_required_except_for_health(relay: Proc) -> None:
    api = "http://" + relay.address("api")
    for path in ("/api/status", "/api/held", "/api/devices", "/api/audit", "/metrics"):
        refused = call("GET", api + path)
        assert refused.status_code == 401, path
        assert "bearer token" in refused.json()["error"]
        assert call("GET", api + path, token="wrong").status_code == 401
        assert call("GET", api + path, token=TOKEN).status_code == 200, path
    assert call("POST", api + "/api/held/release", {"filter": {}}).status_code == 401
    assert call("GET", api + "/api/health").json() == {"ok": True, "role": "relay", "store": "ok"}
    assert call("GET", api + "/openapi.json").status_code == 200
    run = cli("held", "list", "--api", api)
    assert run.returncode == 1 and "bearer token" in run.stderr
    env = {**os.environ, "LOGFERRY_TOKEN": TOKEN}
    assert cli("held", "list", "--api", api, env=env).returncode == 0


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"level": "loud"}, "level"),
        ({"since": "yesterday"}, "since"),
        ({"until": "1e400"}, "until"),
        ({"since": "2026-01-02", "until": "2026-01-01"}, "until must be later"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"limit": "many"}, "limit"),
        ({"rules": "x"}, "rules"),
    ],
)
def test_bad_filters_are_400_naming_the_parameter(relay: Proc, params: dict[str, str], names: str) -> None:
    response = call("GET", "http://" + relay.address("api") + "/api/held", token=TOKEN, **params)
    assert response.status_code == 400, response.text
    assert names in response.json()["error"] and response.json()["hint"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"keys": [{"source": "a", "seq": 1}], "filter": {}},
        {"keys": []},
        {"keys": [{"source": "a", "seq": 0}]},
        {"keys": [{"source": "", "seq": 1}]},
        {"filter": {"level": "loud"}},
        {"filter": {"since": "soon"}},
        {"filter": {"nope": 1}},
        [1, 2],
        "release",
    ],
)
def test_bad_action_bodies_are_400(relay: Proc, body: object) -> None:
    response = call("POST", "http://" + relay.address("api") + "/api/held/delete", body, token=TOKEN)
    assert response.status_code == 400, response.text
    assert response.json()["error"]


def test_unknown_items_are_404_and_stale_keys_409(relay: Proc) -> None:
    api = "http://" + relay.address("api")
    missing = call("GET", api + "/api/held/dev-x/7", token=TOKEN)
    assert missing.status_code == 404 and "dev-x:7 is not held" in missing.json()["error"]
    assert call("GET", api + "/api/held/dev-x/0", token=TOKEN).status_code == 400
    assert call("GET", api + "/api/held/dev-x/99999999999999999999", token=TOKEN).status_code == 400
    stale = call("POST", api + "/api/held/release", {"keys": [{"source": "dev-x", "seq": 7}]}, token=TOKEN)
    assert stale.status_code == 409 and "nothing was changed" in stale.json()["error"]
    assert call("GET", api + "/api/audit", token=TOKEN).json()["total"] == 0  # a refused action is no action


def test_cli_exit_codes(relay: Proc) -> None:
    api = "http://" + relay.address("api")
    env = {**os.environ, "LOGFERRY_TOKEN": TOKEN}
    usage = cli("held", "release", "--api", api, env=env)
    assert usage.returncode == 2 and "--all-matching" in usage.stderr
    bad_key = cli("held", "show", "dev-a", "--api", api, env=env)
    assert bad_key.returncode == 2 and "SOURCE:SEQ" in bad_key.stderr
    no_tty = cli("held", "delete", "--all-matching", "--api", api, env=env)
    assert no_tty.returncode == 0 and "nothing to do" in no_tty.stdout  # nothing held: nothing to confirm
    api_error = cli("held", "list", "--level", "loud", "--api", api, env=env)
    assert api_error.returncode == 1 and "level" in api_error.stderr
    down = cli("status", "--api", "http://127.0.0.1:9")
    assert down.returncode == 1
    assert "nothing answers at http://127.0.0.1:9" in down.stderr and "logferry relay" in down.stderr
    # HOST:PORT, as api_listen writes it, means http; what is no address at all says so
    assert cli("held", "list", "--api", relay.address("api"), env=env).returncode == 0
    for bad in ("ftp://127.0.0.1:9", "http://", "127.0.0.1:port"):
        run = cli("held", "list", "--api", bad, env=env)
        assert run.returncode == 1 and f"{bad!r} is not an API address" in run.stderr, run.stderr


def test_api_listen_off_and_port_in_use(procs: Procs, tmp_path: Path, relay: Proc) -> None:
    off = procs.start("collector", "--data", str(tmp_path / "c1"), "--listen", ANY_PORT, "--api-listen", "")
    assert "api" not in off.ready["listen"]
    taken = procs.start(
        "collector",
        "--data",
        str(tmp_path / "c2"),
        "--listen",
        ANY_PORT,
        "--api-listen",
        relay.address("api"),
    )
    assert "api" not in taken.ready["listen"]  # the data path runs on; the log says why there is no API
    assert f"cannot listen on {relay.address('api')}" in taken.log_text() and "api_listen" in taken.log_text()
