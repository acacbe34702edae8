"""agent → relay → collector with real processes: exactly once, with each record's fate."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

from tests.integration.pipeline import (
    Chain,
    check_exactly_once,
    expected_counts,
    pin_port,
    start_chain,
    write_lines,
)
from tests.integration.procs import Proc, Procs, query, read_ready, wait_until


def wait_complete(chain: Chain, source: str, n: int, timeout_s: float) -> None:
    want = expected_counts(n)
    wait_until(
        lambda: (
            chain.stored(source) >= want["forwarded"] + want["redacted"]
            and len(chain.held_numbers(source)) >= want["held"]
        ),
        timeout_s,
        f"{source}: {want['forwarded'] + want['redacted']} records at the collector and {want['held']} held",
        interval_s=0.25,
    )


def test_200k_records_arrive_exactly_once_with_their_fate(procs: Procs, tmp_path: Path) -> None:
    n = 200_000
    chain = start_chain(procs, tmp_path)
    log = tmp_path / "app.log"
    write_lines(log, 1, n)
    chain.start_agent("dev-a", "--tail", str(log))
    wait_complete(chain, "dev-a", n, 120)
    check_exactly_once(chain, "dev-a", n)
    redacted = query(chain.records_db, "SELECT msg FROM records WHERE msg LIKE '%password=%' LIMIT 5")
    assert redacted and all("hunter" not in msg and "[REDACTED]" in msg for (msg,) in redacted)
    # Every seq the relay saw is accounted for: forwarded + redacted + held + dropped = n.
    rows = query(chain.journal_db, "SELECT fate, sum(n) FROM counters WHERE source = 'dev-a' GROUP BY fate")
    assert sum(int(total) for _, total in rows) == n
    want = expected_counts(n)
    assert sorted(int(total) for _, total in rows) == sorted(v for v in want.values() if v)


def test_kill9_of_each_role_mid_stream_loses_and_duplicates_nothing(procs: Procs, tmp_path: Path) -> None:
    cap = 1_000_000  # the writer stops by itself here at the latest (disk and time bound)
    chain = start_chain(procs, tmp_path)
    pin_port(chain.relay)
    pin_port(chain.collector)
    log = tmp_path / "app.log"
    write_lines(log, 1, 40_000)
    agent = chain.start_agent("dev-k", "--tail", str(log))
    written = [40_000]
    stop_writing = threading.Event()

    def writer() -> None:  # the device keeps logging through every crash, however long restarts take
        while written[0] < cap and not stop_writing.is_set():
            write_lines(log, written[0] + 1, written[0] + 2_500)
            written[0] += 2_500
            time.sleep(0.1)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        wait_until(lambda: chain.stored("dev-k") > 10_000, 60, "first records at the collector")
        chain.relay.kill9()
        chain.relay = procs.restart(chain.relay)
        before = chain.stored("dev-k")
        wait_until(lambda: chain.stored("dev-k") > before + 20_000, 60, "flow after the relay restart")
        chain.collector.kill9()
        chain.collector = procs.restart(chain.collector)
        before = chain.stored("dev-k")
        wait_until(lambda: chain.stored("dev-k") > before + 20_000, 60, "flow after the collector restart")
        agent.kill9()
        at_kill = written[0]
        assert at_kill < cap, "the stream ended before every role was killed; raise the cap"
        agent = procs.restart(agent)
        wait_until(lambda: written[0] >= at_kill + 10_000, 30, "the device logging on after a restart")
    finally:
        stop_writing.set()
        thread.join(60)
    n_total = written[0]
    wait_complete(chain, "dev-k", n_total, 120)
    check_exactly_once(chain, "dev-k", n_total)


def test_restarted_server_listens_again_within_one_second(procs: Procs, tmp_path: Path) -> None:
    chain = start_chain(procs, tmp_path)
    pin_port(chain.relay)
    port = chain.relay.port()
    # Leave connections in TIME_WAIT on the port, as a busy relay would.
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"\x00")
    chain.relay.kill9()
    started = time.monotonic()
    restarted = procs.start("relay", *chain.relay.args, wait_ready=False)
    # Measure what an agent sees: the logferry/1 port accepting connections again.
    elapsed = None
    while time.monotonic() - started < 5.0:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.01)
            continue
        elapsed = time.monotonic() - started
        break
    assert elapsed is not None and elapsed < 1.0, f"relay took {elapsed}s to listen again"
    restarted.ready = read_ready(restarted)
    assert restarted.port() == port


def test_backlog_waits_on_disk_while_the_collector_is_down(procs: Procs, tmp_path: Path) -> None:
    """The relay keeps acknowledging agents into its outbox with no collector, and drains when one comes."""
    collector = procs.start("collector", "--data", str(tmp_path / "collector"), "--listen", "127.0.0.1:0")
    port = collector.address()
    collector.terminate()
    config = tmp_path / "relay.toml"
    config.write_text("[relay]\nheartbeat_s = 1\n", encoding="utf-8")
    relay = procs.start("relay", "--config", str(config), "--data", str(tmp_path / "relay"),
                        "--listen", "127.0.0.1:0", "--collector", port)  # fmt: skip
    log = tmp_path / "app.log"
    write_lines(log, 1, 20_000)
    procs.start("agent", "--data", str(tmp_path / "agent"), "--relay", relay.address(), "--source", "dev-d",
                "--tail", str(log))  # fmt: skip
    journal = tmp_path / "relay" / "journal.db"
    wait_until(
        lambda: (
            (query(journal, "SELECT COALESCE(SUM(count), 0) FROM outbox WHERE acked = 0") or [(0,)])[0][0]
            == 20_000
        ),
        60,
        "20,000 records waiting in the relay's outbox",
    )
    procs.start("collector", "--data", str(tmp_path / "collector"), "--listen", port)
    records = tmp_path / "collector" / "records.db"
    wait_until(lambda: (query(records, "SELECT count(*) FROM records") or [(0,)])[0][0] == 20_000, 60,
               "the backlog to drain into the restarted collector")  # fmt: skip
    assert query(journal, "SELECT COALESCE(SUM(count), 0) FROM outbox WHERE acked = 0") == [(0,)]


def test_a_tailed_file_whose_name_is_not_utf8_is_shipped_under_an_escaped_path(
    procs: Procs, tmp_path: Path
) -> None:
    """A glob that matches a file named in Latin-1: its lines arrive, the records' path escaping the byte that
    is not UTF-8, and the agent goes on (its checkpoint once failed to encode the name, stopping it)."""
    chain = start_chain(procs, tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    raw = os.path.join(os.fsencode(logs), b"caf\xe9.log")
    with open(raw, "wb") as f:
        f.write(b"first n=1\nsecond n=2\n")
    agent = chain.start_agent("dev-n", "--tail", str(logs / "*.log"))
    wait_until(lambda: chain.stored("dev-n") == 2, 20, "both lines at the collector")
    with open(raw, "ab") as f:
        f.write(b"third n=3\n")
    wait_until(lambda: chain.stored("dev-n") == 3, 20, "the appended line at the collector")
    paths = query(chain.records_db, "SELECT DISTINCT path FROM records WHERE source = ?", "dev-n")
    assert paths == [(str(logs / "caf\\xe9.log"),)]
    assert agent.terminate() == 0
    chain.start_agent("dev-n", "--tail", str(logs / "*.log"))  # resumes from its checkpoint: no line again
    with open(raw, "ab") as f:
        f.write(b"fourth n=4\n")
    wait_until(lambda: chain.stored("dev-n") == 4, 20, "the line written after the restart")
    time.sleep(0.5)
    assert sorted(chain.stored_numbers("dev-n")) == [1, 2, 3, 4]


def test_logs_in_a_korean_code_page_and_in_utf16_arrive_as_text(procs: Procs, tmp_path: Path) -> None:
    """A Korean Windows program's log in cp949 and another's in UTF-16 (byte-order mark, CRLF, as SQL
    Server's ERRORLOG), each tailed with its `encoding`: the collector stores the words, not replacement
    characters."""
    chain = start_chain(procs, tmp_path)
    cp949, utf16 = tmp_path / "app.log", tmp_path / "ERRORLOG"
    cp949.write_bytes("서버 시작 n=1\r\n오류: 연결 실패 n=2\r\n".encode("cp949"))
    utf16.write_bytes("\ufeff시작 n=3\r\n오류 n=4\r\n".encode("utf-16-le"))
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nsource = "dev-k"\nrelay = "{chain.relay.address()}"\ndata_dir = "{tmp_path / "agent"}"\n'
        f'[[agent.inputs]]\ntype = "tail"\npaths = ["{cp949}"]\nencoding = "cp949"\n'
        f'[[agent.inputs]]\ntype = "tail"\nname = "errorlog"\npaths = ["{utf16}"]\nencoding = "utf-16"\n',
        encoding="utf-8",
    )
    procs.start("agent", "--config", str(config))
    wait_until(lambda: chain.stored("dev-k") == 4, 20, "the four lines at the collector")
    rows = query(chain.records_db, "SELECT msg FROM records WHERE source = ?", "dev-k")
    assert sorted(msg for (msg,) in rows) == ["서버 시작 n=1", "시작 n=3", "오류 n=4", "오류: 연결 실패 n=2"]


def test_a_second_device_under_the_same_source_is_refused_and_loses_nothing(
    procs: Procs, tmp_path: Path
) -> None:
    """Two devices configured with one source name (an image cloned with its config): each spool numbers
    from 1, and the relay once took the second's records for copies of the first's and acknowledged them
    away. Now the relay binds the source to the first spool and refuses the second, which keeps its records
    and says why; given a name of its own, the same spool delivers every one."""
    chain = start_chain(procs, tmp_path)

    def device(data: str, source: str, lines: list[str]) -> Proc:
        proc = procs.start(
            "agent", "--data", str(tmp_path / data), "--relay", chain.relay.address(), "--source", source,
            "--stdin", "--set", "reconnect_max_s=0.5", stdin=subprocess.PIPE,
        )  # fmt: skip
        assert proc.popen.stdin is not None
        proc.popen.stdin.write("".join(f"{line}\n" for line in lines).encode())
        proc.popen.stdin.close()
        return proc

    def stored() -> list[tuple[str, str]]:
        return sorted((s, m) for s, m in query(chain.records_db, "SELECT source, msg FROM records"))

    a_lines, b_lines = ["a1", "a2", "a3"], ["b1", "b2", "b3", "b4", "b5"]
    assert device("agent-a", "twin", a_lines).popen.wait(30) == 0  # exits once all are acknowledged
    second = device("agent-b", "twin", b_lines)
    wait_until(lambda: "is numbered by another spool" in second.log_text(), 20, "the second device refused")
    time.sleep(1.0)  # it tries again with its back-off: refused every time, nothing taken
    assert second.popen.poll() is None  # still waiting for its acknowledgements
    assert chain.relay.log_text().count("refused device twin") == 1  # said once, not at every attempt
    assert "dropped" not in chain.relay.log_text()
    assert stored() == [("twin", m) for m in a_lines]
    second.terminate()
    assert device("agent-a", "twin", ["a4"]).popen.wait(30) == 0  # the first device is still welcome
    # The second device under a name of its own: the records its spool kept arrive, then the new line.
    assert device("agent-b", "twin-b", ["b6"]).popen.wait(30) == 0
    wait_until(lambda: len(stored()) == 10, 20, "all ten records at the collector")
    assert stored() == sorted(
        [("twin", m) for m in [*a_lines, "a4"]] + [("twin-b", m) for m in [*b_lines, "b6"]]
    )
