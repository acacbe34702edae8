"""The audit log of operator actions, read-only: ``GET /api/audit`` (newest first, substring search).

Entries are written by the routes that act (held release and delete, missing-item resend and acknowledge,
reconcile now), never here. This module must never write or delete an entry.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from logferry.api.auth import token_check
from logferry.api.launch import RoleView
from logferry.api.params import DEFAULT_LIMIT, MAX_LIMIT, MAX_TEXT
from logferry.api.problems import error_responses
from logferry.api.schemas import AuditPage, audit_out

MAX_OFFSET = 2**62


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
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> AuditPage:
        total = await view.audit.count(q)
        items = await view.audit.page(q, limit, offset)
        return AuditPage(items=[audit_out(e) for e in items], total=total, limit=limit, offset=offset)

    return router
