"""Level detection: a table of real-looking lines and the level each announces."""

from __future__ import annotations

import pytest

from logferry.inputs.levels import SCAN_CHARS, detect_level
from logferry.model import Level

CASES = [
    ("2024-05-01 12:00:00 ERROR db: connection refused", Level.ERROR),
    ("2024-05-01 12:00:00 ERR db: connection refused", Level.ERROR),
    ("WARN disk 91% full", Level.WARNING),
    ("WARNING:root:deprecated call", Level.WARNING),
    ("12:00:01 INFO started", Level.INFO),
    ("12:00:01 DEBUG cache miss key=42", Level.DEBUG),
    ("12:00:01 TRACE enter f()", Level.DEBUG),
    ("CRIT raid degraded", Level.CRITICAL),
    ("CRITICAL: out of memory", Level.CRITICAL),
    ("FATAL could not bind :80", Level.CRITICAL),
    ("PANIC kernel", Level.EMERGENCY),
    ("NOTICE config reloaded", Level.NOTICE),
    ("ts=2024 level=error msg=boom", Level.ERROR),
    ('ts=2024 level="warn" msg=x', Level.WARNING),
    ("lvl: debug something", Level.DEBUG),
    ("severity=Critical disk", Level.CRITICAL),
    ('{"ts": 1, "level": "error", "msg": "x"}', Level.ERROR),
    ('{"ts": 1, "Level":"Warning"}', Level.WARNING),
    ("[error] client 1.2.3.4 denied", Level.ERROR),
    ("[Warn] slow query", Level.WARNING),
    ("<debug> tick", Level.DEBUG),
    ("(info) started", Level.INFO),
    ("<3>systemd: unit failed", Level.ERROR),
    ("<11>Jan  1 host app: msg", Level.ERROR),  # facility 1, severity 3
    ("<134>Jan  1 host app: msg", Level.INFO),  # facility 16, severity 6
    ("<999>not a pri", Level.INFO),
    ("no error found in this line", Level.INFO),  # lower-case bare words are prose, not levels
    ("TERROR and INFORMATIONAL are not levels", Level.INFO),
    ("ERRORS happen", Level.INFO),
    ("user=alice ERROR later INFO", Level.ERROR),  # leftmost wins
    ("[main] INFO ok", Level.INFO),
    ("", Level.INFO),
    ("plain message", Level.INFO),
    ("\ufffd\ufffd ERROR after bad bytes", Level.ERROR),
]


@pytest.mark.parametrize(("line", "level"), CASES)
def test_detect_level(line: str, level: Level) -> None:
    assert detect_level(line) == level


def test_only_the_head_is_scanned() -> None:
    assert detect_level("x" * SCAN_CHARS + " ERROR") == Level.INFO
    assert detect_level("x" * (SCAN_CHARS - 10) + " ERROR") == Level.ERROR


def test_every_spelling_maps_to_a_level() -> None:
    for word in (
        "EMERG",
        "EMERGENCY",
        "ALERT",
        "CRIT",
        "CRITICAL",
        "FATAL",
        "ERROR",
        "ERR",
        "WARN",
        "WARNING",
    ):
        assert detect_level(f"x {word} y") < Level.NOTICE, word
    for word in ("NOTICE", "INFO", "INFORMATION", "DEBUG", "TRACE"):
        assert detect_level(f"x {word} y") >= Level.NOTICE, word
