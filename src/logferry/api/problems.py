"""The one error body of the API, and the handlers that turn every failure into it.

Every error answer is ``{"error": what is wrong, "hint": what to do, "status": code}``. Bad input is a 400
(never FastAPI's 422 and never a 500), an unknown item a 404, a missing or wrong token a 401, a viewer's
write a 403, an action on items that changed meanwhile a 409, a store that cannot answer a 503. The OpenAPI
spec says so too: :func:`fix_openapi` replaces the documented 422 with these, so a schema checker sees what
really comes back.

This module must never leak a traceback or an internal path to a client: unexpected exceptions are logged
here and answered with a generic 500 that says where to look.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from logferry.errors import StoreError

log = logging.getLogger("logferry.api")


class ApiError(Exception):
    """An error a route answers with; ``hint`` says what the caller should do about it."""

    def __init__(self, status: int, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint


class ErrorBody(BaseModel):
    status: int
    error: str
    hint: str = ""


def error_response(
    status: int, message: str, hint: str = "", headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(status=status, error=message, hint=hint)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _where(loc: tuple[Any, ...]) -> str:
    """``("query", "limit")`` → ``query parameter limit``; ``("body", "keys", 0)`` → ``body.keys[0]``."""
    if not loc:
        return "request"
    head, rest = str(loc[0]), loc[1:]
    path = ""
    for part in rest:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    if head in ("query", "path", "header"):
        return f"{head} parameter {path}" if path else head
    return f"{head}.{path}" if path else head


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{_where(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
    return error_response(
        400, "; ".join(problems) or "invalid request", "fix the named parameters; see /openapi.json"
    )


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.message, exc.hint, headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own refusals (unparsable body, unknown path, wrong method) in our error body too."""
    assert isinstance(exc, StarletteHTTPException)
    hints = {400: "send a JSON body as /openapi.json describes", 404: "see /openapi.json for the routes",
             405: "see /openapi.json for the methods of this route"}  # fmt: skip
    return error_response(exc.status_code, str(exc.detail), hints.get(exc.status_code, ""), exc.headers)


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s: store error: %s", request.method, request.url.path, exc)
    return error_response(503, f"the store could not answer: {exc}", "check the role's log and disk; retry")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StoreError, _store_error)


ERROR_STATUSES = {
    400: "bad input: the error names the parameter",
    401: "a bearer token is required (api_token or a user's token) and was missing or wrong",
    403: "the token's user is a viewer: only an operator may act; nothing was done",
    404: "no such item",
    409: "the items changed since they were listed",
    503: "the store could not answer",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route or router: these statuses answer with :class:`ErrorBody`."""
    return {s: {"model": ErrorBody, "description": ERROR_STATUSES[s]} for s in statuses}


def fix_openapi(app: FastAPI) -> None:
    """Document 400 (our answer to invalid input) instead of FastAPI's 422, on every operation."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = original()
        ref = {"$ref": "#/components/schemas/ErrorBody"}
        for operations in spec.get("paths", {}).values():
            for op in operations.values():
                responses = op.get("responses", {})
                if responses.pop("422", None) is not None:
                    responses.setdefault(
                        "400",
                        {
                            "description": ERROR_STATUSES[400],
                            "content": {"application/json": {"schema": ref}},
                        },
                    )
        schemas = spec.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
