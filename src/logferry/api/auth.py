"""Who may call the API, and who they say they are.

- The bearer token: with ``api_token`` (or ``api_token_file``) set, every ``/api/...`` route except
  ``/api/health``, and ``/metrics``, require ``Authorization: Bearer <token>``. ``/api/health`` stays open
  for load balancers and liveness probes (it says only "up" and whether the store answers), and so do
  ``/openapi.json`` (the spec is public; the data is not). Tokens are compared in constant
  time. Full users and roles come with the console.
- The operator: ``X-Logferry-Operator`` names who acts, for the audit log; "anonymous" when absent. It is a
  label, not an identity: with a token, the token is what authorizes.

This module must never log a token or put one in an error message.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header, Request

from logferry.api.problems import ApiError

OPERATOR_HEADER = "X-Logferry-Operator"
MAX_OPERATOR = 100


def token_check(token: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency that refuses requests without the bearer ``token``; a no-op when token is ""."""
    expected = token.encode()

    async def check(request: Request) -> None:
        if not expected:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if not header:
            raise ApiError(
                401,
                "this API requires a bearer token",
                "send 'Authorization: Bearer <api_token>' (logferry CLI: --token or $LOGFERRY_TOKEN)",
            )
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise ApiError(401, "the bearer token is wrong", "use the api_token of this role's config")

    return check


async def operator(
    x_logferry_operator: Annotated[
        str | None, Header(description="who acts, for the audit log (default: anonymous)")
    ] = None,
) -> str:
    """The operator named by the request, checked: printable, at most 100 characters."""
    name = (x_logferry_operator or "").strip()
    if not name:
        return "anonymous"
    if len(name) > MAX_OPERATOR or not name.isprintable():
        raise ApiError(
            400,
            f"header {OPERATOR_HEADER}: expected a printable name of at most {MAX_OPERATOR} characters",
            "e.g. X-Logferry-Operator: kim",
        )
    return name
