"""Reconciliation with real processes: damage the collector's store behind its back; the relay finds
exactly that, and resends (auto) or lists it for an operator (confirm); what it no longer has is lost."""

from __future__ import annotations

from pathlib import Path

from tests.integration.procs import Procs, query, wait_until
from tests.integration.reconcile_chain import start


def test_confirm_lists_exactly_the_damage_and_a_resend_restores_it(procs: Procs, tmp_path: Path) -> None:
    chain = start(procs, tmp_path, 5_000, policy="confirm")
    original = chain.rows(100, 109) | chain.rows(2000, 2000) | chain.rows(3000, 3000)
    chain.tamper("DELETE FROM records WHERE source = 'dev-r' AND seq BETWEEN 100 AND 109")
    chain.tamper("UPDATE records SET msg = 'tampered' WHERE source = 'dev-r' AND seq = 2000")
    chain.tamper("UPDATE records SET digest = x'0000000000000000' WHERE source = 'dev-r' AND seq = 3000")
    wait_until(lambda: len(chain.missing("open")) == 3, 30, "three open missing entries")
    found = {(kind, first, last) for _, kind, first, last, _ in chain.missing()}
    assert found == {
        ("missing_at_collector", 100, 109),
        ("digest_mismatch", 2000, 2000),
        ("digest_mismatch", 3000, 3000),
    }
    assert chain.stored() == 4_990  # confirm: nothing was resent on its own

    result = chain.offline("resend", [row[0] for row in chain.missing("open")])
    assert not isinstance(result, int) and result.entries == 3 and result.records == 12
    wait_until(lambda: chain.stored() == 5_000, 30, "the deleted records back at the collector")
    assert chain.rows(100, 109) == {s: v for s, v in original.items() if s < 2000}  # msg + digest identical
    # The mismatch persists: the collector keeps its first version and the relay's copy as a conflict.
    wait_until(lambda: [r[1] for r in chain.missing("resolved")] == ["missing_at_collector"], 30,
               "the deleted range resolved by the next reconciliation")  # fmt: skip
    live = [(r[1], r[2], r[4]) for r in chain.missing() if r[4] != "resolved"]
    assert live == [("digest_mismatch", 2000, "resent"), ("digest_mismatch", 3000, "resent")]
    assert chain.rows(2000, 2000)[2000][0] == "tampered"  # never overwritten...
    kept = query(chain.records_db, "SELECT msg, digest FROM conflicts WHERE source = 'dev-r' AND seq = 3000")
    assert [(m, bytes(d)) for m, d in kept] == [original[3000]]  # ...the relay's copy is kept beside it


def test_auto_resends_at_once_and_the_next_reconciliation_is_clean(procs: Procs, tmp_path: Path) -> None:
    chain = start(procs, tmp_path, 5_000, policy="auto")
    original = chain.rows(1, 5_000)
    chain.tamper("DELETE FROM records WHERE source = 'dev-r' AND (seq BETWEEN 1 AND 3 OR seq = 4096)")
    wait_until(lambda: chain.stored() == 5_000, 30, "the deleted records resent automatically")
    assert chain.rows(1, 5_000) == original
    wait_until(lambda: len(chain.missing("resolved")) == 2, 30, "both entries resolved")
    assert {(r[2], r[3]) for r in chain.missing()} == {(1, 3), (4096, 4096)}
    log_before = chain.relay.log_text().count("in sync")
    wait_until(lambda: chain.relay.log_text().count("in sync") > log_before, 10, "a clean reconciliation")


def test_pruned_outbox_is_reported_lost_until_acknowledged(procs: Procs, tmp_path: Path) -> None:
    chain = start(procs, tmp_path, 3_000, policy="auto", keep_bytes=0)
    chain.tamper("DELETE FROM records WHERE source = 'dev-r' AND seq BETWEEN 500 AND 520")
    wait_until(lambda: len(chain.missing("open")) == 1, 30, "the lost range listed")
    ((entry_id, kind, first, last, _),) = chain.missing("open")
    assert (kind, first, last) == ("lost", 500, 520)
    assert chain.stored() == 2_979  # nothing to resend: the relay no longer has them
    assert chain.offline("ack", [entry_id], who="kim") == 1
    log_before = chain.relay.log_text().count("in sync")
    wait_until(lambda: chain.relay.log_text().count("reconciled") > log_before + 1, 15, "two more runs")
    assert [(r[1], r[4]) for r in chain.missing()] == [("lost", "acknowledged")]
