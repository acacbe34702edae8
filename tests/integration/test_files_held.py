"""Held whole files through the relay's REST API, with real processes: listed beside held records with
``kind: "file"``, shown one by one (the item source has a slash: ``dev-f/files``), released and deleted by
keys; a stale key is a 409 as for records. ``kind`` filters the list (API and ``logferry held list
--kind``), and the status counts held files beside held records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.integration.api_chain import cli
from tests.integration.files_chain import ITEMS, age, start_files_chain, write_file
from tests.integration.procs import Procs, query, wait_until

OPERATOR = {"X-Logferry-Operator": "kim"}


def _get(url: str, **params: Any) -> Any:
    got = httpx.get(url, params=params, trust_env=False, timeout=30)
    assert got.status_code == 200, got.text
    return got.json()


def _post(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url, json=body, headers=OPERATOR, trust_env=False, timeout=30)


def test_held_files_are_listed_shown_released_and_deleted_by_key(procs: Procs, tmp_path: Path) -> None:
    chain = start_files_chain(procs, tmp_path)
    sizes = {"a.hold": 200_000, "b.hold": 3_000, "free.bin": 10}
    shas = {
        name: write_file(chain.folder / name, size, seed=i) for i, (name, size) in enumerate(sizes.items())
    }
    for name in shas:
        age(chain.folder / name)
    chain.start_agent()
    api = "http://" + chain.relay.address("api")
    wait_until(lambda: _get(api + "/api/held")["total"] == 2, 30, "two held files")
    page = _get(api + "/api/held", rule="hold-marked")
    assert {(i["kind"], Path(i["path"]).name, i["digest"], i["size"]) for i in page["items"]} == {
        ("file", "a.hold", shas["a.hold"], 200_000),
        ("file", "b.hold", shas["b.hold"], 3_000),
    }
    assert all(i["source"] == ITEMS and i["level"] is None for i in page["items"])
    assert _get(api + "/api/held", q="a.hold")["total"] == 1  # text matches a file's path
    assert _get(api + "/api/held", level="info")["total"] == 0  # a level filter never selects a file
    seq = {Path(i["path"]).name: i["seq"] for i in page["items"]}
    # Kinds: the list filters by kind; the status counts held files beside held records.
    assert _get(api + "/api/held", kind="file")["total"] == 2
    records = _get(api + "/api/held", kind="record", limit=5)
    assert records == {"items": [], "total": 0, "limit": 5, "offset": 0}
    bad = httpx.get(api + "/api/held", params={"kind": "dir"}, trust_env=False)
    assert bad.status_code == 400 and "kind" in bad.json()["error"]
    status = _get(api + "/api/status")
    assert (status["held"], status["held_records"], status["held_files"]) == (2, 0, 2)
    listed = cli("held", "list", "--api", api, "--kind", "file", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["total"] == 2

    one = _get(f"{api}/api/held/{ITEMS}/{seq['a.hold']}")
    assert (one["kind"], one["rule"], one["digest"]) == ("file", "hold-marked", shas["a.hold"])
    assert httpx.get(f"{api}/api/held/{ITEMS}/999", trust_env=False).status_code == 404

    released = _post(api + "/api/held/release", {"keys": [{"source": ITEMS, "seq": seq["a.hold"]}]})
    assert released.status_code == 200 and released.json()["count"] == 1, released.text
    wait_until(lambda: chain.stored().get(str(chain.folder / "a.hold")) == shas["a.hold"], 30,
               "the released file at the collector")  # fmt: skip
    stale = _post(api + "/api/held/release", {"keys": [{"source": ITEMS, "seq": seq["a.hold"]}]})
    assert stale.status_code == 409 and "not held" in stale.json()["error"]

    deleted = _post(api + "/api/held/delete", {"keys": [{"source": ITEMS, "seq": seq["b.hold"]}]})
    assert deleted.status_code == 200 and deleted.json()["count"] == 1, deleted.text
    journal = tmp_path / "relay" / "journal.db"
    fates = query(journal, "SELECT seq, fate FROM file_items WHERE source = ?", ITEMS)
    assert (seq["b.hold"], 6) in fates and (seq["a.hold"], 5) in fates  # PURGED, RELEASED
    assert _get(api + "/api/held")["total"] == 0
    audit = _get(api + "/api/audit")
    assert [e["action"] for e in audit["items"]][:2] == ["held.delete", "held.release"]

    # The purged file's content leaves the relay's disk; the released one's is kept for resends.
    def at_relay(sha: str) -> bool:
        return sha in chain.relay_content()  # a file or a row of the small-content table

    wait_until(lambda: not at_relay(shas["b.hold"]), 10, "the purged file's content removed at the relay")
    assert at_relay(shas["a.hold"])
