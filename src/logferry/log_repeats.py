"""Log a condition that recurs (a peer away for hours, retried every few seconds) once, not at every retry.

``Repeats.say(level, message)`` logs a message at its level the first time; the same message again is
logged at DEBUG, and at its level again only as a reminder every ``period_s``, saying how often it
happened since. A different message is news and is logged at once. ``clear()`` (the condition ended: a
session opened, a run succeeded) makes the next occurrence news again. This module never decides what is
worth saying; callers do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

REMINDER_S = 300.0  # the same message again is logged at its level at most this often


class Repeats:
    """The recurring-message state of one logger's one condition (not thread-safe: one event loop)."""

    def __init__(
        self, log: logging.Logger, period_s: float = REMINDER_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.log = log
        self.period_s = period_s
        self._clock = clock
        self._last: str | None = None  # the message last said at its level, while the condition lasts
        self._said_at = 0.0  # when
        self._again = 0  # how often it came again since

    def say(self, level: int, message: str) -> None:
        now = self._clock()
        if message == self._last and now - self._said_at < self.period_s:
            self._again += 1
            self.log.debug("%s (again)", message)
            return
        if message == self._last and self._again:
            self.log.log(
                level, "%s (again %d times in the last %.0f s)", message, self._again, now - self._said_at
            )
        else:
            self.log.log(level, "%s", message)
        self._last, self._said_at, self._again = message, now, 0

    def clear(self) -> None:
        """The condition is over: the next message is news, whatever it says."""
        self._last, self._again = None, 0
