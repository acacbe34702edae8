"""Read log lines from standard input (or any byte stream) until end of file.

Lines are framed, decoded, joined and levelled exactly like the tail input's (see ``records``) and handed
to ``emit`` in batches of at most ``max_batch_records``, at the latest ``max_batch_wait_s`` after the first
record of a batch was read. At end of file the last partial line and any pending multiline record are
emitted, then ``run`` returns.

No checkpoints: stdin cannot be read again. What the agent has read is spooled before anything upstream
acknowledges it, and the next chunk is read only after ``emit`` returned, so a ``kill -9`` can lose only
bytes still in the OS pipe buffer (or in the one chunk being read) that the agent had not yet spooled —
never anything spooled. A writer that must lose nothing should write to a file the tail input follows.

``stdin_source()`` builds the stream for ``sys.stdin``: an ``asyncio.StreamReader`` via
``connect_read_pipe`` for a pipe, socket or terminal; a regular file cannot be registered with the event
loop, so it is returned as a binary file that ``StdinInput`` reads in a worker thread (a regular file read
never blocks indefinitely, so the thread always finishes).

This module must never read ahead of a blocked ``emit`` (bounded memory) or drop a non-blank line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import stat
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import IO

from logferry.inputs.emit import Emit
from logferry.inputs.framing import LineFramer
from logferry.inputs.records import RecordAssembler, line_format
from logferry.model import Entry

log = logging.getLogger("logferry.inputs.stdin")

StdinSource = asyncio.StreamReader | IO[bytes]
"""A stream ``StdinInput`` can read: an asyncio reader, or a blocking binary file (read in a thread)."""


class StdinInput:
    """Reads lines from ``stream`` until EOF; ``run(emit)`` returns at EOF or ends on cancellation."""

    def __init__(
        self,
        stream: StdinSource,
        host: str,
        now_ns: Callable[[], int],
        *,
        max_line_bytes: int = 64 * 1024,
        max_batch_records: int = 1000,
        max_batch_wait_s: float = 0.05,
        multiline_start: str | None = None,
        multiline_timeout_s: float = 1.0,
        detect_level: bool = True,
        encoding: str = "utf-8",
        path: str = "-",
        name: str = "stdin",
        read_chunk_bytes: int = 256 * 1024,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch_records < 1:
            raise ValueError(f"max_batch_records must be at least 1, got {max_batch_records}")
        self._stream = stream
        self._now_ns = now_ns
        self._monotonic = monotonic
        self._max_batch = max_batch_records
        self._max_wait_s = max_batch_wait_s
        self._timeout_s = multiline_timeout_s
        self._framer = LineFramer(max_line_bytes, newline=line_format(encoding)[1])
        self._chunk = max(read_chunk_bytes, self._framer.min_read_bytes)
        self._assembler = RecordAssembler(
            host=host,
            path=path,
            fields={"input": name},
            detect_levels=detect_level,
            multiline_start=re.compile(multiline_start) if multiline_start is not None else None,
            max_record_bytes=max_line_bytes,
            encoding=encoding,
        )
        self._buffer = bytearray()  # unconsumed bytes: at most one partial line plus one chunk
        self._offset = 0  # bytes consumed so far; stdin has no checkpoint, but the joiner tracks offsets
        self._entries: list[Entry] = []
        self._batch_started_s = 0.0
        self.records = 0

    async def run(self, emit: Emit) -> None:
        """Read until EOF (then flush everything and return) or cancellation."""
        read: asyncio.Future[bytes] | None = None
        try:
            while True:
                if read is None:
                    read = asyncio.ensure_future(self._read())
                timeout = self._time_left()
                done, _ = await asyncio.wait({read}, timeout=timeout)
                now = self._monotonic()
                if not done:
                    # The batch (or a multiline record) is due while the writer is quiet.
                    self._started(now)
                    if self._assembler.flush_idle(
                        now, self._timeout_s, self._now_ns(), self._offset, self._entries
                    ):
                        self.records += 1
                    if self._entries and now - self._batch_started_s >= self._max_wait_s:
                        await self._flush(emit)
                    continue
                data = read.result()
                read = None
                if not data:
                    await self._finish(emit)
                    return
                self._buffer += data
                await self._consume(emit, now, at_eof=False)
        finally:
            if read is not None:
                read.cancel()

    def _time_left(self) -> float | None:
        """Seconds until the open batch or the pending multiline record is due, or None if neither is."""
        now = self._monotonic()
        due: list[float] = []
        if self._entries:
            due.append(self._batch_started_s + self._max_wait_s - now)
        joiner = self._assembler.joiner
        if joiner is not None and joiner.pending:
            due.append(self._timeout_s - joiner.idle_for(now))
        return max(0.0, min(due)) if due else None

    async def _read(self) -> bytes:
        stream = self._stream
        if isinstance(stream, asyncio.StreamReader):
            return await stream.read(self._chunk)
        read1 = getattr(stream, "read1", None)
        if read1 is not None:  # returns what is available instead of waiting for a full chunk
            data: bytes = await asyncio.to_thread(read1, self._chunk)
            return data
        return await asyncio.to_thread(stream.read, self._chunk)

    async def _consume(self, emit: Emit, now: float, *, at_eof: bool) -> None:
        while True:
            if len(self._entries) >= self._max_batch:
                await self._flush(emit)
            framed = self._framer.frame(
                bytes(self._buffer), self._max_batch - len(self._entries), at_eof=at_eof
            )
            if not framed.consumed:
                return
            del self._buffer[: framed.consumed]
            self._started(now)
            before = len(self._entries)
            self._assembler.feed(framed, self._offset, self._now_ns(), now, self._entries)
            self.records += len(self._entries) - before
            self._offset += framed.consumed

    async def _finish(self, emit: Emit) -> None:
        now = self._monotonic()
        await self._consume(emit, now, at_eof=True)
        if len(self._entries) >= self._max_batch:
            await self._flush(emit)
        if self._assembler.flush(self._now_ns(), self._entries):
            self.records += 1
        if self._entries:
            await self._flush(emit)

    def _started(self, now: float) -> None:
        if not self._entries:
            self._batch_started_s = now

    async def _flush(self, emit: Emit) -> None:
        entries, self._entries = self._entries, []
        await emit(entries, {})


@contextlib.asynccontextmanager
async def stdin_source(stdin: IO[bytes] | None = None) -> AsyncIterator[StdinSource]:
    """The stream to give ``StdinInput`` for ``stdin`` (default ``sys.stdin.buffer``); see the module doc.

    A pipe is read through the event loop on a duplicate of its descriptor, so closing the transport on
    exit leaves the process's own stdin open. Note that ``connect_read_pipe`` makes the shared open file
    description non-blocking, which other readers of the same pipe (a parent shell) also see.
    """
    file = stdin if stdin is not None else sys.stdin.buffer
    mode = os.fstat(file.fileno()).st_mode
    if stat.S_ISREG(mode) or sys.platform == "win32":
        # Windows' proactor cannot register a console or redirected-file handle either: use the thread.
        yield file
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1024 * 1024)
    pipe = os.fdopen(os.dup(file.fileno()), "rb", buffering=0)
    try:
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    except (OSError, ValueError) as exc:
        # e.g. /dev/null: a character device that epoll refuses. Reads from it never block: use the thread.
        pipe.close()
        log.debug("stdin cannot be watched by the event loop (%s); reading it in a thread", exc)
        yield file
        return
    try:
        yield reader
    finally:
        transport.close()
