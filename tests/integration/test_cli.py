"""The ``logferry`` command as a user runs it: init, config check, bad input, SIGTERM, the demo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.procs import Procs


def logferry(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logferry", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("role", ["agent", "relay", "collector"])
def test_init_prints_an_example_that_config_check_accepts(role: str, tmp_path: Path) -> None:
    init = logferry("init", role)
    assert init.returncode == 0 and f"[{role}]" in init.stdout
    path = tmp_path / f"{role}.toml"
    path.write_text(init.stdout, encoding="utf-8")
    check = logferry("config", "check", str(path))
    assert check.returncode == 0, check.stderr
    assert "OK" in check.stdout


def test_config_check_names_file_key_and_expectation(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text('[relay]\nlisten = "127.0.0.1:5170"\n[[relay.rules]]\nname = "x"\naction = "keep"\n')
    check = logferry("config", "check", str(path))
    assert check.returncode == 2
    assert f"{path}: relay.rules[0].action: expected one of forward, hold, drop, redact" in check.stderr


def test_a_role_with_a_bad_config_exits_2_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "collector.toml"
    path.write_text("[collector]\nlisen = '127.0.0.1:0'\n")
    run = logferry("collector", "--config", str(path))
    assert run.returncode == 2
    assert "collector.lisen: unknown key" in run.stderr and "did you mean" in run.stderr


def test_a_port_in_use_is_a_clear_error(procs: Procs, tmp_path: Path) -> None:
    first = procs.start("collector", "--data", str(tmp_path / "c1"), "--listen", "127.0.0.1:0")
    run = logferry("collector", "--data", str(tmp_path / "c2"), "--listen", first.address())
    assert run.returncode == 1
    assert f"cannot listen on {first.address()}" in run.stderr


def test_sigterm_drains_and_exits_0(procs: Procs, tmp_path: Path) -> None:
    collector = procs.start("collector", "--data", str(tmp_path / "c"), "--listen", "127.0.0.1:0")
    assert collector.terminate() == 0
    assert "collector stopped" in collector.log_text()


def test_stdin_agent_exits_once_everything_is_acknowledged(procs: Procs, tmp_path: Path) -> None:
    collector = procs.start("collector", "--data", str(tmp_path / "c"), "--listen", "127.0.0.1:0")
    relay = procs.start("relay", "--data", str(tmp_path / "r"), "--listen", "127.0.0.1:0",
                        "--collector", collector.address())  # fmt: skip
    lines = "".join(f"line {i}\n" for i in range(5000))
    run = subprocess.run(
        [sys.executable, "-m", "logferry", "agent", "--data", str(tmp_path / "a"), "--relay", relay.address(),
         "--source", "piped", "--stdin"],
        input=lines, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "5000 records acknowledged by the relay, 0 waiting" in run.stderr


def test_demo_runs_without_a_terminal_and_accounts_for_every_line(tmp_path: Path) -> None:
    run = logferry("demo", "--duration", "4", "--data", str(tmp_path / "demo"), timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "every line is accounted for: yes" in run.stdout
    assert (tmp_path / "demo" / "collector" / "records.db").exists()
    assert _demo_children(tmp_path) == [], "the demo left processes running"


def _demo_children(tmp_path: Path) -> list[int]:
    """PIDs of processes still running with the demo's data directory on their command line."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(tmp_path / "demo") in text and int(cmdline.parent.name) != os.getpid():
            found.append(int(cmdline.parent.name))
    return found


def test_repeated_signals_never_hang(procs: Procs, tmp_path: Path) -> None:
    collector = procs.start("collector", "--data", str(tmp_path / "c"), "--listen", "127.0.0.1:0")
    os.kill(collector.pid, signal.SIGTERM)
    os.kill(collector.pid, signal.SIGINT)
    # Either the drain finished before the second signal (0) or the second forced the exit (130).
    assert collector.popen.wait(10) in (0, 130)


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    """`logferry … | head -1`: when the reader has closed the pipe, the command stops with 141 (as a tool
    killed by SIGPIPE) and no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "logferry", "init", "relay"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the interpreter has even started: its first write finds no reader
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == b""
