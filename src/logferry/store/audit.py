"""The audit log: every operator action on a server role — who, when, what, how many, and on what.

An action is written in two steps around the work it records: :meth:`AuditLog.begin` commits an entry in
state ``started`` (with the operator, the action and its target: keys or a filter) BEFORE anything leaves a
store, and :meth:`AuditLog.finish` then sets the outcome (``done`` with how many items it touched, or
``failed`` with the error). So promise 3 holds even across a ``kill -9`` in between: an item never leaves
without an entry, and an entry still ``started`` after a restart says "this action may have partly run".

The log lives in its own SQLite file (``audit.db`` in the role's data directory), so the relay's journal and
the collector's record store keep their own schemas. This module must never delete or rewrite an entry's
who/when/what: only the outcome of a ``started`` entry is ever filled in.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgspec

from logferry.store.sqlite import Database, Durability

AUDIT_APPLICATION_ID = 0x4C464175  # "LFAu"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE audit(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ns INTEGER NOT NULL,         -- when the action was asked for
        operator TEXT NOT NULL,
        action TEXT NOT NULL,           -- e.g. "held.release", "held.delete"
        target TEXT NOT NULL,           -- JSON: {"keys": [...]} or {"filter": {...}}
        state TEXT NOT NULL,            -- started, done, failed
        count INTEGER,                  -- items touched, once known
        detail TEXT NOT NULL DEFAULT '',-- the error of a failed action
        finished_ns INTEGER
    );
    CREATE INDEX audit_at ON audit(at_ns);
    """,
)


class AuditState(enum.Enum):
    STARTED = "started"  # committed before the action ran; stays so if the process died during it
    DONE = "done"
    FAILED = "failed"


class AuditEntry(msgspec.Struct, frozen=True, gc=False):
    id: int
    at_ns: int
    operator: str
    action: str
    target: dict[str, Any]
    state: AuditState
    count: int | None
    detail: str
    finished_ns: int | None


_COLUMNS = "id, at_ns, operator, action, target, state, count, detail, finished_ns"


def _entry(row: Any) -> AuditEntry:
    id_, at_ns, operator, action, target, state, count, detail, finished_ns = row
    return AuditEntry(
        id_, at_ns, operator, action, json.loads(target), AuditState(state), count, detail, finished_ns
    )


class AuditFilter(msgspec.Struct, frozen=True, gc=False):
    """Which entries to list; unset fields match everything.

    ``q`` is a case-insensitive substring of operator, action, target or detail; ``action`` matches an
    action exactly or, ending in ``.``, every action under it (``held.``); ``operator`` matches exactly;
    ``since_ns`` is inclusive, ``until_ns`` exclusive (the index ``audit_at`` serves them).
    """

    q: str | None = None
    action: str | None = None
    operator: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _where(chosen: AuditFilter | str | None) -> tuple[str, list[object]]:
    f = chosen if isinstance(chosen, AuditFilter) else AuditFilter(q=chosen or None)
    clauses: list[str] = []
    params: list[object] = []
    if f.q:
        cols = ("operator", "action", "target", "detail")
        clauses.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in cols) + ")")
        params += [_like(f.q)] * len(cols)
    if f.action:
        if f.action.endswith("."):
            clauses.append("substr(action, 1, ?) = ?")
            params += [len(f.action), f.action]
        else:
            clauses.append("action = ?")
            params.append(f.action)
    if f.operator:
        clauses.append("operator = ?")
        params.append(f.operator)
    if f.since_ns is not None:
        clauses.append("at_ns >= ?")
        params.append(f.since_ns)
    if f.until_ns is not None:
        clauses.append("at_ns < ?")
        params.append(f.until_ns)
    return " AND ".join(clauses) or "1", params


class AuditLog:
    """Open with ``await AuditLog.open(path)``; close with ``await close()``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: Path | str, durability: Durability = Durability.FULL) -> AuditLog:
        db = await Database.open(
            path, MIGRATIONS, durability, "audit", application_id=AUDIT_APPLICATION_ID, readers=1
        )
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    async def begin(self, operator: str, action: str, target: dict[str, Any]) -> int:
        """Commit a ``started`` entry and return its id; call before the action touches any store."""
        text = json.dumps(target, sort_keys=True, ensure_ascii=False)
        now = time.time_ns()

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO audit(at_ns, operator, action, target, state) VALUES (?, ?, ?, ?, ?)",
                (now, operator, action, text, AuditState.STARTED.value),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

        return await self._db.write(run)

    async def finish(self, entry_id: int, count: int, error: str = "") -> None:
        """Record the outcome of a started entry: how many items it touched, and the error if it failed."""
        state = AuditState.FAILED if error else AuditState.DONE
        now = time.time_ns()

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE audit SET state = ?, count = ?, detail = ?, finished_ns = ? "
                "WHERE id = ? AND state = ?",
                (state.value, count, error, now, entry_id, AuditState.STARTED.value),
            )

        await self._db.write(run)

    async def operators_and_actions(self) -> tuple[list[str], list[str]]:
        """Every operator and every action named in the log (for the console's filters), sorted."""
        sql_o, sql_a = "SELECT DISTINCT operator FROM audit", "SELECT DISTINCT action FROM audit"
        ops = await self._db.read(lambda c: sorted(str(r[0]) for r in c.execute(sql_o)))
        acts = await self._db.read(lambda c: sorted(str(r[0]) for r in c.execute(sql_a)))
        return ops, acts

    async def get(self, entry_id: int) -> AuditEntry | None:
        sql = f"SELECT {_COLUMNS} FROM audit WHERE id = ?"
        row = await self._db.read(lambda c: c.execute(sql, (entry_id,)).fetchone())
        return None if row is None else _entry(row)

    async def page(
        self, q: AuditFilter | str | None = None, limit: int = 100, offset: int = 0
    ) -> list[AuditEntry]:
        """Entries matching ``q`` (a filter, or a substring as :attr:`AuditFilter.q`), newest first."""
        clause, params = _where(q)
        sql = f"SELECT {_COLUMNS} FROM audit WHERE {clause} ORDER BY id DESC LIMIT ? OFFSET ?"
        rows = await self._db.read(lambda c: c.execute(sql, [*params, limit, offset]).fetchall())
        return [_entry(r) for r in rows]

    async def count(self, q: AuditFilter | str | None = None) -> int:
        clause, params = _where(q)
        sql = f"SELECT COUNT(*) FROM audit WHERE {clause}"
        row = await self._db.read(lambda c: c.execute(sql, params).fetchone())
        return int(row[0])
