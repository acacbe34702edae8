"""Real ``logferry`` processes for integration tests: start on OS-picked ports, learn them from the READY
line, stop by PID. No sleeps to wait for start-up: the READY line is read as soon as it is printed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logferry.demo import processes


@dataclass
class Proc:
    """One running logferry role."""

    role: str
    args: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    ready: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def address(self, name: str = "logferry") -> str:
        return str(self.ready["listen"][name])

    def port(self, name: str = "logferry") -> int:
        return int(self.address(name).rsplit(":", 1)[1])

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self, timeout_s: float = 20.0) -> int:
        if self.popen.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                return self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(10)
                raise
        return self.popen.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


class Procs:
    """Starts roles and makes sure every one of them is stopped at the end of a test."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[Proc] = []

    def start(
        self,
        role: str,
        *args: str,
        wait_ready: bool = True,
        stdin: int | None = subprocess.DEVNULL,
        env: dict[str, str] | None = None,
    ) -> Proc:
        n = sum(1 for p in self.running if p.role == role)
        log_path = self.workdir / f"{role}-{n}.log"
        if role in ("relay", "collector") and "--api-listen" not in args:
            # Tests run in parallel with others on this machine: never bind the default API ports.
            args = (*args, "--api-listen", "127.0.0.1:0")
        if role == "relay" and not any(a.startswith(("syslog_listen=", "line_listen=")) for a in args):
            # Likewise the syslog (5514, TLS 6514) and line (12345) inputs; first: a test's --set wins.
            args = ("--set", "syslog_listen=127.0.0.1:0", "--set", "line_listen=127.0.0.1:0",
                    "--set", "syslog_tls_listen=127.0.0.1:0", *args)  # fmt: skip
        popen = processes.spawn(role, list(args), log_path, stdin=stdin, env=env)
        proc = Proc(role, list(args), log_path, popen)
        self.running.append(proc)
        if wait_ready:
            proc.ready = read_ready(proc)
        return proc

    def restart(self, proc: Proc, *extra: str) -> Proc:
        """Start the same role again with the same arguments (same data dir, same ports)."""
        return self.start(proc.role, *proc.args, *extra)

    def stop_all(self) -> None:
        for proc in self.running:
            processes.stop(proc.popen, 10)


def read_ready(proc: Proc, timeout_s: float = 20.0) -> dict[str, Any]:
    try:
        return processes.read_ready(proc.popen, proc.log_path, timeout_s)
    except processes.StartError as exc:
        raise AssertionError(f"{proc.role}: {exc}") from None


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    """Wait for a condition on real processes' state; the interval only bounds how often we look."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Read a role's SQLite store read-only, as an operator's tool would."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()
