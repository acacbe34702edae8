"""The audit log of operator actions, read-only: ``GET /api/audit`` (newest first; search by text, action,
operator and time).

Entries are written by the routes that act (held release and delete, missing-item resend and acknowledge,
reconcile now), never here. This module must never write or delete an entry.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from logferry.api.auth import token_check
from logferry.api.launch import RoleView
from logferry.api.params import DEFAULT_LIMIT, MAX_LIMIT, MAX_TEXT, parse_time_ns
from logferry.api.problems import ApiError, error_responses
from logferry.api.schemas import AuditPage, audit_out
from logferry.store.audit import AuditFilter

MAX_OFFSET = 2**62


def audit_filter(
    q: str | None, action: str | None, operator: str | None, since: str | None, until: str | None
) -> AuditFilter:
    """The store's filter from query parameters (the console builds it the same way); 400 for bad times."""
    since_ns, until_ns = parse_time_ns(since, "since"), parse_time_ns(until, "until")
    if since_ns is not None and until_ns is not None and until_ns <= since_ns:
        raise ApiError(400, "until must be later than since", "swap them, or leave one out")
    return AuditFilter(q=q or None, action=action or None, operator=operator or None, since_ns=since_ns,
                       until_ns=until_ns)  # fmt: skip


def audit_router(view: RoleView) -> APIRouter:
    router = APIRouter(
        tags=["audit"],
        dependencies=[Depends(token_check(view.token))],
        responses=error_responses(400, 401, 503),
    )

    @router.get("/api/audit", response_model=AuditPage, summary="Operator actions: who, when, what, how many")
    async def audit(
        q: Annotated[
            str | None,
            Query(max_length=MAX_TEXT, description="case-insensitive substring of operator, action, target"),
        ] = None,
        action: Annotated[
            str | None,
            Query(max_length=100, description="an action (held.release), or a prefix ending in '.' (held.)"),
        ] = None,
        operator: Annotated[str | None, Query(max_length=100, description="exactly this operator")] = None,
        since: Annotated[
            str | None, Query(max_length=64, description="at ≥ this: ISO 8601 or epoch s")
        ] = None,
        until: Annotated[
            str | None, Query(max_length=64, description="at < this: ISO 8601 or epoch s")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> AuditPage:
        chosen = audit_filter(q, action, operator, since, until)
        total = await view.audit.count(chosen)
        items = await view.audit.page(chosen, limit, offset)
        return AuditPage(items=[audit_out(e) for e in items], total=total, limit=limit, offset=offset)

    return router
