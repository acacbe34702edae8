"""The console's operator actions and the reads behind its tables, on the role's own live objects.

Every action here is also a REST call and a CLI command, and is carried out the same way as the REST route
does it: the audit entry is committed (``started``, with the operator, the action and its target) BEFORE
anything moves, and its outcome (how many, or the error) is written after.

- held release/delete by keys or by filter   ↔ ``POST /api/held/release|delete``  ↔ ``logferry held …``
- missing resend / acknowledge by ids        ↔ ``POST /api/missing/resend|ack``   ↔ ``logferry missing …``
- reconcile now                              ↔ ``POST /api/reconcile``            ↔ ``logferry reconcile``

This module knows nothing of NiceGUI (the pages call it; unit tests call it directly). It must never move
a held item except through ``Journal.release``/``Journal.purge``, never touch the missing list except
through the ``Reconciler``, and never act before its audit entry is committed.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from logferry.api.launch import RelayView
from logferry.model import Fate, Level
from logferry.reconcile.relay_side import ReconcileReport, ResendResult
from logferry.store import journal_held
from logferry.store.journal_held import HeldFilter, HeldItem, HeldKey

CHUNK = 5000  # items per release/purge transaction, as the REST route: bounds memory and writer time
OPERATOR = "console"  # who the audit log names until sign-in exists (issue 4, part 3)
T = TypeVar("T")


class HeldVerb(enum.Enum):
    RELEASE = "held.release"
    DELETE = "held.delete"


@dataclass(frozen=True, slots=True)
class HeldView:
    """The held-table filter as the operator set it; empty strings mean "any"."""

    rule: str = ""
    source: str = ""
    level: str = ""  # a level name: this level or more severe
    q: str = ""  # case-insensitive substring of the message (a file's path)

    def to_filter(self) -> HeldFilter:
        level = int(Level.parse(self.level)) if self.level else None
        return HeldFilter(
            rule=self.rule or None, source=self.source or None, level_max=level, text=self.q or None
        )

    def described(self) -> dict[str, Any]:
        """The filter as the REST route audits it (``HeldQuery.model_dump(exclude_none=True)``)."""
        given = {"rule": self.rule, "source": self.source, "level": self.level, "q": self.q}
        return {"filter": {k: v for k, v in given.items() if v}}


class StaleKeys(Exception):
    """Some selected items are not held any more; nothing was changed (the REST route answers 409)."""

    def __init__(self, gone: list[str], asked: int) -> None:
        shown = ", ".join(gone[:10]) + (f" and {len(gone) - 10} more" if len(gone) > 10 else "")
        super().__init__(
            f"{len(gone)} of {asked} selected items are not held any more ({shown}); nothing was changed. "
            "The list was refreshed: select again."
        )


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
    """One page of held items matching ``chosen``, newest first, and how many match in all."""
    target = chosen.to_filter()
    total = await view.journal.read_with(lambda c: journal_held.count_items(c, target))
    items = await view.journal.read_with(lambda c: journal_held.page_items(c, target, limit, offset))
    return items, total


async def held_count(view: RelayView, chosen: HeldView) -> int:
    target = chosen.to_filter()
    return await view.journal.read_with(lambda c: journal_held.count_items(c, target))


async def settle_held(
    view: RelayView, verb: HeldVerb, target: HeldView | list[HeldKey], who: str = OPERATOR
) -> int:
    """Release or delete the given keys (all still held, else :class:`StaleKeys`) or all matching a filter.

    Returns how many items moved. Audited exactly as ``POST /api/held/release|delete``.
    """
    moving: HeldFilter | list[HeldKey]
    if isinstance(target, HeldView):
        moving, described = target.to_filter(), target.described()
    else:
        moving = list(dict.fromkeys(target))
        await _check_still_held(view, moving)
        described = {"keys": [f"{s}:{q}" for s, q in moving]}
    move = view.journal.release if verb is HeldVerb.RELEASE else view.journal.purge
    entry = await view.audit.begin(who, verb.value, described)
    done = 0
    try:
        while True:
            n = await move(moving, limit=CHUNK)
            done += n
            if n and verb is HeldVerb.RELEASE:
                view.sender.notify()  # released items are in the outbox: forward them now
            if n < CHUNK or not isinstance(moving, HeldFilter):
                break
    except Exception as exc:
        await view.audit.finish(entry, done, error=f"{type(exc).__name__}: {exc}")
        raise
    await view.audit.finish(entry, done)
    return done


async def _check_still_held(view: RelayView, keys: list[HeldKey]) -> None:
    def find(conn: sqlite3.Connection) -> list[str]:
        return [f"{s}:{q}" for s, q in keys if journal_held.get_item(conn, s, q) is None]

    gone = await view.journal.read_with(find)
    if gone:
        raise StaleKeys(gone, len(keys))


async def _audited(
    view: RelayView,
    who: str,
    action: str,
    target: dict[str, Any],
    run: Callable[[], Awaitable[T]],
    count: Callable[[T], int],
) -> T:
    entry = await view.audit.begin(who, action, target)
    try:
        result = await run()
    except Exception as exc:
        await view.audit.finish(entry, 0, error=f"{type(exc).__name__}: {exc}")
        raise
    await view.audit.finish(entry, count(result))
    return result


async def resend_missing(view: RelayView, ids: list[int], who: str = OPERATOR) -> ResendResult:
    """Resend these missing-list entries, audited as ``missing.resend`` (as ``POST /api/missing/resend``)."""
    wanted = list(dict.fromkeys(ids))
    return await _audited(
        view,
        who,
        "missing.resend",
        {"ids": wanted},
        lambda: view.reconciler.resend(wanted),
        lambda r: r.entries,
    )


async def acknowledge_missing(view: RelayView, ids: list[int], who: str = OPERATOR) -> int:
    """Accept these entries as they are, audited as ``missing.ack`` (as ``POST /api/missing/ack``)."""
    wanted = list(dict.fromkeys(ids))
    return await _audited(
        view,
        who,
        "missing.ack",
        {"ids": wanted},
        lambda: view.reconciler.acknowledge_lost(wanted, who),
        lambda n: n,
    )


async def reconcile_now(view: RelayView, who: str = OPERATOR) -> ReconcileReport:
    """Reconcile with the collector now, audited as ``reconcile`` (as ``POST /api/reconcile``).

    Raises what the reconciler raises (``ReconcileUnavailable``, transport errors); the page says so.
    """
    return await _audited(view, who, "reconcile", {}, view.reconciler.run_now, lambda r: r.new_entries)
