"""Shared helpers for the benchmark: paths, processes started by PID, ports, bounded waits."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"


def log(msg: str) -> None:
    """Progress messages go to stderr so stdout keeps only the results table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """A benchmark step failed in a way that makes its numbers meaningless."""


class Proc:
    """A child process we started ourselves; it is only ever stopped through its own PID."""

    registry: list[Proc] = []  # noqa: RUF012 - every live child, so a finally can stop them all

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        out = self._log if stdout is None else stdout
        self.popen = subprocess.Popen(
            self.argv,
            stdin=stdin,
            stdout=out,
            stderr=self._log,
            env=env,
            cwd=cwd,
            start_new_session=True,  # our own process group: a Ctrl-C of make does not hit it twice
        )
        self.pid = self.popen.pid
        Proc.registry.append(self)
        log(f"started {name} pid={self.pid}: {' '.join(self.argv)}")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_s(self) -> float:
        """User + system CPU seconds the running process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
            log(f"kill -9 {self.name} pid={self.pid}")
        self._forget()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit code."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} pid={self.pid} ignored SIGTERM for {timeout:.0f}s: SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        self._forget()
        return self.popen.returncode

    def _forget(self) -> None:
        if self in Proc.registry:
            Proc.registry.remove(self)
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        if self.popen.stdout is not None:
            with contextlib.suppress(OSError):
                self.popen.stdout.close()
        self._log.close()

    @classmethod
    def stop_all(cls) -> None:
        for proc in reversed(list(cls.registry)):
            try:
                proc.stop(timeout=10)
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                log(f"could not stop {proc.name} pid={proc.pid}: {exc}")


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (all held open together, so they differ)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def listening(port: int) -> bool:
    """True if something listens on 127.0.0.1:port (read from /proc, no connection made)."""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as fh:
            next(fh)
            for line in fh:
                parts = line.split()
                if parts[1] == want and parts[3] == "0A":
                    return True
    except OSError:
        return False
    return False


def wait_for(what: str, predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_quiescent(
    what: str, count: Callable[[], int], quiet: float, timeout: float, interval: float = 0.25
) -> int:
    """Wait until ``count()`` has not changed for ``quiet`` seconds; return its value."""
    deadline = time.monotonic() + timeout
    last = count()
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    log(f"{what}: still changing after {timeout:.0f}s, taking {last}")
    return last


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
