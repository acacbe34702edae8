"""Start logferry roles as child processes and learn their OS-picked ports from the READY line.

Used by the demo and by the integration tests. Waits on the child's stdout (no sleep-polling); stops a
child by PID: SIGTERM, then SIGKILL after a deadline.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

READY_TIMEOUT_S = 20.0


class StartError(RuntimeError):
    """A role did not come up; the message carries the tail of its log."""


def spawn(role: str, args: list[str], log_path: Path, stdin: int | IO[bytes] | None = subprocess.DEVNULL,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
    """Start ``python -m logferry ROLE ARGS`` with stdout piped (for READY) and stderr to ``log_path``."""
    cmd = [sys.executable, "-m", "logferry", role, *args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log_path.open("ab") as log:
        return subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=log, env=full_env)


def read_ready(
    popen: subprocess.Popen[bytes], log_path: Path, timeout_s: float = READY_TIMEOUT_S
) -> dict[str, Any]:
    """The JSON of the child's ``READY {...}`` line; raises StartError if it dies or stays silent."""
    assert popen.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(popen.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(popen.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            for line in buf.split(b"\n"):
                if line.startswith(b"READY "):
                    info: dict[str, Any] = json.loads(line[6:])
                    return info
    finally:
        sel.close()
    tail = log_path.read_text(errors="replace")[-4000:] if log_path.exists() else ""
    raise StartError(
        f"logferry did not become ready within {timeout_s:.0f}s (exit={popen.poll()}); log:\n{tail}"
    )


def stop(popen: subprocess.Popen[bytes], timeout_s: float = 15.0) -> int:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL. Returns the exit status."""
    if popen.poll() is None:
        os.kill(popen.pid, signal.SIGTERM)
        try:
            popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(popen.pid, signal.SIGKILL)
            popen.wait(10)
    if popen.stdout is not None:
        popen.stdout.close()
    return popen.returncode
