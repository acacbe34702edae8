"""Gaps between an agent and the relay: a client that skips seqs is asked for them, over a real socket."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from logferry.model import encode_body, make_record
from logferry.protocol.connection import Acked, ClientConnection, Opened, ResendRequested
from logferry.protocol.messages import Batch, PeerRole
from tests.integration.api_chain import call, cli, cli_json, get_json
from tests.integration.procs import Procs, query, wait_until
from tests.integration.reconcile_chain import FREE_PORTS


class SkippingAgent:
    """The sans-IO client core over a blocking socket: sends exactly the seqs the test names."""

    def __init__(self, address: str, source: str) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.conn = ClientConnection(source=source, role=PeerRole.AGENT, token=None,
                                     client_nonce=os.urandom(16), max_frame_bytes=1 << 20)  # fmt: skip
        self.sock.sendall(self.conn.start(time.monotonic()))
        assert isinstance(self.next_event(), Opened)
        self.batch_id = 0

    def next_event(self) -> object:
        while True:
            event = self.conn.next_event()
            out = self.conn.data_to_send()
            if out:
                self.sock.sendall(out)
            if event is not None:
                return event
            data = self.sock.recv(65536)
            assert data, "the relay closed the connection"
            self.conn.receive_data(data, time.monotonic())

    def send(self, first: int, last: int) -> None:
        records = [make_record(s, 1, 6, "h", "/p", f"line {s}") for s in range(first, last + 1)]
        self.batch_id += 1
        body = encode_body(records)
        self.sock.sendall(self.conn.send_batch(Batch(self.batch_id, self.conn.source, len(records), 0, body),
                                               time.monotonic()))  # fmt: skip

    def close(self) -> None:
        self.sock.close()


def test_relay_asks_for_skipped_seqs_and_lists_what_the_agent_lost(procs: Procs, tmp_path: Path) -> None:
    collector = procs.start("collector", "--data", str(tmp_path / "c"), "--listen", "127.0.0.1:0",
                            "--api-listen", "127.0.0.1:0")  # fmt: skip
    relay = procs.start("relay", "--data", str(tmp_path / "r"), "--listen", "127.0.0.1:0", "--collector",
                        collector.address(), *FREE_PORTS)  # fmt: skip
    agent = SkippingAgent(relay.address(), "dev-gap")
    try:
        agent.send(1, 10)
        assert isinstance(agent.next_event(), Acked)
        agent.send(21, 30)  # 11..20 never sent: a spool problem, or a bug
        events = [agent.next_event(), agent.next_event()]
        assert isinstance(events[0], Acked)
        request = events[1]
        assert isinstance(request, ResendRequested) and request.request.ranges == [(11, 20)]
        agent.send(11, 15)  # what this "agent" still has...
        agent.sock.sendall(agent.conn.unavailable(request.request.request_id, [(16, 20)], time.monotonic()))
        assert isinstance(agent.next_event(), Acked)
        missing = tmp_path / "r" / "missing.db"
        wait_until(lambda: bool(query(missing, "SELECT 1 FROM missing")), 10, "the device gap listed")
        rows = query(missing, "SELECT kind, first_seq, last_seq, state FROM missing")
        assert rows == [("missing_at_device", 16, 20, "open")]
        spans = query(
            tmp_path / "r" / "journal.db", "SELECT first_seq, last_seq FROM journal ORDER BY first_seq"
        )
        assert spans == [(1, 10), (11, 15), (21, 30)]
    finally:
        agent.close()


def test_operator_asks_the_device_through_api_and_cli(procs: Procs, tmp_path: Path) -> None:
    collector = procs.start("collector", "--data", str(tmp_path / "c"), "--listen", "127.0.0.1:0",
                            "--api-listen", "127.0.0.1:0")  # fmt: skip
    relay = procs.start("relay", "--data", str(tmp_path / "r"), "--listen", "127.0.0.1:0", "--collector",
                        collector.address(), *FREE_PORTS)  # fmt: skip
    api = "http://" + relay.address("api")
    agent = SkippingAgent(relay.address(), "dev-ask")
    try:
        agent.send(1, 10)
        assert isinstance(agent.next_event(), Acked)
        agent.send(21, 30)
        assert isinstance(agent.next_event(), Acked)
        first = agent.next_event()
        assert isinstance(first, ResendRequested) and first.request.ranges == [(11, 20)]
        agent.sock.sendall(agent.conn.unavailable(first.request.request_id, [(11, 20)], time.monotonic()))
        wait_until(lambda: get_json(api + "/api/missing", kind="missing_at_device")["total"] == 1, 10,
                   "the device gap listed")  # fmt: skip
        [entry] = get_json(api + "/api/missing", kind="missing_at_device")["items"]

        # The spool was restored: the operator asks the device again, by the entry's id (REST).
        asked = call("POST", api + "/api/missing/ask", {"ids": [entry["id"]]}, operator="kim")
        assert asked.status_code == 200, asked.text
        assert asked.json()["ranges"] == {"dev-ask": [[11, 20]]} and asked.json()["seqs"] == 10
        request = agent.next_event()
        assert isinstance(request, ResendRequested) and request.request.ranges == [(11, 20)]
        agent.send(11, 20)
        assert isinstance(agent.next_event(), Acked)
        wait_until(lambda: get_json(api + "/api/status")["acked_through"]["dev-ask"] == 30, 10, "no hole")

        # A new hole; the CLI asks for every hole of the source.
        agent.send(41, 45)
        assert isinstance(agent.next_event(), Acked)  # no request of its own yet: asked < retry_s ago
        out = cli_json("missing", "ask", "--source", "dev-ask", "--api", api, "--operator", "lee")
        assert out["ranges"] == {"dev-ask": [[31, 40]]}
        again = agent.next_event()
        assert isinstance(again, ResendRequested) and again.request.ranges == [(31, 40)]
        human = cli("missing", "ask", "--api", api)
        assert human.returncode == 2 and "--source" in human.stderr
    finally:
        agent.close()

    # The device is gone: nothing can be asked, and the answer says why.
    wait_until(lambda: get_json(api + "/api/devices")["items"] == [], 10, "the device disconnected")
    gone = call("POST", api + "/api/missing/ask", {"source": "dev-ask"})
    assert gone.status_code == 409 and "not connected" in gone.json()["error"]
    assert call("POST", api + "/api/missing/ask", {}).status_code == 400
    audit = get_json(api + "/api/audit", action="missing.ask")["items"]
    assert [(e["operator"], e["state"], e["count"]) for e in audit] == [
        ("anonymous", "failed", 0),
        ("lee", "done", 10),
        ("kim", "done", 10),
    ]


def test_device_gap_closes_when_the_agent_resends_and_stays_closed(procs: Procs, tmp_path: Path) -> None:
    collector = procs.start("collector", "--data", str(tmp_path / "c"), "--listen", "127.0.0.1:0",
                            "--api-listen", "127.0.0.1:0")  # fmt: skip
    relay = procs.start("relay", "--data", str(tmp_path / "r"), "--listen", "127.0.0.1:0", "--collector",
                        collector.address(), *FREE_PORTS)  # fmt: skip
    api = "http://" + relay.address("api")

    def listed(state: str) -> list[tuple[int, int, str]]:
        items = get_json(api + "/api/missing", kind="missing_at_device", state=state)["items"]
        return sorted((e["first_seq"], e["last_seq"], e["state"]) for e in items)

    agent = SkippingAgent(relay.address(), "dev-back")
    try:
        agent.send(1, 10)
        assert isinstance(agent.next_event(), Acked)
        agent.send(21, 30)
        assert isinstance(agent.next_event(), Acked)
        first = agent.next_event()
        assert isinstance(first, ResendRequested) and first.request.ranges == [(11, 20)]
        agent.sock.sendall(agent.conn.unavailable(first.request.request_id, [(11, 20)], time.monotonic()))
        wait_until(lambda: listed("open") == [(11, 20, "open")], 10, "the device gap listed")
        [entry] = get_json(api + "/api/missing", kind="missing_at_device")["items"]

        asked = call("POST", api + "/api/missing/ask", {"ids": [entry["id"]]}, operator="kim")
        assert asked.status_code == 200, asked.text
        request = agent.next_event()
        assert isinstance(request, ResendRequested) and request.request.ranges == [(11, 20)]
        agent.send(11, 14)  # part of it first: that part closes, the entry keeps what is still missing
        assert isinstance(agent.next_event(), Acked)
        wait_until(lambda: listed("recovered") == [(11, 14, "recovered")], 10, "the part recovered")
        assert listed("open") == [(15, 20, "open")]
        agent.send(15, 20)
        assert isinstance(agent.next_event(), Acked)
        wait_until(lambda: listed("open") == [], 10, "the whole gap recovered")
        metrics = call("GET", api + "/metrics").text
        assert "logferry_relay_missing_recovered_seqs_total 10.0" in metrics  # 11-14, then 15-20
    finally:
        agent.close()
    recovered = get_json(api + "/api/missing", state="recovered")["items"]
    assert all(e["resolved_at"] and e["acknowledged_by"] is None for e in recovered)
    assert {e["id"] for e in recovered} >= {entry["id"]}  # the operator's entry itself closed

    relay.terminate()
    relay = procs.restart(relay)
    api = "http://" + relay.address("api")
    assert listed("recovered") == [(11, 14, "recovered"), (15, 20, "recovered")]
    assert get_json(api + "/api/missing", state="open")["total"] == 0
    assert get_json(api + "/api/status")["acked_through"]["dev-back"] == 30
    out = cli_json("missing", "list", "--state", "recovered", "--api", api)
    assert len(out["items"]) == 2
