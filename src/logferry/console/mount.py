"""Mount the console (NiceGUI) on a role's own FastAPI app, beside the REST API, fully offline.

``ui.run_with`` mounts NiceGUI's app at ``/`` under the REST routes: ``/api/…``, ``/metrics`` and
``/openapi.json`` match first, every other path is the console. NiceGUI serves its scripts, styles and fonts
from ``/_nicegui/<version>/…`` of the same port, so a browser never asks another host (the end-to-end test
records every request to prove it). NiceGUI starts and stops in the app's lifespan, which uvicorn runs in the
role's ordered start-up and shutdown (``serving.py``).

Two things are kept as the REST API promised them: an unknown ``/api/…`` path (or a wrong method) still
answers the API's JSON error body, not a console page; and while ``api_token`` is set the console is not
mounted at all, because it has no sign-in yet and would otherwise open what the token closes.

This module is imported only when the API starts (``launch.start_api`` → ``apps``), never by a role at
start-up: importing NiceGUI takes about a second. It must never define a page itself or touch a store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from nicegui import ui
from starlette.routing import Match

from logferry.api.launch import CollectorView, RelayView, RoleView
from logferry.api.problems import error_response
from logferry.console import held, missing, overview, search
from logferry.console.i18n import add_locale_route
from logferry.console.layout import COLLECTOR_PAGES, RELAY_PAGES, header

log = logging.getLogger("logferry.console")

RECONNECT_TIMEOUT_S = 10.0  # a page survives a short network hiccup without reloading
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def relay_root(view: RelayView) -> Callable[[], None]:
    """The relay console: one page frame, its sub-pages picked by the URL path."""

    def root() -> None:
        header("relay", view.name, RELAY_PAGES)
        ui.sub_pages(
            {
                "/": lambda: overview.build(view),
                "/held": lambda: held.build(view),
                "/missing": lambda: missing.build(view),
            }
        )

    return root


def collector_root(view: CollectorView) -> Callable[[], None]:
    def root() -> None:
        header("collector", view.name, COLLECTOR_PAGES)
        ui.sub_pages({"/": lambda: search.build(view)})

    return root


def root_for(view: RoleView) -> Callable[[], None]:
    if isinstance(view, RelayView):
        return relay_root(view)
    if isinstance(view, CollectorView):
        return collector_root(view)
    raise TypeError(f"no console for a {type(view).__name__}")


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
    if view.token:
        log.info(
            "%s console is off: api_token is set and the console has no sign-in yet; "
            "use the CLI (logferry held/missing/audit) or the REST API with the token",
            role,
        )
        return False
    keep_api_errors(app)
    add_locale_route(app)
    ui.run_with(
        app,
        root=root_for(view),
        title=f"logferry {role} · {view.name}",
        mount_path="/",
        dark=False,
        reconnect_timeout=RECONNECT_TIMEOUT_S,
        show_welcome_message=False,  # the role prints its own READY line and logs
        storage_secret=None,  # no browser storage: nothing about an operator is kept in cookies yet
    )
    return True
