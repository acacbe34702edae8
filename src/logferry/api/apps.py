"""The FastAPI app of each server role: which routers it has, its error handlers and its OpenAPI spec.

One router module per area; an area added later (files) is one import and one ``include_router`` line
here, taking the role's view. This module only assembles; routes live in their modules and must never be
defined here.
"""

from __future__ import annotations

from fastapi import FastAPI

from logferry import __version__
from logferry.api.launch import CollectorView, RelayView, RoleView
from logferry.api.metrics import collector_samples, metrics_router, relay_samples
from logferry.api.problems import fix_openapi, install_handlers
from logferry.api.routes_analysis import analysis_router
from logferry.api.routes_audit import audit_router
from logferry.api.routes_files import files_router
from logferry.api.routes_held import held_router
from logferry.api.routes_missing import missing_router
from logferry.api.routes_records import records_router
from logferry.api.routes_status import collector_status_router, health_router, relay_status_router
from logferry.console.mount import mount_console
from logferry.users.gate import gate_for

DESCRIPTION = (
    "logferry {role} API. Errors answer {{status, error, hint}}. With api_token or users configured, "
    "every route but /api/health needs 'Authorization: Bearer <token>': the api_token (an operator) or a "
    "user's own token (that user's role; a viewer's writes answer 403). Operator actions are audited under "
    "the user's name, or with the shared api_token under the X-Logferry-Operator header. "
    "Reference: docs/API.md."
)


def _base(role: str) -> FastAPI:
    app = FastAPI(
        title=f"logferry {role}",
        version=__version__,
        description=DESCRIPTION.format(role=role),
        docs_url=None,  # the interactive pages load scripts from a CDN, and sites run offline:
        redoc_url=None,  # /openapi.json is the reference (docs/API.md shows it in words)
    )
    install_handlers(app)
    fix_openapi(app)
    return app


def create_relay_app(view: RelayView) -> FastAPI:
    app = _base("relay")
    app.state.gate = gate_for(view.config, view.token)  # users, tokens, sessions: API and console share it
    app.include_router(health_router(view, "relay"))
    app.include_router(relay_status_router(view))
    app.include_router(held_router(view))
    app.include_router(missing_router(view))
    app.include_router(audit_router(view))
    app.include_router(metrics_router(view, lambda: relay_samples(view)))
    return app


def create_collector_app(view: CollectorView) -> FastAPI:
    app = _base("collector")
    app.state.gate = gate_for(view.config, view.token)
    app.include_router(health_router(view, "collector"))
    app.include_router(collector_status_router(view))
    app.include_router(records_router(view))
    app.include_router(files_router(view))
    app.include_router(analysis_router(view))
    app.include_router(audit_router(view))
    app.include_router(metrics_router(view, lambda: collector_samples(view)))
    return app


def create_app(view: RoleView, role: str) -> FastAPI:
    if isinstance(view, RelayView):
        app = create_relay_app(view)
    elif isinstance(view, CollectorView):
        app = create_collector_app(view)
    else:
        raise TypeError(f"no API for a {type(view).__name__} ({role})")
    mount_console(app, view, role)  # the console at / (NiceGUI), after every API route
    return app
