"""The console's operator actions and the reads behind its tables, on the role's own live objects.

Every action here is also a REST call and a CLI command, and runs the very same function the REST route
runs (:mod:`logferry.api.audited`): the audit entry is committed (``started``, with the operator, the action
and its target) BEFORE anything moves, and its outcome (how many, or the error) is written after.

- held release/delete by keys or by filter   ↔ ``POST /api/held/release|delete``  ↔ ``logferry held …``
- missing resend / acknowledge by ids        ↔ ``POST /api/missing/resend|ack``   ↔ ``logferry missing …``
- ask the device for its holes               ↔ ``POST /api/missing/ask``          ↔ ``logferry missing ask``
- reconcile now                              ↔ ``POST /api/reconcile``            ↔ ``logferry reconcile``

The operator's name is passed in by the page (``access.require_operator()``); this module knows nothing of
NiceGUI (unit tests call it directly). It must never move a held item or touch the missing list except
through :mod:`logferry.api.audited`, and never act before its audit entry is committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from logferry.api import audited
from logferry.api.audited import Asked, HeldVerb, StaleKeys
from logferry.api.launch import RelayView
from logferry.api.params import iso
from logferry.model import Fate, Level
from logferry.reconcile.relay_side import ReconcileReport, ResendResult
from logferry.store import journal_held
from logferry.store.journal_held import HeldFilter, HeldItem, HeldKey

__all__ = ["HeldVerb", "HeldView", "StaleKeys"]


@dataclass(frozen=True, slots=True)
class HeldView:
    """The held-table filter as the operator set it; empty strings and None mean "any"."""

    rule: str = ""
    source: str = ""
    level: str = ""  # a level name: this level or more severe
    q: str = ""  # case-insensitive substring of the message (a file's path)
    since_ns: int | None = None  # record time, inclusive
    until_ns: int | None = None  # record time, exclusive

    def to_filter(self) -> HeldFilter:
        level = int(Level.parse(self.level)) if self.level else None
        return HeldFilter(
            rule=self.rule or None,
            source=self.source or None,
            level_max=level,
            text=self.q or None,
            ts_min_ns=self.since_ns,
            ts_max_ns=self.until_ns,
        )

    def described(self) -> dict[str, Any]:
        """The filter as the REST route audits it (``HeldQuery.model_dump(exclude_none=True)``)."""
        given: dict[str, Any] = {"rule": self.rule, "source": self.source, "level": self.level, "q": self.q}
        if self.since_ns is not None:
            given["since"] = iso(self.since_ns)
        if self.until_ns is not None:
            given["until"] = iso(self.until_ns)
        return {k: v for k, v in given.items() if v}


@dataclass(frozen=True, slots=True)
class HeldChoices:
    """What the held table's filters can offer: the rules and sources that hold something now."""

    rules: list[str]
    sources: list[str]


async def held_choices(view: RelayView) -> HeldChoices:
    counters = await view.journal.counters()
    held = [(source, rule) for (source, fate, rule), n in counters.items() if fate is Fate.HELD and n > 0]
    return HeldChoices(sorted({r for _, r in held}), sorted({s for s, _ in held}))


async def held_page(view: RelayView, chosen: HeldView, limit: int, offset: int) -> tuple[list[HeldItem], int]:
    """One page of held items matching ``chosen``, newest first, and how many match in all (as the API)."""
    target = chosen.to_filter()
    total = await view.journal.read_with(lambda c: journal_held.count_items(c, target))
    items = await view.journal.read_with(lambda c: journal_held.page_items(c, target, limit, offset))
    return items, total


async def held_count(view: RelayView, chosen: HeldView) -> int:
    target = chosen.to_filter()
    return await view.journal.read_with(lambda c: journal_held.count_items(c, target))


async def settle_held(view: RelayView, verb: HeldVerb, target: HeldView | Sequence[HeldKey], who: str) -> int:
    """Release or delete the given keys (all still held, else :class:`StaleKeys`) or all matching a filter.

    Returns how many items moved; runs ``api.audited.settle_held``, as ``POST /api/held/release|delete``.
    """
    if isinstance(target, HeldView):
        done = await audited.settle_held(view, verb, target.to_filter(), who, described=target.described())
    else:
        done = await audited.settle_held(view, verb, list(target), who)
    return done.count


async def resend_missing(view: RelayView, ids: list[int], who: str) -> ResendResult:
    """Resend these missing-list entries, audited as ``missing.resend`` (as ``POST /api/missing/resend``)."""
    wanted = list(dict.fromkeys(ids))
    result, _entry = await audited.audited(
        view,
        who,
        "missing.resend",
        {"ids": wanted},
        lambda: view.reconciler.resend(wanted),
        lambda r: r.entries,
    )
    return result


async def acknowledge_missing(view: RelayView, ids: list[int], who: str) -> int:
    """Accept these entries as they are, audited as ``missing.ack`` (as ``POST /api/missing/ack``)."""
    wanted = list(dict.fromkeys(ids))
    changed, _entry = await audited.audited(
        view, who, "missing.ack", {"ids": wanted}, lambda: view.reconciler.acknowledge_lost(wanted, who),
        lambda n: n,
    )  # fmt: skip
    return changed


async def ask_device(
    view: RelayView, who: str, *, ids: Sequence[int] = (), source: str | None = None
) -> Asked:
    """Send the agents concerned a ResendRequest now, audited as ``missing.ask`` (``POST /api/missing/ask``).

    Raises ``audited.NothingToAsk`` or ``audited.DeviceNotConnected``; the page says so.
    """
    return await audited.ask_device(view, who, ids=ids, source=source)


async def reconcile_now(view: RelayView, who: str) -> ReconcileReport:
    """Reconcile with the collector now, audited as ``reconcile`` (as ``POST /api/reconcile``).

    Raises what the reconciler raises (``ReconcileUnavailable``, transport errors); the page says so.
    """
    report, _entry = await audited.audited(
        view, who, "reconcile", {}, view.reconciler.run_now, lambda r: r.new_entries
    )
    return report
