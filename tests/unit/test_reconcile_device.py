"""Device gaps that fill later: missing_at_device entries close as ``recovered`` once journaled.

Real stores (a journal and a missing list in a temporary directory), no connection: the relay's sink calls
``AgentGaps.wanted`` after each commit exactly as these tests do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from logferry.model import make_record
from logferry.pipeline.rules import RuleSet
from logferry.reconcile.gaps import AgentGaps
from logferry.store.journal import Journal
from logferry.store.missing import MissingKind, MissingState, MissingStore, intersect

SOURCE = "dev-x"


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[Journal, MissingStore]]:
    journal = await Journal.open(tmp_path / "journal.db")
    missing = await MissingStore.open(tmp_path / "missing.db")
    try:
        yield journal, missing
    finally:
        await missing.close()
        await journal.close()


async def journal_seqs(
    journal: Journal, first: int, last: int, source: str = SOURCE
) -> list[tuple[int, int]]:
    records = [make_record(s, 1, 6, "h", "/p", f"line {s}") for s in range(first, last + 1)]
    return await journal.commit(source, RuleSet.from_config([]).decide_many(source, records))


async def rows(missing: MissingStore) -> list[tuple[int, int, str, int | None]]:
    got = await missing.entries(kind=MissingKind.MISSING_AT_DEVICE, limit=100)
    return sorted((e.first_seq, e.last_seq, e.state.value, e.resolved_ns) for e in got)


def test_intersect_ranges() -> None:
    assert intersect([(1, 10), (20, 30)], [(5, 25)]) == [(5, 10), (20, 25)]
    assert intersect([(1, 3)], [(4, 9)]) == []
    assert intersect([(1, 10)], [(3, 3), (1, 1), (10, 12)]) == [(1, 1), (3, 3), (10, 10)]


async def test_recover_device_closes_whole_and_splits_partial(stores: tuple[Journal, MissingStore]) -> None:
    _, missing = stores
    await missing.add_device_gaps(SOURCE, [(11, 20), (41, 50)], now_ns=100)
    await missing.add_device_gaps("other", [(11, 20)], now_ns=100)
    [later] = await missing.entries(kind=MissingKind.MISSING_AT_DEVICE, source=SOURCE, limit=1)
    await missing.mark_resent([later.id], now_ns=150)  # (41, 50): the newest; resent stays live

    assert await missing.recover_device(SOURCE, [(11, 20)], now_ns=200) == 10
    # 41..50 arrives in part: 44..46 is still missing, at both ends something arrived.
    assert await missing.recover_device(SOURCE, [(41, 43), (47, 50)], now_ns=300) == 7
    assert await rows(missing) == [
        (11, 20, "open", None),  # the other source is untouched
        (11, 20, "recovered", 200),
        (41, 43, "recovered", 300),
        (44, 46, "resent", None),  # the entry keeps its id and state for what is still missing
        (47, 50, "recovered", 300),
    ]
    [still] = await missing.entries(state=MissingState.RESENT, limit=10)
    assert (still.id, still.resends, still.found_ns) == (later.id, 1, 100)
    assert await missing.live_device_ranges() == {SOURCE: [(44, 46)], "other": [(11, 20)]}
    # Seqs of no live entry, and a second delivery of the same seqs, close nothing.
    assert await missing.recover_device(SOURCE, [(11, 20), (100, 200)], now_ns=400) == 0
    assert await missing.count(state=MissingState.RECOVERED) == 3


async def test_acknowledged_entries_stay_acknowledged(stores: tuple[Journal, MissingStore]) -> None:
    _, missing = stores
    await missing.add_device_gaps(SOURCE, [(5, 9)])
    [entry] = await missing.entries(limit=1)
    assert await missing.acknowledge([entry.id], "kim") == 1
    assert await missing.recover_device(SOURCE, [(1, 100)]) == 0
    assert [e.state for e in await missing.entries(limit=10)] == [MissingState.ACKNOWLEDGED]


async def test_commit_of_resent_seqs_closes_the_entry(stores: tuple[Journal, MissingStore]) -> None:
    journal, missing = stores
    gaps = AgentGaps(journal, missing, clock=lambda: 0.0)
    assert await gaps.wanted(SOURCE, await journal_seqs(journal, 1, 10)) == []
    assert await gaps.wanted(SOURCE, await journal_seqs(journal, 21, 30)) == [(11, 20)]
    await gaps.unavailable(SOURCE, [(11, 20)])
    assert [r[:3] for r in await rows(missing)] == [(11, 20, "open")]

    # The agent found 11..14 after all (an operator asked it): that part closes, the rest stays open.
    await gaps.wanted(SOURCE, await journal_seqs(journal, 11, 14))
    assert [r[:3] for r in await rows(missing)] == [(11, 14, "recovered"), (15, 20, "open")]
    await gaps.wanted(SOURCE, await journal_seqs(journal, 15, 20))
    assert [r[:3] for r in await rows(missing)] == [(11, 14, "recovered"), (15, 20, "recovered")]
    assert gaps.recovered == 10
    # A commit of a source with no live device entry reads nothing; nothing changes.
    await gaps.wanted(SOURCE, await journal_seqs(journal, 31, 40))
    assert await missing.count(state=MissingState.OPEN) == 0


async def test_sweep_closes_what_the_journal_got_without_a_check(
    stores: tuple[Journal, MissingStore],
) -> None:
    journal, missing = stores
    await journal_seqs(journal, 1, 10)
    await journal_seqs(journal, 21, 30)
    await missing.add_device_gaps(SOURCE, [(11, 20)])
    # Journaled while no AgentGaps looked (the session closed before its check; the relay crashed).
    await journal_seqs(journal, 11, 12)
    await journal_seqs(journal, 18, 20)
    gaps = AgentGaps(journal, missing)  # a restarted relay
    assert await gaps.sweep() == 5
    assert [r[:3] for r in await rows(missing)] == [
        (11, 12, "recovered"),
        (13, 17, "open"),
        (18, 20, "recovered"),
    ]
    assert await gaps.sweep() == 0  # nothing new: nothing changes
