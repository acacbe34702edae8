"""Process lifecycle for the daemons: logging set-up, the READY line, and signal-driven shutdown.

The first SIGTERM or SIGINT asks the role to stop: it stops accepting, drains in-flight work within
its deadline and exits 0. A second signal forces an immediate exit (status 130), for an operator who will
not wait. A background duty that must run until the stop (forwarding, watching folders, reconciling) and
ends before it, by an error or otherwise, is a bug: it is logged with its traceback and the role stops the
same orderly way, exiting 70 (EX_SOFTWARE), so a service manager restarts it. A role left running with a
dead duty would look healthy while it ships nothing.
This module never touches stores or sockets; roles own those.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("logferry")

FORCED_EXIT_STATUS = 130
FAILED_DUTY_STATUS = 70  # EX_SOFTWARE in sysexits.h: an internal error
FULL_PASS_AFTER = 100  # middle passes of the cyclic collector before a full one may run (CPython: 10)


def setup_logging(level: str = "info") -> None:
    """Logs go to stderr; stdout is kept for the single READY line (and the demo's display)."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )


def spare_full_collections() -> None:
    """Let the cyclic collector walk a daemon's whole heap ten times less often.

    A relay's or collector's heap is mostly what it built to start (modules, its console's pages): a full
    pass walks it all, 50-150 ms each, and shipping 10k small files set off two or three of them per role.
    The young generations are collected as before, so garbage cycles are still found; only the walk over
    long-lived objects waits longer. (``gc.freeze()`` instead, tried, made the console's page loads slower:
    docs/BENCHMARKS.md.) For daemons only: an embedded agent leaves its host's collector alone.
    """
    young, middle, _full = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_PASS_AFTER)


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
        self.failed: str | None = None  # the duty whose end stopped the role
        self._winding_down = False  # the role ends its duties itself from now on

    @property
    def status(self) -> int:
        """The role's exit status: 0 after a requested stop, ``FAILED_DUTY_STATUS`` after a duty ended."""
        return 0 if self.failed is None else FAILED_DUTY_STATUS

    def watch(
        self, task: asyncio.Task[Any], duty: str, *, may_finish: bool = False, fatal: bool = True
    ) -> asyncio.Task[Any]:
        """Stop the role if ``task`` (``duty``, in words) fails, or ends at all unless ``may_finish``,
        before a stop was asked for; returns the task. A duty that is not ``fatal`` (derived data the
        role can do without) is only logged: the role goes on without it."""
        task.add_done_callback(lambda done: self._ended(done, duty, may_finish, fatal))
        return task

    def wind_down(self) -> None:
        """The role is ending (asked to, done, or failing): its duties may end from now on."""
        self._winding_down = True

    def _ended(self, task: asyncio.Task[Any], duty: str, may_finish: bool, fatal: bool) -> None:
        cancelled = task.cancelled()
        error = None if cancelled else task.exception()
        if self.event.is_set() or self._winding_down:
            if error is not None:  # while stopping: still said, never swallowed
                log.error("%s failed while stopping: %s", duty, error, exc_info=error)
            return
        if error is None and may_finish and not cancelled:
            return
        if cancelled:  # nobody cancels a duty before the role winds down: a cancellation leaked into it
            error = asyncio.CancelledError(f"{duty} was cancelled")
        if not fatal:
            log.error(
                "%s stopped: %s; the rest goes on without it, a restart starts it again (a bug: please "
                "report it with this traceback)",
                duty,
                error or "it ended on its own",
                exc_info=error,
            )
            return
        if error is not None:
            log.critical("%s failed: %s; stopping (a bug: please report it with this traceback)",
                         duty, error, exc_info=error)  # fmt: skip
        else:
            log.critical("%s ended on its own; stopping (a bug: please report it)", duty)
        self.failed = duty
        self._count += 1  # a signal after this forces the exit, as a second signal does
        self.event.set()

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
