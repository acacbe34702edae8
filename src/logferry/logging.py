"""``logferry.logging.LogferryHandler``: send a Python program's logging to a relay, through a local spool.

The handler never does I/O on the caller's thread: ``emit`` turns the LogRecord into an entry and puts it
on a bounded queue, waiting at most ``max_block_s`` when the queue is full (then the record is counted in
``dropped`` — the only way it loses anything, and only by the bound you configured). A background thread
runs an agent whose only input is that queue: entries are numbered and committed to a durable SQLite spool,
and shipped to the relay over logferry/1 with everything the agent does (acks after the relay's commit,
reconnect with backoff, resend after a reconnect). ``close()`` flushes what is queued into the spool and
waits up to ``flush_timeout_s`` for the relay to acknowledge it; what it did not get stays in the spool and
is sent the next time a handler (or ``logferry agent``) opens the same spool.

This module must never block the application beyond ``max_block_s`` per record, and never raise from
``emit`` (logging's own ``handleError`` reports a record that cannot be formatted).

    import logging
    from logferry.logging import LogferryHandler
    logging.getLogger().addHandler(LogferryHandler("127.0.0.1:5170", source="billing-app"))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import socket
import threading
from pathlib import Path

from logferry.config import AgentConfig
from logferry.config.schema import Durability
from logferry.inputs import Emit
from logferry.lifecycle import StopSignal
from logferry.model import Entry, Level

__all__ = ["LogferryHandler"]

BATCH_RECORDS = 1000
POLL_S = 0.05

# Attributes every LogRecord has: anything else on a record came from ``extra=`` and becomes a field.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def severity(levelno: int) -> int:
    """Python logging level → syslog severity (the level logferry stores)."""
    if levelno >= logging.CRITICAL:
        return Level.CRITICAL
    if levelno >= logging.ERROR:
        return Level.ERROR
    if levelno >= logging.WARNING:
        return Level.WARNING
    if levelno >= logging.INFO:
        return Level.INFO
    return Level.DEBUG


class _QueueInput:
    """The agent's input: entries from the handler's queue until the handler closes."""

    def __init__(self, entries: queue.Queue[Entry], closing: threading.Event) -> None:
        self.entries = entries
        self.closing = closing

    def _take(self) -> list[Entry]:
        # Runs in a worker thread: blocks up to POLL_S for the first entry, then takes what is queued.
        batch: list[Entry] = []
        with contextlib.suppress(queue.Empty):
            batch.append(self.entries.get(timeout=POLL_S))
            while len(batch) < BATCH_RECORDS:
                batch.append(self.entries.get_nowait())
        return batch

    async def run(self, emit: Emit) -> None:
        while True:
            batch = await asyncio.to_thread(self._take)
            if batch:
                await emit(batch, {})
            elif self.closing.is_set():
                return


class LogferryHandler(logging.Handler):
    """A logging handler that ships records to a logferry relay (see the module docstring)."""

    def __init__(
        self,
        relay: str = "127.0.0.1:5170",
        *,
        source: str | None = None,
        data_dir: str | Path | None = None,
        token: str = "",
        max_block_s: float = 0.1,
        queue_size: int = 10_000,
        flush_timeout_s: float = 5.0,
        durability: str = "normal",
        tls: bool = False,
        tls_ca: str = "",
        tls_cert: str = "",
        tls_key: str = "",
        tls_server_name: str = "",
        level: int = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        self.host = socket.gethostname()
        self.source = source or self.host
        self.max_block_s = max_block_s
        self.flush_timeout_s = flush_timeout_s
        self.dropped = 0
        self._config = AgentConfig(
            source=self.source,
            relay=relay,
            token=token,
            data_dir=str(data_dir or Path("logferry-data") / f"handler-{self.source}"),
            durability=Durability(durability),
            # The hop to the relay can be encrypted like any agent's (docs/TLS.md): same options.
            tls=tls,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_server_name=tls_server_name,
        )
        self._entries: queue.Queue[Entry] = queue.Queue(maxsize=queue_size)
        self._closing = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: StopSignal | None = None
        self._started = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="logferry-handler", daemon=True)
        self._thread.start()
        self._started.wait(10)

    # ---- the application's side ------------------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("logferry"):
            return  # the handler's own agent logging about itself would feed back into itself
        try:
            entry = self._entry(record)
        except Exception:  # noqa: BLE001 - logging's contract: report through handleError, never raise
            self.handleError(record)
            return
        try:
            self._entries.put(entry, timeout=self.max_block_s)
        except queue.Full:
            self.dropped += 1

    def _entry(self, record: logging.LogRecord) -> Entry:
        fields = {"logger": record.name, "input": "python-logging"}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            fields["exception"] = record.exc_text
        if record.stack_info:
            fields["stack"] = record.stack_info
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                fields[key] = str(value)
        msg = self.format(record) if self.formatter is not None else record.getMessage()
        return Entry(
            int(record.created * 1e9), severity(record.levelno), self.host, record.pathname, msg, fields
        )

    def close(self) -> None:
        """Flush what is queued into the spool; wait up to ``flush_timeout_s`` for the relay to take it."""
        self._closing.set()
        self._thread.join(self.flush_timeout_s)
        if self._thread.is_alive() and self._loop is not None and self._stop is not None:
            # The relay did not take everything in time: stop; the spool keeps the rest for next time.
            self._loop.call_soon_threadsafe(self._stop.trigger, "handler close")
            self._thread.join(10)
        super().close()

    # ---- the background agent --------------------------------------------------------------------------

    def _run(self) -> None:
        from logferry.roles.agent import Agent  # the agent's modules load on the handler's thread

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = StopSignal()
            self._started.set()
            agent = Agent(
                self._config,
                exit_when_done=True,
                extra_inputs=[_QueueInput(self._entries, self._closing)],
                announce=False,
            )
            if await agent.run(self._stop) != 0:
                raise RuntimeError(f"the embedded agent stopped: {self._stop.failed} failed (see the log)")

        try:
            asyncio.run(main())
        except Exception as exc:  # noqa: BLE001 - kept for the application to inspect; logging it could recurse
            self.error = exc
        finally:
            self._started.set()
