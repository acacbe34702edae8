"""Repeats (log_repeats.py): a recurring message is said once, then at DEBUG, with a reminder that counts;
news and a cleared condition are said at once. A fake clock; a real logger."""

from __future__ import annotations

import logging

import pytest

from logferry.log_repeats import Repeats

log = logging.getLogger("logferry.test.repeats")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def said(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == log.name]


def test_the_same_message_is_said_once_then_reminded_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=log.name)
    clock = Clock()
    repeats = Repeats(log, period_s=300, clock=clock)
    for _ in range(10):
        repeats.say(logging.WARNING, "relay:1 away")
        clock.now += 30  # 10 retries over 300 s
    repeats.say(logging.WARNING, "relay:1 away")  # 300 s after it was said: a reminder
    warnings = [m for level, m in said(caplog) if level == logging.WARNING]
    assert warnings == ["relay:1 away", "relay:1 away (again 9 times in the last 300 s)"]
    assert [m for level, m in said(caplog) if level == logging.DEBUG] == ["relay:1 away (again)"] * 9


def test_news_and_a_cleared_condition_are_said_at_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    repeats = Repeats(log, period_s=300, clock=clock)
    repeats.say(logging.WARNING, "refused")
    repeats.say(logging.WARNING, "refused")
    repeats.say(logging.ERROR, "certificate not trusted")  # another reason: news
    repeats.clear()  # e.g. a session opened
    repeats.say(logging.ERROR, "certificate not trusted")
    assert said(caplog) == [
        (logging.WARNING, "refused"),
        (logging.ERROR, "certificate not trusted"),
        (logging.ERROR, "certificate not trusted"),
    ]
