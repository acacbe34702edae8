"""Many small files in bundles (protocol version 2) with real processes: 3,000 files, some chunked beside
them, arrive each once and byte-identical while the relay, the agent and then the collector are killed -9
with bundles in flight; the agent and relay bundled (their log lines say so) and nothing was stored twice."""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.files_chain import ITEMS, start_files_chain, write_file
from tests.integration.procs import Procs, query, wait_until

# Enough files that each cut falls while bundles (up to 1,024 files a commit) are still arriving; the cuts
# look every 10 ms: a relay journals ~15k small files a second.
COUNT = 3000
CUT_POLL_S = 0.01


def relay_files(root: Path) -> int:
    rows = query(root / "relay" / "journal.db", "SELECT COUNT(*) FROM file_items")
    return int(rows[0][0]) if rows else 0


def test_small_files_arrive_once_each_through_relay_and_collector_kills(procs: Procs, tmp_path: Path) -> None:
    chain = start_files_chain(procs, tmp_path, relay_api=False)
    want: dict[str, str] = {}
    for i in range(COUNT):
        size = (i * 7919) % 9000 if i % 100 else 300_000  # every 100th is over 256 KiB: chunked, not bundled
        path = chain.folder / f"s{i:04d}.bin"
        want[str(path)] = write_file(path, size, seed=i % 997)  # some contents repeat: stored once
    agent = chain.start_agent(stable_s=0.2)
    wait_until(lambda: relay_files(tmp_path) >= 200, 60, "the relay journaled a first part", CUT_POLL_S)
    chain.relay.kill9()
    assert relay_files(tmp_path) < COUNT, "the cut must fall while files are still arriving"
    chain.relay = procs.restart(chain.relay)
    # The agent dies with bundles in flight: acknowledgements it never recorded are asked again, and the
    # relay answers them from its journal instead of taking the files twice.
    third = COUNT // 3
    wait_until(lambda: relay_files(tmp_path) >= third, 60, "a third of the files at the relay", CUT_POLL_S)
    agent.kill9()
    assert relay_files(tmp_path) < COUNT, "the agent's cut must fall while files are still arriving"
    procs.restart(agent)
    wait_until(lambda: len(chain.stored()) >= COUNT // 2, 60, "half the files at the collector")
    chain.collector.kill9()
    time.sleep(0.5)  # the relay's sender notices and backs off; bundles it had in flight are lost
    chain.collector = procs.restart(chain.collector)
    wait_until(lambda: len(chain.stored()) == COUNT, 120, f"{COUNT} manifests at the collector")
    assert chain.stored() == want
    rows = query(chain.files_db, "SELECT COUNT(*), COUNT(DISTINCT seq) FROM files WHERE source = ?", ITEMS)
    assert rows[0][0] == rows[0][1] == COUNT  # each item once
    assert len(chain.content_files()) == len(set(want.values()))  # each content once
    for path in chain.content_files()[:50]:
        assert path.read_bytes() and chain.content_path(path.name) == path
    logs = "".join(p.log_text() for p in procs.running)
    assert "files from dev-f" in logs  # the relay journaled bundles as groups (one summary line each)
