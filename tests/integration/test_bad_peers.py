"""Bad input never takes a server down: each misbehaving peer is cut off while a good agent keeps flowing."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from logferry.protocol.connection import ClientConnection, Opened
from logferry.protocol.framing import FrameDecoder, encode_frame
from logferry.protocol.messages import NONCE_BYTES, Code, Goodbye, PeerRole, Ping
from tests.integration.pipeline import Chain, check_exactly_once, start_chain, write_lines
from tests.integration.procs import Procs, wait_until

RELAY_SETTINGS = """
devices = { "good" = "tok-good", "bad" = "tok-bad" }
handshake_timeout_s = 2
idle_timeout_s = 3
write_timeout_s = 2
"""
CUT_OFF_S = 15.0


def connect(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(CUT_OFF_S)
    sock.connect(("127.0.0.1", port))
    return sock


def handshake(sock: socket.socket, source: str, token: str) -> ClientConnection:
    conn = ClientConnection(
        source=source,
        role=PeerRole.AGENT,
        token=token.encode(),
        client_nonce=os.urandom(NONCE_BYTES),
        max_frame_bytes=1 << 20,
    )
    sock.sendall(conn.start(time.monotonic()))
    while True:
        data = sock.recv(65536)
        assert data, "relay closed the connection during a valid handshake"
        conn.receive_data(data, time.monotonic())
        sock.sendall(conn.data_to_send())
        event = conn.next_event()
        sock.sendall(conn.data_to_send())
        if isinstance(event, Opened):
            return conn


def read_until_closed(sock: socket.socket) -> list[object]:
    """Everything the relay sends until it closes the connection (fails if it never does)."""
    decoder = FrameDecoder(1 << 20)
    messages: list[object] = []
    deadline = time.monotonic() + CUT_OFF_S
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return messages
        if not data:
            return messages
        decoder.feed(data)
        while (msg := decoder.next_message()) is not None:
            messages.append(msg)
    raise AssertionError(f"the relay did not close the connection within {CUT_OFF_S}s")


def goodbye_code(messages: list[object]) -> int | None:
    byes = [m for m in messages if isinstance(m, Goodbye)]
    return byes[-1].code if byes else None


@pytest.fixture
def flowing(procs: Procs, tmp_path: Path) -> Iterator[tuple[Chain, list[int]]]:
    """A chain whose good agent logs steadily for the whole test."""
    chain = start_chain(procs, tmp_path, RELAY_SETTINGS)
    log = tmp_path / "good.log"
    written = [0]
    stop = threading.Event()

    def device() -> None:
        while not stop.is_set():
            write_lines(log, written[0] + 1, written[0] + 200)
            written[0] += 200
            time.sleep(0.1)

    thread = threading.Thread(target=device, daemon=True)
    thread.start()
    chain.start_agent("good", "--tail", str(log), "--token", "tok-good")
    wait_until(lambda: chain.stored("good") > 0, 30, "the good agent's first records")
    try:
        yield chain, written
    finally:
        stop.set()
        thread.join(5)
    n = written[0]
    wait_until(lambda: len(chain.stored_numbers("good")) + len(chain.held_numbers("good")) >= n * 8 // 10, 60,
               "the good agent's records to drain")  # fmt: skip
    time.sleep(1)
    check_exactly_once(chain, "good", n)


def still_flowing(chain: Chain, before: int) -> None:
    wait_until(lambda: chain.stored("good") > before, 10, "the good agent to keep flowing")


def test_garbage_bytes(flowing: tuple[Chain, list[int]]) -> None:
    chain, _ = flowing
    before = chain.stored("good")
    with connect(chain.relay.port()) as sock:
        sock.sendall(b"\x00\x00\x00\x05\xff\xfe\xfd\xfc\xfb" + os.urandom(64))
        code = goodbye_code(read_until_closed(sock))
    assert code == Code.MALFORMED
    still_flowing(chain, before)


def test_http_request_to_the_logferry_port(flowing: tuple[Chain, list[int]]) -> None:
    chain, _ = flowing
    with connect(chain.relay.port()) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        code = goodbye_code(read_until_closed(sock))
    assert code == Code.TOO_LARGE  # "GET " read as a length is ~1.2 GB
    still_flowing(chain, chain.stored("good"))


def test_oversized_frame_after_a_valid_handshake(flowing: tuple[Chain, list[int]]) -> None:
    chain, _ = flowing
    with connect(chain.relay.port()) as sock:
        handshake(sock, "bad", "tok-bad")
        sock.sendall((64 << 20).to_bytes(4, "big") + b"\x95" * 1000)
        code = goodbye_code(read_until_closed(sock))
    assert code == Code.TOO_LARGE
    still_flowing(chain, chain.stored("good"))


def test_wrong_token(flowing: tuple[Chain, list[int]]) -> None:
    chain, _ = flowing
    with connect(chain.relay.port()) as sock:
        conn = ClientConnection(source="bad", role=PeerRole.AGENT, token=b"not-the-token",
                                client_nonce=os.urandom(NONCE_BYTES), max_frame_bytes=1 << 20)  # fmt: skip
        sock.sendall(conn.start(time.monotonic()))
        challenge = sock.recv(65536)
        conn.receive_data(challenge, time.monotonic())
        assert conn.next_event() is None
        sock.sendall(conn.data_to_send())  # our Auth, with the wrong mac
        code = goodbye_code(read_until_closed(sock))
    assert code == Code.UNAUTHORIZED
    still_flowing(chain, chain.stored("good"))


def test_peer_that_stops_reading(flowing: tuple[Chain, list[int]]) -> None:
    chain, _ = flowing
    with connect(chain.relay.port(), rcvbuf=4096) as sock:
        handshake(sock, "bad", "tok-bad")
        ping = encode_frame(Ping(1)) * 4096
        before = chain.stored("good")
        cut = False
        deadline = time.monotonic() + CUT_OFF_S + 10
        # Every Ping asks for a Pong we never read: the relay's buffers fill and it must give up on us.
        while time.monotonic() < deadline:
            try:
                sock.sendall(ping)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                cut = True
                break
        assert cut, "the relay kept a peer that does not read"
    still_flowing(chain, before)


def test_peer_sending_one_byte_per_second(flowing: tuple[Chain, list[int]]) -> None:
    chain, _ = flowing
    with connect(chain.relay.port()) as sock:
        handshake(sock, "bad", "tok-bad")
        before = chain.stored("good")
        frame = (1000).to_bytes(4, "big") + b"\x96" * 996
        decoder = FrameDecoder(1 << 20)
        sock.settimeout(1.0)
        started = time.monotonic()
        code: int | None = None
        for byte in frame:
            try:
                sock.sendall(bytes([byte]))
                data = sock.recv(65536)  # the relay's pings, or its goodbye
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if not data:
                break
            decoder.feed(data)
            while (msg := decoder.next_message()) is not None:
                if isinstance(msg, Goodbye):
                    code = msg.code
            if time.monotonic() - started > CUT_OFF_S:
                raise AssertionError("the relay kept a peer that trickles one byte per second")
        assert time.monotonic() - started < CUT_OFF_S
        assert code == Code.TIMEOUT
    still_flowing(chain, before)
