"""Whole files with real processes: a folder shipped agent → relay → collector, sha256 equal at the end,
identical content stored once, a held file released through the relay's API."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.files_chain import ITEMS, sha256_file, start_files_chain, write_file
from tests.integration.procs import Procs, query, wait_until


def test_a_folder_arrives_whole_and_identical_content_is_stored_once(procs: Procs, tmp_path: Path) -> None:
    chain = start_files_chain(procs, tmp_path)
    want: dict[str, str] = {}
    for i in range(12):
        size = [0, 1, 4095, 70_000, 1 << 20, (1 << 20) + 3][i % 6]
        path = chain.folder / f"f{i:02d}.bin"
        want[str(path)] = write_file(path, size, seed=i % 6)  # files i and i+6 have identical content
    chain.start_agent(chunk_bytes=64 * 1024)
    wait_until(lambda: len(chain.stored()) == 12, 30, "12 manifests at the collector")
    assert chain.stored() == want
    contents = chain.content_files()
    assert len(contents) == 6  # identical content stored once, every manifest kept
    for path in contents:
        assert sha256_file(path) == path.name
    api = "http://" + chain.collector.address("api")
    page = httpx.get(f"{api}/api/files", params={"source": ITEMS, "limit": 5}, trust_env=False).json()
    assert page["total"] == 12 and len(page["items"]) == 5
    one = page["items"][0]
    got = httpx.get(api + one["content"], trust_env=False)
    assert got.status_code == 200 and int(got.headers["content-length"]) == one["size"]
    assert got.headers["x-logferry-sha256"] == one["sha256"]
    import hashlib

    assert hashlib.sha256(got.content).hexdigest() == one["sha256"]
    # /metrics: 12 files each side, 8 small ones in a bundle or one frame, 4 chunked; nothing left to forward
    total = 2 * (0 + 1 + 4095 + 70_000 + (1 << 20) + (1 << 20) + 3)
    for base, role in ((chain.relay.address("api"), "relay"), (chain.collector.address("api"), "collector")):
        got_metrics = metric_values(httpx.get(f"http://{base}/metrics", trust_env=False).text)
        assert got_metrics[f"logferry_{role}_files_stored_total"] == 12
        assert got_metrics[f"logferry_{role}_files_whole_total"] == 8
        assert got_metrics[f"logferry_{role}_file_bytes_received_total"] == total
        if role == "relay":
            assert got_metrics["logferry_relay_files_forwarded_total"] == 12
            assert got_metrics["logferry_relay_file_bytes_sent_total"] == total
            assert got_metrics["logferry_relay_file_outbox_files"] == 0
            assert got_metrics["logferry_relay_file_bundles_sent_total"] >= 1  # the small ones went bundled


def metric_values(text: str) -> dict[str, float]:
    """Unlabelled samples of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if line and not line.startswith("#") and "{" not in name:
            out[name] = float(value)
    return out


def test_a_held_file_arrives_once_released(procs: Procs, tmp_path: Path) -> None:
    chain = start_files_chain(procs, tmp_path)
    sha_kept = write_file(chain.folder / "report.hold", 300_000, seed=7)
    sha_free = write_file(chain.folder / "free.bin", 1000, seed=8)
    chain.start_agent()
    wait_until(lambda: len(chain.stored()) == 1, 30, "the free file at the collector")
    journal = tmp_path / "relay" / "journal.db"
    wait_until(lambda: bool(query(journal, "SELECT 1 FROM file_items WHERE fate = 3")), 10, "a held file")
    assert list(chain.stored().values()) == [sha_free]
    api = "http://" + chain.relay.address("api")
    answer = httpx.post(f"{api}/api/held/release", json={"filter": {"rule": "hold-marked"}},
                        headers={"X-Logferry-Operator": "kim"}, trust_env=False, timeout=30)  # fmt: skip
    assert answer.status_code == 200, answer.text
    wait_until(lambda: len(chain.stored()) == 2, 30, "the released file at the collector")
    assert chain.stored()[str(chain.folder / "report.hold")] == sha_kept


@pytest.mark.parametrize("after", ["move_to", "delete_after"])
def test_shipped_files_are_moved_or_deleted_once_the_relay_has_them(
    procs: Procs, tmp_path: Path, after: str
) -> None:
    chain = start_files_chain(procs, tmp_path)
    done = tmp_path / "shipped"
    want: dict[str, str] = {}
    for i, size in enumerate([10, 4096, 300_000, (1 << 20) + 7]):  # bundled, bundled, chunked, chunked
        path = chain.folder / f"g{i}.bin"
        want[str(path)] = write_file(path, size, seed=i)
    extra = f'move_to = "{done}"' if after == "move_to" else "delete_after = true"
    chain.start_agent(chunk_bytes=64 * 1024, extra=extra)
    wait_until(lambda: not any(chain.folder.iterdir()), 30, f"the folder emptied ({after})")
    wait_until(lambda: chain.stored() == want, 30, "every manifest at the collector")
    if after == "move_to":
        assert {str(chain.folder / p.name): sha256_file(p) for p in done.iterdir()} == want
        # The device writes g0.bin again: the new one is shipped and moved beside the first, not over it.
        again = write_file(chain.folder / "g0.bin", 20, seed=9)
        wait_until(lambda: not any(chain.folder.iterdir()), 30, "the folder emptied again")
        assert sha256_file(done / "g0.bin") == want[str(chain.folder / "g0.bin")]
        assert sha256_file(done / "g0.1.bin") == again
    else:
        assert not done.exists()


@pytest.mark.skipif(os.name == "nt", reason="a Windows file name is UTF-16: these bytes cannot be one")
def test_files_whose_names_are_not_utf8_arrive_under_an_escaped_name(procs: Procs, tmp_path: Path) -> None:
    """A POSIX file name is bytes: Latin-1 names from an old device, or any garbage, are legal. Such a file
    arrives like any other, its manifest naming it with the bytes that are not UTF-8 escaped (``\\xe9``), and
    the agent goes on with the rest (it once stopped on the first such name). Restarted, it ships nothing
    twice: its queue kept the exact name."""
    chain = start_files_chain(procs, tmp_path)
    folder = os.fsencode(chain.folder)
    names = {b"caf\xe9.log": "caf\\xe9.log", b"bin\xff\xfe.bin": "bin\\xff\\xfe.bin",
             "한국어.log".encode(): "한국어.log", b"plain.log": "plain.log"}  # fmt: skip
    want: dict[str, str] = {}
    for i, (raw, shown) in enumerate(names.items()):
        path = Path(os.fsdecode(os.path.join(folder, raw)))
        size = 300_000 if raw.endswith(b".bin") else 1000 + i  # chunked, and bundled
        want[str(chain.folder / shown)] = write_file(path, size, seed=i)
    agent = chain.start_agent(chunk_bytes=64 * 1024)
    wait_until(lambda: chain.stored() == want, 30, "every manifest at the collector")
    assert agent.terminate() == 0, "the agent stopped on its own, or failed to stop"
    write_file(chain.folder / "later.log", 10, seed=9)
    want[str(chain.folder / "later.log")] = sha256_file(chain.folder / "later.log")
    chain.start_agent(chunk_bytes=64 * 1024)
    wait_until(lambda: chain.stored() == want, 30, "the new file at the collector")
    time.sleep(1.0)  # a second scan: nothing queued again
    assert len(query(chain.files_db, "SELECT seq FROM files")) == len(want)
    assert len(query(tmp_path / "agent" / "files.db", "SELECT seq FROM files")) == len(want)
