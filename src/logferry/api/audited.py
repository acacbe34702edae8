"""The relay's audited operator actions, each ONE function that the REST route and the console both call.

- :func:`audited`: run an action between a committed ``started`` audit entry and its outcome.
- :func:`settle_held`: release or delete held items, by keys or by filter, in bounded transactions.
- :func:`ask_device`: send an agent the relay's ``ResendRequest`` for the holes an operator points at.

Every action writes its audit entry (who, what, the target) BEFORE anything moves, and its outcome (how
many, or the error) after, so promise 3 holds whichever door the operator came in by. The routes turn the
exceptions here into HTTP answers (:class:`StaleKeys` → 409, :class:`DeviceNotConnected` → 409); the
console turns them into notifications.

This module imports neither FastAPI nor NiceGUI. It must never move a held item except through
``Journal.release``/``Journal.purge``, never touch the missing list except through the ``Reconciler`` and
``AgentGaps``, and never act before its audit entry is committed.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from logferry.errors import LogferryError, TransportError
from logferry.store import journal_held
from logferry.store.journal_held import HeldFilter, HeldKey
from logferry.store.missing import MissingKind

if TYPE_CHECKING:
    from logferry.api.launch import RelayView

CHUNK = 5000  # items per release/purge transaction: bounds memory and how long one write holds the writer
T = TypeVar("T")
Range = tuple[int, int]


class HeldVerb(enum.Enum):
    RELEASE = "held.release"
    DELETE = "held.delete"


class StaleKeys(LogferryError):
    """Some named items are not held any more; nothing was changed (REST: 409; console: a warning)."""

    def __init__(self, gone: list[str], asked: int) -> None:
        self.gone = gone
        self.asked = asked
        self.shown = ", ".join(gone[:10]) + (f" and {len(gone) - 10} more" if len(gone) > 10 else "")
        super().__init__(
            f"{len(gone)} of {asked} items are not held any more ({self.shown}); nothing was changed"
        )


class DeviceNotConnected(LogferryError):
    """The agent to ask is not connected now: a ResendRequest travels only on its own session."""


class NothingToAsk(LogferryError):
    """The named entries or source have no hole an agent could fill (wrong kind, settled, or none)."""


@dataclass(frozen=True, slots=True)
class Settled:
    count: int
    audit_id: int


@dataclass(frozen=True, slots=True)
class Asked:
    sources: list[str]
    ranges: dict[str, list[Range]]  # per source: the seq ranges asked for
    seqs: int
    audit_id: int


async def audited(
    view: RelayView,
    who: str,
    action: str,
    target: dict[str, Any],
    run: Callable[[], Awaitable[T]],
    count: Callable[[T], int],
) -> tuple[T, int]:
    """Run ``run`` between a committed ``started`` audit entry and its outcome; (result, entry id)."""
    entry = await view.audit.begin(who, action, target)
    try:
        result = await run()
    except Exception as exc:
        await view.audit.finish(entry, 0, error=f"{type(exc).__name__}: {exc}")
        raise
    await view.audit.finish(entry, count(result))
    return result, entry


async def settle_held(
    view: RelayView,
    verb: HeldVerb,
    target: HeldFilter | Sequence[HeldKey],
    who: str,
    *,
    described: dict[str, Any] | None = None,
) -> Settled:
    """Release or delete the given keys (all still held, else :class:`StaleKeys`) or all matching a filter.

    ``described`` is the filter as the operator gave it, for the audit entry (keys describe themselves).
    A filter moves items in transactions of :data:`CHUNK` until none match; released items wake the sender.
    """
    moving: HeldFilter | list[HeldKey]
    if isinstance(target, HeldFilter):
        moving = target
        audit_target: dict[str, Any] = {"filter": described if described is not None else {}}
    else:
        moving = list(dict.fromkeys(target))
        await check_still_held(view, moving)
        audit_target = {"keys": [f"{s}:{q}" for s, q in moving]}
    move = view.journal.release if verb is HeldVerb.RELEASE else view.journal.purge
    entry = await view.audit.begin(who, verb.value, audit_target)
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
    return Settled(done, entry)


async def check_still_held(view: RelayView, keys: list[HeldKey]) -> None:
    """Raise :class:`StaleKeys` naming the keys that are no longer held (nothing moves then)."""

    def find(conn: sqlite3.Connection) -> list[str]:
        return [f"{s}:{q}" for s, q in keys if journal_held.get_item(conn, s, q) is None]

    gone = await view.journal.read_with(find)
    if gone:
        raise StaleKeys(gone, len(keys))


async def device_holes(view: RelayView, ids: Sequence[int], source: str | None) -> dict[str, list[Range]]:
    """What an agent could fill: the ``missing_at_device`` entries named by ``ids`` that are still live,
    and, for ``source``, every hole in its seqs past the contiguous prefix (``AgentGaps.holes``)."""
    wanted: dict[str, list[Range]] = {}
    for e in await view.reconciler.missing.get(ids):
        if e.kind is MissingKind.MISSING_AT_DEVICE and e.state.value in ("open", "resent"):
            wanted.setdefault(e.source, []).append((e.first_seq, e.last_seq))
    if source:
        holes = await view.gaps.holes(source) if view.gaps is not None else []
        wanted.setdefault(source, []).extend(holes)
    return {s: sorted(set(r)) for s, r in wanted.items() if r}


async def ask_device(
    view: RelayView, who: str, *, ids: Sequence[int] = (), source: str | None = None
) -> Asked:
    """Send each agent concerned a ``ResendRequest`` for its holes, audited as ``missing.ask``.

    Raises :class:`NothingToAsk` (before the audit: nothing would move) or :class:`DeviceNotConnected`
    (audited as failed: the operator asked, the device was away).
    """
    holes = await device_holes(view, list(dict.fromkeys(ids)), source)
    if not holes:
        raise NothingToAsk(
            "nothing to ask the device for: the ids name no open missing_at_device entry"
            + (f", and {source} has no hole in its seqs" if source else "")
        )
    gaps = view.gaps
    target: dict[str, Any] = {"ids": list(dict.fromkeys(ids))} | ({"source": source} if source else {})

    async def run() -> Asked:
        if gaps is None:
            raise DeviceNotConnected("this relay takes no agents' connections")
        away = [s for s in holes if not gaps.connected(s)]
        if away:
            raise DeviceNotConnected(
                f"{', '.join(away)} not connected now; the relay can ask a device only while it is connected"
            )
        sent: dict[str, list[Range]] = {}
        for s, ranges in holes.items():
            try:
                sent[s] = await gaps.ask(s, ranges)
            except (KeyError, TransportError):  # it went away between the check and the request
                raise DeviceNotConnected(f"{s} disconnected while being asked") from None
        seqs = sum(hi - lo + 1 for r in sent.values() for lo, hi in r)
        return Asked(sorted(sent), sent, seqs, 0)

    result, entry = await audited(view, who, "missing.ask", target, run, lambda a: a.seqs)
    return Asked(result.sources, result.ranges, result.seqs, entry)
