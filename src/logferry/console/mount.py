"""Mount the console (NiceGUI) on a role's own FastAPI app, beside the REST API, fully offline.

``ui.run_with`` mounts NiceGUI's app at ``/`` under the REST routes: ``/api/…``, ``/metrics`` and
``/openapi.json`` match first, every other path is the console. NiceGUI serves its scripts, styles and fonts
from ``/_nicegui/<version>/…`` of the same port, so a browser never asks another host (the end-to-end test
records every request to prove it). NiceGUI starts and stops in the app's lifespan, which uvicorn runs in the
role's ordered start-up and shutdown (``serving.py``).

Two things are kept as the REST API promised them: an unknown ``/api/…`` path (or a wrong method) still
answers the API's JSON error body, not a console page; and while ``api_token`` is set and no users are
configured the console is not mounted at all: nobody could sign in, and it would open what the token closes.

With users configured every page wants a signed-in session (``signin.py``: ``/login``, ``/_signin``,
``/_signout``): the root sends a visitor without one to ``/login?next=<page>``, and each sub-page checks
again as it opens, so an expired session is noticed on the next click too. The root binds the role's gate
(``app.state.gate``, shared with the REST API) to the page's client for :mod:`logferry.console.access`.

This module is imported only when the API starts (``launch.start_api`` → ``apps``), never by a role at
start-up: importing NiceGUI takes about a second. It must never define a page itself or touch a store.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from nicegui import ui
from starlette.routing import Match

from logferry.api.launch import CollectorView, RelayView, RoleView
from logferry.api.problems import error_response
from logferry.console import access, analysis, audit, files, held, missing, overview, search, signin
from logferry.console.i18n import add_locale_route, register, safe_next, t
from logferry.console.layout import COLLECTOR_PAGES, RELAY_PAGES, header
from logferry.users.gate import Gate, gate_for
from logferry.users.sessions import COOKIE

log = logging.getLogger("logferry.console")

RECONNECT_TIMEOUT_S = 10.0  # a page survives a short network hiccup without reloading
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


Root = Callable[[Request], Response | None]
Pages = dict[str, Callable[..., Any]]


def relay_root(view: RelayView, gate: Gate | None = None) -> Root:
    """The relay console: one page frame, its sub-pages picked by the URL path."""
    pages: Pages = {
        "/": lambda: overview.build(view),
        "/held": lambda: held.build(view),
        "/missing": lambda: missing.build(view),
        "/audit": lambda: audit.build(view),
    }
    return framed("relay", view.name, RELAY_PAGES, pages, gate or gate_for(view.config, view.token))


def collector_root(view: CollectorView, gate: Gate | None = None) -> Root:
    pages: Pages = {
        "/": lambda: search.build(view),
        "/analysis": lambda: analysis.build(view),
        "/files": lambda: files.build(view),
    }
    return framed("collector", view.name, COLLECTOR_PAGES, pages, gate or gate_for(view.config, view.token))


def root_for(view: RoleView, gate: Gate) -> Root:
    if isinstance(view, RelayView):
        return relay_root(view, gate)
    if isinstance(view, CollectorView):
        return collector_root(view, gate)
    raise TypeError(f"no console for a {type(view).__name__}")


def framed(role: str, name: str, titles: tuple[tuple[str, str], ...], pages: Pages, gate: Gate) -> Root:
    """The root page of a role: sign-in when users are configured, then the header and the sub-pages."""

    def root(request: Request) -> Response | None:
        access.bind(gate)
        if gate.console_closed:  # mount_console never mounts it so; a root built by hand stays shut too
            ui.label(t("This console is closed: api_token is set and no users are configured.")).mark(
                "console-closed"
            )
            return None
        person = None
        if gate.has_users:
            person = gate.session(request.cookies.get(COOKIE))
            if request.url.path == access.LOGIN_PATH:
                wanted = request.query_params.get("next", "/")
                if person is not None:
                    return RedirectResponse(safe_next(wanted), status_code=303)
                signin.build(gate, role, name, wanted)
                return None
            if person is None:
                here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response = RedirectResponse(access.sign_in_path(here), status_code=303)
                if COOKIE in request.cookies:  # an ended session's id: of no use any more
                    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
                return response
        header(role, name, titles, person)
        ui.sub_pages({path: _signed_in_only(build) for path, build in pages.items()})
        return None

    return root


def _signed_in_only(build: Callable[..., Any]) -> Callable[..., Awaitable[None]]:
    """A sub-page that first checks the session is still alive (sub-pages open without a page load)."""

    @functools.wraps(build)  # keeps the builder's signature: sub_pages passes path parameters by name
    async def page(**kwargs: Any) -> None:
        if not access.who().signed_in:
            access.to_sign_in()
            return
        result = build(**kwargs)
        if inspect.isawaitable(result):
            await result

    return page


def keep_api_errors(app: FastAPI) -> None:
    """Unknown ``/api/…`` paths answer the API's 404 (a wrong method its 405), not a console page.

    Without this route NiceGUI's mount at ``/`` would take them. It checks the API routes itself, because
    Starlette prefers any full match (this route) over a path match with the wrong method (a 405).
    """
    api_routes = list(app.router.routes)  # the API's, before this route and NiceGUI's mount join them

    async def not_an_api_route(request: Request) -> JSONResponse:
        if any(r.matches(request.scope)[0] is Match.PARTIAL for r in api_routes):
            return error_response(405, "Method Not Allowed", "see /openapi.json for this route's methods")
        return error_response(404, "Not Found", "see /openapi.json for the routes")

    app.add_api_route("/api/{rest:path}", not_an_api_route, methods=METHODS, include_in_schema=False)


def mount_console(app: FastAPI, view: RoleView, role: str) -> bool:
    """Mount the role's console on ``app`` at ``/``; False (and a log line) when it stays off."""
    gate = getattr(app.state, "gate", None)
    if not isinstance(gate, Gate):
        if not isinstance(view, RelayView | CollectorView):
            raise TypeError(f"no console for a {type(view).__name__}")
        gate = app.state.gate = gate_for(view.config, view.token)
    if gate.console_closed:
        log.info(
            "%s console is off: api_token is set and no users are configured, so nobody could sign in; "
            "add [[%s.users]] (logferry users add) or use the CLI / REST API with the token",
            role,
            role,
        )
        return False
    if gate.has_users:
        log.info("%s console: sign-in required (users are configured)", role)
    keep_api_errors(app)
    add_locale_route(app)
    signin.add_session_routes(app, gate)
    ui.run_with(
        app,
        root=root_for(view, gate),
        title=f"logferry {role} · {view.name}",
        mount_path="/",
        dark=False,
        # UnoCSS's runtime with its Tailwind-3 preset styles the same utility classes as NiceGUI's default
        # in-browser Tailwind compiler, at a fraction of its start-up cost (docs/BENCHMARKS.md, console)
        unocss="wind3",
        reconnect_timeout=RECONNECT_TIMEOUT_S,
        show_welcome_message=False,  # the role prints its own READY line and logs
        storage_secret=None,  # no browser storage: the only cookie is the session id (signin.py)
    )
    return True


register("ko", {"This console is closed: api_token is set and no users are configured.": (
    "이 콘솔은 닫혀 있습니다. api_token이 설정되어 있고 사용자가 구성되어 있지 않습니다."
)})  # fmt: skip
