"""The stdin input: real pipes from subprocesses, real files, and real asyncio stream readers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from logferry.inputs import StdinInput, stdin_source
from logferry.model import Entry, Level

WRITER = "import sys\nfor i in range({n}):\n    sys.stdout.write(f'line {{i:06d}} ' + 'x' * 80 + '\\n')\n"


class FakeSpool:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.batch_sizes: list[int] = []
        self.waiting = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def emit(self, entries: list[Entry], updates: dict[str, bytes]) -> None:
        assert updates == {}  # stdin has nothing to checkpoint
        self.waiting += 1
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1
        self.entries.extend(entries)
        self.batch_sizes.append(len(entries))

    def msgs(self) -> list[str]:
        return [e.msg for e in self.entries]


async def until(cond: object, what: str, timeout_s: float = 5.0) -> None:
    assert callable(cond)
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def expected_lines(n: int) -> list[str]:
    return [f"line {i:06d} " + "x" * 80 for i in range(n)]


async def test_stdin_from_a_subprocess_pipe() -> None:
    n = 20_000
    read_fd, write_fd = os.pipe()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", WRITER.format(n=n), stdout=write_fd)
    os.close(write_fd)  # the child holds the write end; EOF comes when it exits
    spool = FakeSpool()
    with os.fdopen(read_fd, "rb") as pipe:
        async with stdin_source(pipe) as source:
            assert isinstance(source, asyncio.StreamReader)  # a pipe goes through the event loop
            inp = StdinInput(source, "h", time.time_ns, max_batch_records=500)
            await asyncio.wait_for(inp.run(spool.emit), 10)
    assert await proc.wait() == 0
    assert spool.msgs() == expected_lines(n)
    assert max(spool.batch_sizes) <= 500
    assert spool.entries[0].fields == {"input": "stdin"}
    assert spool.entries[0].path == "-"


async def test_stdin_from_a_regular_file(tmp_path: Path) -> None:
    data = tmp_path / "in.log"
    data.write_bytes(b"2024 ERROR a\r\nb \xff\n\nlast without newline")
    spool = FakeSpool()
    with data.open("rb") as f:
        async with stdin_source(f) as source:
            assert source is f  # a regular file is read in a thread
            await asyncio.wait_for(StdinInput(source, "h", time.time_ns).run(spool.emit), 5)
    assert spool.msgs() == ["2024 ERROR a", "b \ufffd", "last without newline"]
    assert spool.entries[0].level == Level.ERROR


@pytest.mark.parametrize(
    ("encoding", "data"),
    [  # PowerShell 5 pipes UTF-16 with a byte-order mark; a Korean console program writes cp949
        ("utf-16", "\ufeff오류 n=1\r\n\u0a41\u4100 n=2\r\nlast".encode("utf-16-le")),
        ("cp949", "오류 n=1\r\n경고 n=2\r\nlast".encode("cp949")),
    ],
)
async def test_stdin_in_utf16_or_a_code_page(tmp_path: Path, encoding: str, data: bytes) -> None:
    path = tmp_path / "in.log"
    path.write_bytes(data)
    spool = FakeSpool()
    with path.open("rb") as f:
        async with stdin_source(f) as source:
            await asyncio.wait_for(
                StdinInput(source, "h", time.time_ns, encoding=encoding).run(spool.emit), 5
            )
    assert spool.msgs() == data.decode("utf-16-le" if encoding == "utf-16" else encoding).lstrip(
        "\ufeff"
    ).replace("\r", "").split("\n")


@pytest.mark.parametrize("redirect", ["file", "pipe", "devnull"])
def test_agent_process_reads_its_own_stdin(tmp_path: Path, redirect: str) -> None:
    """The default ``stdin_source()`` (sys.stdin) in a real process, stdin redirected from a file or pipe."""
    program = textwrap.dedent(
        """
        import asyncio, time
        from logferry.inputs import StdinInput, stdin_source

        async def main():
            got = []
            async def emit(entries, updates):
                got.extend(entries)
            async with stdin_source() as source:
                await StdinInput(source, "h", time.time_ns).run(emit)
            print(len(got), got[-1].msg if got else "-")

        asyncio.run(main())
        """
    )
    payload = "".join(f"l{i}\n" for i in range(5000))
    if redirect == "file":
        src = tmp_path / "stdin.txt"
        src.write_text(payload)
        with src.open("rb") as f:
            out = subprocess.run(
                [sys.executable, "-c", program], stdin=f, capture_output=True, timeout=20, check=False
            )
    else:
        out = subprocess.run(
            [sys.executable, "-c", program],
            input=payload.encode(),
            capture_output=True,
            timeout=20,
            check=False,
        )
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().split() == ["5000", "l4999"]


async def test_batch_wait_multiline_timeout_and_eof_flush() -> None:
    reader = asyncio.StreamReader()
    spool = FakeSpool()
    inp = StdinInput(
        reader,
        "h",
        time.time_ns,
        max_batch_wait_s=0.02,
        multiline_start=r"^\S",
        multiline_timeout_s=0.1,
    )
    task = asyncio.create_task(inp.run(spool.emit))
    reader.feed_data(b"one\ntwo\n  two cont\n")
    await until(lambda: len(spool.entries) == 1, "the first record after max_batch_wait_s")
    await until(lambda: len(spool.entries) == 2, "the pending record after multiline_timeout_s")
    reader.feed_data(b"three\n  three cont\nfour partial")
    reader.feed_eof()
    await asyncio.wait_for(task, 5)
    assert spool.msgs() == ["one", "two\n  two cont", "three\n  three cont", "four partial"]


async def test_blocked_emit_stops_reading_the_pipe() -> None:
    n = 200_000  # ~18 MB: far more than the pipe and the reader's buffer hold
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER.format(n=n), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    spool = FakeSpool()
    spool.gate.clear()
    task = asyncio.create_task(
        StdinInput(proc.stdout, "h", time.time_ns, max_batch_records=1000).run(spool.emit)
    )
    try:
        await until(lambda: spool.waiting == 1, "emit to block")
        await asyncio.sleep(0.2)  # the writer would finish in well under this if we kept reading
        assert proc.returncode is None  # still blocked writing: we stopped reading
        spool.gate.set()
        await asyncio.wait_for(task, 20)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    assert len(spool.entries) == n
    assert spool.msgs()[-1] == expected_lines(n)[-1]


async def test_cancellation_ends_run_cleanly() -> None:
    reader = asyncio.StreamReader()
    spool = FakeSpool()
    task = asyncio.create_task(StdinInput(reader, "h", time.time_ns).run(spool.emit))
    reader.feed_data(b"a\n")
    await until(lambda: len(spool.entries) == 1, "the line")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
