"""The floor for small files: one minimal durable hop in Python, beside ``rsync -a``, same run.

A sender process reads 10,000 files of 4 KiB and sends them over TCP on 127.0.0.1 in groups of 1,000
(name, size, bytes; no hashing, no protocol, no database); a receiver process writes each under a
temporary name, flushes the group with one syncfs(2), renames them all and flushes again, then answers one
byte per group. Timed from the sender's start until the receiver has made the last group durable. This is
what logferry's collector does per group, without everything else a hop of logferry does (sha256, queue
and journal rows, manifests, reconciliation tallies, acknowledgements per file): the difference between
this figure and ``bench/files.py``'s is logferry's own per-file cost, not the cost of durability or of
Python. The same hop is run again storing each file as logferry's collector stores content: verified and
named by its sha256 under ``<ab>/<hex>`` (temporary names in one directory, renamed into 256 prefix
directories): the floor of that layout on this disk. Linux only (syncfs). Usage: bench/floor_small.py
[--files N] [--rounds R]; copies live under ``bench/out/floor/`` and are removed at the end.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT_DIR, median

WORK = OUT_DIR / "floor"
GROUP = 1000


def receive(dst: str, addressed: bool) -> None:
    """Accept one sender; store each group durably (temp names, syncfs, renames, syncfs); ack each group.
    ``addressed``: each file is verified and named by its sha256 under ``<ab>/<hex>``, as logferry's
    collector stores content (temporary names in one directory, renamed into 256 prefix directories)."""
    syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    os.makedirs(dst)
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    stream = conn.makefile("rb", buffering=1 << 20)
    root = os.open(dst, os.O_RDONLY)
    while head := stream.read(4):
        (count,) = struct.unpack(">I", head)
        moves = []
        for _ in range(count):
            name_len, size = struct.unpack(">HI", stream.read(6))
            name = stream.read(name_len).decode()
            data = stream.read(size)
            if addressed:
                name = hashlib.sha256(data).hexdigest()
            temp = os.path.join(dst, f".{name}.tmp")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            os.write(fd, data)
            os.close(fd)
            moves.append((temp, os.path.join(dst, name[:2], name) if addressed else os.path.join(dst, name)))
        syncfs(root)
        for temp, final in moves:
            try:
                os.replace(temp, final)
            except FileNotFoundError:
                os.mkdir(os.path.dirname(final))
                os.replace(temp, final)
        syncfs(root)
        conn.sendall(b"k")


def send(src: str, port: int) -> None:
    names = sorted(os.listdir(src))
    conn = socket.create_connection(("127.0.0.1", port))
    groups = range(0, len(names), GROUP)
    for start in groups:
        parts = [struct.pack(">I", len(names[start : start + GROUP]))]
        for name in names[start : start + GROUP]:
            data = Path(src, name).read_bytes()
            parts.append(struct.pack(">HI", len(name), len(data)) + name.encode() + data)
        conn.sendall(b"".join(parts))
    for _ in groups:
        conn.recv(1)


def one_hop(src: Path, dst: Path, addressed: bool = False) -> float:
    receiver = subprocess.Popen(
        [sys.executable, __file__, "--receive", str(dst), *(["--addressed"] if addressed else [])],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        port = receiver.stdout.readline().strip()
        t0 = time.monotonic()
        subprocess.run([sys.executable, __file__, "--send", str(src), port], check=True)
        receiver.wait(60)
        return time.monotonic() - t0
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--receive", help=argparse.SUPPRESS)
    ap.add_argument("--send", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--addressed", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.receive:
        receive(args.receive, args.addressed)
        return 0
    if args.send:
        send(args.send[0], int(args.send[1]))
        return 0
    shutil.rmtree(WORK, ignore_errors=True)
    src = WORK / "src"
    src.mkdir(parents=True)
    for i in range(args.files):
        seed = hashlib.sha256(b"small" + i.to_bytes(8, "big")).digest()
        (src / f"s{i:06d}.bin").write_bytes((seed * 129)[:4096])
    hop: list[float] = []
    addressed: list[float] = []
    rsync: list[float] = []
    try:
        for r in range(args.rounds):
            os.sync()
            hop.append(one_hop(src, WORK / f"hop-{r}"))
            os.sync()
            addressed.append(one_hop(src, WORK / f"addressed-{r}", addressed=True))
            os.sync()
            t0 = time.monotonic()
            subprocess.run(["rsync", "-a", f"{src}/", f"{WORK / f'rsync-{r}'}/"], check=True)
            rsync.append(time.monotonic() - t0)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    runs = (("hop", hop), ("addressed", addressed), ("rsync", rsync))
    times = {name: " / ".join(f"{x:.2f}" for x in got) for name, got in runs}
    base = median(rsync)
    print(f"one durable Python hop: {times['hop']} s, x{base / median(hop):.2f} of rsync's speed; the same "
          f"storing by sha256 as logferry's collector does: {times['addressed']} s, "
          f"x{base / median(addressed):.2f}; rsync -a (local, no fsync): {times['rsync']} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
