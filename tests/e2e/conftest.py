"""Fixtures of the browser tests: real daemons (tests/integration/procs.py) and Debian's chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.procs import Procs

CHROMIUM = Path(os.environ.get("LOGFERRY_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.stop_all()


@pytest.fixture
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's chromium. "
            "Install it: apt-get install -y chromium (scripts/system-deps.sh does it for make test)",
            pytrace=False,
        )
    return CHROMIUM
