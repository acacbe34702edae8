"""The seed's line protocol against a real relay: the prototype client unchanged, and peers that misbehave.

The prototype client is reproduced exactly: connect, ``sendall(b"tester&&Hello, World!")`` with no newline,
one ``recv(1024)``, print, close. It must get ``어서와! tester``, and the record must be journaled before the
reply arrives and reach the collector with the name as its source.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.pipeline import Chain, start_chain
from tests.integration.procs import Procs, query, wait_until

PROTOTYPE_CLIENT = """
import socket, sys
client_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
client_socket.connect(("127.0.0.1", int(sys.argv[1])))
client_socket.sendall("tester&&Hello, World!".encode())
data = client_socket.recv(1024)
print(data.decode())
client_socket.close()
"""


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    root = tmp_path_factory.mktemp("line")
    procs = Procs(root)
    try:
        # write_timeout_s bounds how long a peer may leave its replies unread: short, to test it.
        yield start_chain(procs, root, "write_timeout_s = 1")
    finally:
        procs.stop_all()


def records(chain: Chain, source: str, n: int) -> list[tuple[int, int, int, str, str, str]]:
    sql = "SELECT seq, ts_ns, level, host, msg, fields FROM records WHERE source = ? ORDER BY seq"
    wait_until(lambda: len(query(chain.records_db, sql, source)) >= n, 15, f"{n} records of {source}")
    return query(chain.records_db, sql, source)  # type: ignore[return-value]


def test_the_prototype_client_unchanged(chain: Chain, tmp_path: Path) -> None:
    script = tmp_path / "Client_Send.py"
    script.write_text(PROTOTYPE_CLIENT, encoding="utf-8")
    before = time.time_ns()
    run = subprocess.run([sys.executable, str(script), str(chain.relay.port("line"))],
                         capture_output=True, timeout=10, check=True)  # fmt: skip
    assert run.stdout.decode("utf-8") == "어서와! tester\n"  # print() adds the newline; the reply has none
    ((seq, ts_ns, level, host, msg, fields),) = records(chain, "tester", 1)
    assert (seq, level, host, msg, fields) == (1, 6, "127.0.0.1", "Hello, World!", None)
    assert before <= ts_ns <= time.time_ns()


def test_the_reply_comes_after_the_journal_commit(chain: Chain) -> None:
    with socket.create_connection(("127.0.0.1", chain.relay.port("line"))) as s:
        s.sendall(b"durable-check&&ERROR disk full\n")
        assert s.recv(1024) == "어서와! durable-check\n".encode()
        # The reply means durable: the journal already holds it (read-only, as an operator's tool would).
        rows = query(chain.journal_db, "SELECT next_seq FROM sources WHERE source = 'durable-check'")
        assert rows == [(2,)]
    ((_, _, level, _, msg, _),) = records(chain, "durable-check", 1)
    assert (level, msg) == (3, "ERROR disk full")


def test_several_messages_on_one_connection_and_invalid_ones(chain: Chain) -> None:
    with socket.create_connection(("127.0.0.1", chain.relay.port("line"))) as s:
        s.sendall(b"kim&&first\r\nlee&&second\nno separator here\n&&no name\nkim&&third")
        got = b""
        want = "어서와! kim\n어서와! lee\ninvalid request\ninvalid request\n어서와! kim".encode()
        while len(got) < len(want):
            chunk = s.recv(1024)
            assert chunk, f"connection closed after {got!r}"
            got += chunk
        assert got == want
    assert [r[4] for r in records(chain, "kim", 2)] == ["first", "third"]
    assert [r[4] for r in records(chain, "lee", 1)] == ["second"]
    raw = records(chain, "127.0.0.1", 2)
    assert [(r[4], json.loads(r[5])["parse_error"]) for r in raw[-2:]] == [
        ("no separator here", "no '&&' between name and message"),
        ("&&no name", "empty name before '&&'"),
    ]


def test_a_peer_that_never_reads_replies_is_cut_off_and_others_go_on(chain: Chain) -> None:
    port = chain.relay.port("line")
    hog = socket.create_connection(("127.0.0.1", port))
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    burst = b"".join(b"hog&&message %d\n" % i for i in range(20_000))
    hog.settimeout(15)
    try:
        with pytest.raises(OSError):  # reset or broken pipe once the relay gives up on us
            for _ in range(50):
                hog.sendall(burst)
    finally:
        hog.close()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"polite&&still served")
        assert s.recv(1024) == "어서와! polite".encode()
    assert "left its replies unread" in chain.relay.log_text()


def test_half_close_ends_the_message(chain: Chain) -> None:
    with socket.create_connection(("127.0.0.1", chain.relay.port("line"))) as s:
        s.sendall("park&&안녕하세요".encode())
        s.shutdown(socket.SHUT_WR)
        assert s.recv(1024) == "어서와! park".encode()
    assert records(chain, "park", 1)[0][4] == "안녕하세요"
