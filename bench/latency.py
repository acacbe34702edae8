"""Timestamped load: a paced sender and a reader that turns arrival times into latencies.

Every line carries ``LAT <seq> <send time_ns>`` and is padded to a fixed size, so it is unique and its own
send time travels with it. The sender runs as its own process (``python bench/latency.py send ...``) so its
pacing does not share the GIL with the reader:

- ``--port P``: RFC 3164 lines over TCP to 127.0.0.1:P, LF-framed (rsyslog's imtcp);
- ``--stdout``: bare lines on stdout (piped into ``logferry agent --stdin``).

``--rate 0`` sends as fast as possible (throughput and loss runs); otherwise the sender keeps the cumulative
count on schedule, writing the due lines every millisecond.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from common import percentile

LAT_RE = re.compile(rb"LAT (\d{10}) (\d{19})")
PAD = b"x" * 400


def payload(seq: int, now_ns: int, size: int) -> bytes:
    """The message body (without syslog header), padded to ``size`` bytes, no newline."""
    head = b"LAT %010d %019d " % (seq, now_ns)
    return head + PAD[: max(0, size - len(head))]


def syslog_prefix() -> bytes:
    return b"<13>" + time.strftime("%b %e %H:%M:%S").encode() + b" benchhost lat: "


def batches(count: int, rate: float, size: int, syslog: bool, max_batch: int = 2000) -> Iterator[bytes]:
    """Yield chunks of newline-terminated lines; with ``rate > 0`` each chunk is yielded when it is due."""
    start = time.monotonic()
    sent = 0
    body_size = size - len(syslog_prefix()) if syslog else size
    while sent < count:
        if rate > 0:
            due = min(count, int((time.monotonic() - start) * rate) + 1)
            if due <= sent:
                time.sleep(0.0005)
                continue
        else:
            due = min(count, sent + max_batch)
        now = time.time_ns()
        prefix = syslog_prefix() if syslog else b""
        yield b"".join(prefix + payload(seq, now, body_size) + b"\n" for seq in range(sent + 1, due + 1))
        sent = due


def send(count: int, rate: float, size: int, port: int | None) -> None:
    if port is None:
        out = sys.stdout.buffer
        try:
            for chunk in batches(count, rate, size, syslog=False):
                out.write(chunk)
                out.flush()
        except BrokenPipeError:
            os._exit(1)
        return
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for chunk in batches(count, rate, size, syslog=True):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)


class FileTail:
    """Reads what was appended to a file since the last call; counts lines and yields complete ones."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0
        self._partial = b""

    def _read(self) -> bytes:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read(64 << 20)
        except FileNotFoundError:
            return b""
        self.offset += len(data)
        return data

    def count(self) -> int:
        """Number of complete lines so far (reads only the new bytes)."""
        while True:
            data = self._read()
            self.lines += data.count(b"\n")
            if len(data) < (64 << 20):
                return self.lines

    def new_lines(self) -> list[bytes]:
        data = self._partial + self._read()
        if not data:
            return []
        *complete, self._partial = data.split(b"\n")
        self.lines += len(complete)
        return complete


def read_latencies(
    tail: FileTail,
    expected: int,
    timeout: float,
    alive: Callable[[], bool],
    *,
    poll: float = 0.001,
    grace: float = 5.0,
) -> list[tuple[int, float]]:
    """Tail ``tail`` until ``expected`` timestamped lines arrived; return (seq, latency ms) pairs, arrival
    being when the line was read (polling every ``poll`` s). Gives up at ``timeout``, or ``grace`` s after
    the sender ended with nothing new arriving."""
    lat_ms: list[tuple[int, float]] = []
    deadline = time.monotonic() + timeout
    last_line = time.monotonic()
    while len(lat_ms) < expected and time.monotonic() < deadline:
        lines = tail.new_lines()
        now = time.time_ns()
        for line in lines:
            m = LAT_RE.search(line)
            if m:
                lat_ms.append((int(m.group(1)), (now - int(m.group(2))) / 1e6))
        if lines:
            last_line = time.monotonic()
        else:
            if not alive() and time.monotonic() - last_line > grace:
                break
            time.sleep(poll)
    return lat_ms


def latency_stats(samples: list[tuple[int, float]], rate: int, count: int, warmup: int) -> dict[str, Any]:
    """p50/p99/max over the samples (seq, ms) whose seq is past the warm-up."""
    lat = [ms for seq, ms in samples if seq > warmup]
    return {
        "rate": rate,
        "warmup": warmup,
        "sent": count,
        "received": len(lat),
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat) if lat else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send", help="send timestamped lines")
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--rate", type=float, default=0.0, help="lines/s; 0 = as fast as possible")
    s.add_argument("--size", type=int, default=200, help="line size in bytes, without the newline")
    dest = s.add_mutually_exclusive_group(required=True)
    dest.add_argument("--port", type=int, help="TCP syslog to 127.0.0.1:PORT")
    dest.add_argument("--stdout", action="store_true", help="bare lines on stdout")
    args = ap.parse_args()
    send(args.count, args.rate, args.size, None if args.stdout else args.port)


if __name__ == "__main__":
    main()
