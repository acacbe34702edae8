"""A daemon's cyclic collector makes full passes ten times less often (lifecycle.spare_full_collections):
the CLI sets it for every role it runs, before anything is built, and leaves the young generations alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from logferry.cli import main
from logferry.lifecycle import FULL_PASS_AFTER, spare_full_collections


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    """This test process's thresholds, put back afterwards."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield before
    gc.set_threshold(*before)


def test_only_the_full_pass_waits_longer(thresholds: tuple[int, int, int]) -> None:
    spare_full_collections()
    assert gc.get_threshold() == (700, 10, FULL_PASS_AFTER)
    assert FULL_PASS_AFTER > 10


@pytest.mark.parametrize("role", ["agent", "relay", "collector"])
def test_every_role_started_by_the_cli_gets_it(
    role: str, thresholds: tuple[int, int, int], tmp_path: Path
) -> None:
    # The config is missing, so the role stops right after the CLI set it up (a clear error, status 2).
    missing = tmp_path / "absent.toml"
    assert main([role, "--config", str(missing)]) != 0
    assert gc.get_threshold() == (700, 10, FULL_PASS_AFTER)
