"""Who calls the API, and whether they may act: the bearer token, the user behind it, and their role.

The rules live in :class:`logferry.users.gate.Gate` (one per app, in ``app.state.gate``); here they meet HTTP:

- While neither ``api_token`` nor users are configured the API is open (keep it on 127.0.0.1 or a
  management network). Otherwise every route but ``/api/health`` (and ``/openapi.json``: the spec is public,
  the data is not) needs ``Authorization: Bearer <token>`` — the shared ``api_token`` (an operator's rights)
  or a user's own token (that user's role) — or else a 401. A GET may instead carry the console's session
  cookie, so a signed-in browser can follow a console link to the API (a download, say); a write never
  takes the cookie, so no other site can make a browser act (SameSite=Strict guards it as well).
- Write routes take :func:`operator`: a viewer gets a 403 before anything is written; the name for the audit
  log is the user's own. Only with the shared ``api_token`` (or an open API), which stands for nobody in
  particular, does the ``X-Logferry-Operator`` header name who acts ("anonymous" when absent).

Tokens are compared in constant time, users' tokens by their sha256 digest. This module must never log a
token, a session id or a password, or put one in an error message.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header, Request

from logferry.api.problems import ApiError
from logferry.users.gate import SHARED, Caller, Gate
from logferry.users.sessions import COOKIE

log = logging.getLogger("logferry.api")

OPERATOR_HEADER = "X-Logferry-Operator"
MAX_OPERATOR = 100
_COOKIE_METHODS = frozenset({"GET", "HEAD"})
_OPEN = Caller(SHARED, shared=True)


def gate_of(request: Request, fallback: Gate | None = None) -> Gate:
    """The app's gate (``apps.py`` puts it in ``app.state.gate``); ``fallback`` for a bare router."""
    gate = getattr(request.app.state, "gate", None)
    if isinstance(gate, Gate):
        return gate
    return fallback if fallback is not None else Gate([])


def authenticate(request: Request, gate: Gate) -> Caller:
    """The caller of ``request`` under ``gate``'s rules; ApiError(401) when a token is needed and missing or
    wrong. The answer is kept on the request, so the write check does not verify twice."""
    known = getattr(request.state, "caller", None)
    if isinstance(known, Caller):
        return known
    caller = _identify(request, gate)
    request.state.caller = caller
    return caller


def _identify(request: Request, gate: Gate) -> Caller:
    if not gate.api_needs_token:
        return _OPEN
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, given = header.partition(" ")
        caller = gate.bearer(given.strip()) if scheme.lower() == "bearer" else None
        if caller is None:
            raise ApiError(
                401,
                "the bearer token is wrong",
                "use the api_token of this role's config, or your own token (logferry users token)",
            )
        return caller
    if request.method in _COOKIE_METHODS:
        person = gate.session(request.cookies.get(COOKIE))
        if person is not None:
            return Caller(person, shared=False)
    raise ApiError(
        401,
        "this API requires a bearer token",
        "send 'Authorization: Bearer <token>' with the api_token or your own token "
        "(logferry CLI: --token or $LOGFERRY_TOKEN)",
    )


def token_check(token: str) -> Callable[[Request], Awaitable[None]]:
    """A router dependency: refuses requests that do not authenticate (401).

    ``token`` is the role's ``api_token``; it is used only when the app carries no gate (a router mounted on
    its own), where it is the whole rule, as before users existed.
    """
    fallback = Gate([], token)

    async def check(request: Request) -> None:
        authenticate(request, gate_of(request, fallback))

    return check


async def operator(
    request: Request,
    x_logferry_operator: Annotated[
        str | None,
        Header(
            description="who acts, for the audit log, when the shared api_token is used (default: "
            "anonymous); ignored with a user's own token, which names its user"
        ),
    ] = None,
) -> str:
    """The name the audit log records for a write; ApiError(403) for a viewer, 400 for a bad header."""
    caller = authenticate(request, gate_of(request))
    if not caller.person.may_write:
        log.warning("%s %s refused: %s is a viewer", request.method, request.url.path, caller.person.name)
        raise ApiError(
            403,
            f"{caller.person.name} is a viewer: only an operator may release, delete, resend, acknowledge "
            "or reconcile; nothing was done",
            "ask an operator, or use an operator's token (role = \"operator\" in the role's users)",
        )
    if not caller.shared:
        return caller.person.name
    name = (x_logferry_operator or "").strip()
    if not name:
        return caller.person.name  # "anonymous"
    if len(name) > MAX_OPERATOR or not name.isprintable():
        raise ApiError(
            400,
            f"header {OPERATOR_HEADER}: expected a printable name of at most {MAX_OPERATOR} characters",
            "e.g. X-Logferry-Operator: kim",
        )
    return name
