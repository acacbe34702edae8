"""A large file survives cuts: the relay is killed (-9) twice mid-transfer and the agent restarted once; the
file arrives intact at the collector, each cut costs at most two chunks sent again, and the relay forwards
the file while it is still arriving (cut-through)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.integration.files_chain import start_files_chain, write_file
from tests.integration.procs import Procs, wait_until

SIZE = 64 << 20
CHUNK = 256 << 10


def partial_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "relay" / "files" / "partial").glob("*.part"))


def wait_partial(root: Path, at_least: int, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = partial_bytes(root)
        if got >= at_least:
            return got
        time.sleep(0.002)
    raise AssertionError(f"the relay's partial file never reached {at_least} bytes")


def test_a_large_file_arrives_intact_through_relay_kills_and_an_agent_restart(
    procs: Procs, tmp_path: Path
) -> None:
    chain = start_files_chain(procs, tmp_path, relay_api=False)
    sha = write_file(chain.folder / "big.bin", SIZE, seed=42)
    agent = chain.start_agent(chunk_bytes=CHUNK)
    cuts = 0
    for fraction in (0.15, 0.45):
        wait_partial(tmp_path, int(SIZE * fraction))
        chain.relay.kill9()
        cuts += 1
        assert 0 < partial_bytes(tmp_path) < SIZE, "the cut must fall mid-transfer"
        chain.relay = procs.restart(chain.relay)
    wait_partial(tmp_path, int(SIZE * 0.7))
    first = agent
    first.terminate()  # the agent restarts too: the transfer resumes from the relay's partial
    agent = procs.restart(first)
    wait_until(lambda: list(chain.stored().values()) == [sha], 90, "the file at the collector, sha256 equal")
    again = re.compile(r"from offset (\d+) of \d+ \((\d+) bytes sent again after a cut\)")
    before = [(int(o), int(n)) for o, n in again.findall(first.log_text())]
    after = [(int(o), int(n)) for o, n in again.findall(agent.log_text())]
    assert len(before) == 1 + cuts and all(o > 0 for o, _ in before[1:]), before  # each cut resumed
    assert sum(n for _, n in before) <= cuts * 2 * CHUNK, f"sent again {before} over {cuts} cuts"
    assert after and after[0][0] > 0, "after the agent's restart the transfer resumed, not restarted"
    relay_logs = "".join(p.log_text() for p in procs.running if p.role == "relay")
    resumed = re.findall(r"at offset (\d+)", relay_logs)
    assert len([o for o in resumed if int(o) > 0]) >= 2, "transfers resumed where the partial ended"
    chunks_again = [int(k) for k in re.findall(r"\[(\d+) chunks again\]", first.log_text())]
    assert all(k <= 2 for k in chunks_again), chunks_again  # each cut: at most two chunks again
    # Cut-through: the relay offered the file to the collector while it was still arriving.
    assert "while it is still arriving" in relay_logs


def test_a_1_gib_file_arrives_intact_through_two_relay_kills(procs: Procs, tmp_path: Path) -> None:
    """Issue 3's case at full size, default chunks: kill -9 of the relay at 30 % and 60 % of the file."""
    size, chunk = 1 << 30, 4 << 20
    chain = start_files_chain(procs, tmp_path, relay_api=False)
    sha = write_file(chain.folder / "huge.bin", size, seed=1024)
    agent = chain.start_agent(chunk_bytes=chunk)
    for fraction in (0.30, 0.60):
        wait_partial(tmp_path, int(size * fraction), timeout_s=120)
        chain.relay.kill9()
        assert 0 < partial_bytes(tmp_path) < size, "the cut must fall mid-transfer"
        chain.relay = procs.restart(chain.relay)
    wait_until(lambda: list(chain.stored().values()) == [sha], 240, "1 GiB at the collector, sha256 equal")
    stored = chain.content_path(sha)
    assert stored.stat().st_size == size
    chunks_again = [int(k) for k in re.findall(r"\[(\d+) chunks again\]", agent.log_text())]
    assert len(chunks_again) >= 2 and all(k <= 2 for k in chunks_again), chunks_again
