"""1M items in sync: one reconciliation exchange stays under 4 KB (stores built in-process, see
bench/reconcile.py, whose builder and in-process link this test reuses)."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType


def _bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "reconcile.py"
    spec = importlib.util.spec_from_file_location("bench_reconcile", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_million_in_sync_costs_one_small_exchange() -> None:
    result = asyncio.run(_bench().one_case(1_000_000, 0))
    assert result["clean"] and result["questions"] == 1
    assert result["bytes"] < 4096, result
    assert result["seconds"] < 1.0, result


def test_a_few_differences_among_a_million_are_found_exactly() -> None:
    result = asyncio.run(_bench().one_case(1_000_000, 2))
    assert not result["clean"] and result["new_entries"] == 2, result
