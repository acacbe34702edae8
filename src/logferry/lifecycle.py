"""Process lifecycle for the daemons: logging set-up, the READY line, and signal-driven shutdown.

The first SIGTERM or SIGINT asks the role to stop: it stops accepting, drains in-flight work within
its deadline and exits 0. A second signal forces an immediate exit (status 130), for an operator who will
not wait.
This module never touches stores or sockets; roles own those.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("logferry")

FORCED_EXIT_STATUS = 130


def setup_logging(level: str = "info") -> None:
    """Logs go to stderr; stdout is kept for the single READY line (and the demo's display)."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )


def announce_ready(role: str, listen: dict[str, str], **extra: Any) -> None:
    """Print ``READY {json}`` once the role listens: tests and scripts learn OS-picked ports from it."""
    info = {"role": role, "pid": os.getpid(), "listen": listen, **extra}
    sys.stdout.write("READY " + json.dumps(info, sort_keys=True) + "\n")
    sys.stdout.flush()


class StopSignal:
    """An awaitable stop request set by the first signal; the second signal exits at once."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self._count = 0

    def trigger(self, signame: str = "request") -> None:
        self._count += 1
        if self._count == 1:
            log.info("received %s: draining, send it again to force exit", signame)
            self.event.set()
        else:
            log.warning("received %s again: forcing exit", signame)
            os._exit(FORCED_EXIT_STATUS)

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.trigger, sig.name)
            except NotImplementedError:  # Windows: no add_signal_handler for the proactor loop
                signal.signal(sig, self._threadsafe_trigger(loop, sig.name))

    def _threadsafe_trigger(self, loop: asyncio.AbstractEventLoop, name: str) -> Callable[[int, Any], None]:
        def handler(_signum: int, _frame: Any) -> None:
            loop.call_soon_threadsafe(self.trigger, name)

        return handler

    async def wait(self) -> None:
        await self.event.wait()


def run_role(main: Callable[[StopSignal], Awaitable[int]]) -> int:
    """Run a role's main coroutine under asyncio with signal handling; returns the exit status."""

    async def runner() -> int:
        stop = StopSignal()
        stop.install()
        return await main(stop)

    try:
        return asyncio.run(runner())
    except KeyboardInterrupt:
        return FORCED_EXIT_STATUS
