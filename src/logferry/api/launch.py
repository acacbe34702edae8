"""Start a role's REST API after its logferry/1 port, without delaying that port, and stop it in order.

A role calls :func:`start_api` once its logferry/1 listener accepts. The socket is bound here first (with
``SO_REUSEADDR``, like every logferry port, so a restart is instant); fastapi, pydantic and uvicorn are then
imported in a worker thread, so the event loop keeps serving agents and relays during the ~0.5 s import.

What each role hands to its API is a *view* (:class:`RelayView`, :class:`CollectorView`): the live objects
the routes read and act on. Adding an area (files, …) means adding a field to a view and a router in
``apps.py``.

A port already in use does not stop the role: the data path matters more than the console. The role logs
an error naming ``api_listen``, runs without an API, and its READY line has no "api" address. This module
must stay cheap to import (no fastapi, uvicorn or pydantic at module level) and must never touch a store.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from logferry.api.rates import RateHistory, Throughput
from logferry.config import CollectorConfig, RelayConfig, parse_address, read_token
from logferry.errors import ConfigError, TransportError
from logferry.transport.listener import bind_socket, format_address

if TYPE_CHECKING:
    from logferry.analysis.follower import Follower
    from logferry.reconcile.gaps import AgentGaps
    from logferry.reconcile.relay_side import Reconciler
    from logferry.roles.server import PeerTable
    from logferry.store.audit import AuditLog
    from logferry.store.file_intake import FileIntake
    from logferry.store.file_manifests import FileManifests
    from logferry.store.journal import Journal
    from logferry.store.records import RecordStore
    from logferry.transport.file_sender import FileSender
    from logferry.transport.sender import Sender
    from logferry.transport.serve import SessionCounters

log = logging.getLogger("logferry.api")


@dataclass(kw_only=True)
class RoleView:
    """What every server role shows: its peers, refused connections, audit log, listen addresses."""

    name: str
    token: str  # the API's bearer token; "" = no token required
    peers: PeerTable
    counters: SessionCounters
    audit: AuditLog
    listen: dict[str, str] = field(default_factory=dict)
    intake: FileIntake | None = None  # whole files received on the logferry/1 port (None: not open yet)
    started_ns: int = field(default_factory=time.time_ns)
    started_monotonic: float = field(default_factory=time.monotonic)


@dataclass(kw_only=True)
class RelayView(RoleView):
    journal: Journal
    sender: Sender
    config: RelayConfig
    reconciler: Reconciler  # reconcile now, the missing list and its operator actions
    gaps: AgentGaps | None = None  # holes in agents' seqs; "ask the device" (None: no agents' port)
    file_sender: FileSender | None = None  # whole files on their way to the collector
    throughput: Throughput = field(default_factory=Throughput)  # records/bytes in and out since start
    rates: RateHistory | None = None  # sampled rates of ``throughput`` (None until the role samples)

    def rate_history(self) -> RateHistory:
        """The sampled rates; a view built without one (tests, tools) gets an empty history of its own."""
        if self.rates is None:
            self.rates = RateHistory(self.throughput)
        return self.rates


@dataclass(kw_only=True)
class CollectorView(RoleView):
    store: RecordStore
    config: CollectorConfig
    files: FileManifests | None = None  # whole files: manifests and content (routes_files.py)
    analysis: Follower | None = None  # templates, error rates, alerts (routes_analysis.py); None: off


class RunningApi:
    def __init__(self, server: Any, address: str) -> None:
        self._server: Any = server
        self.address = address

    async def stop(self, deadline_s: float) -> None:
        """Stop serving (idempotent): in-flight requests get ``deadline_s`` to finish."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(deadline_s)


async def start_api(view: RoleView, role: str, listen: str) -> RunningApi | None:
    """Bind ``listen`` and serve the role's API on it; None when turned off ("") or the port is taken."""
    if not listen:
        log.info("%s API is off (api_listen is empty)", role)
        return None
    host, port = parse_address(listen)
    try:
        sock = bind_socket(host, port)
    except TransportError as exc:
        log.error(
            "%s API not started: %s — the %s goes on without it; set api_listen to a free address "
            '(port 0: any) or to "" to turn the API off',
            role, str(exc).split("; is another")[0], role,
        )  # fmt: skip
        return None
    try:
        apps = await asyncio.to_thread(importlib.import_module, "logferry.api.apps")
        serving = await asyncio.to_thread(importlib.import_module, "logferry.api.serving")
        server = serving.ApiServer(apps.create_app(view, role), sock, role)
        await server.start()
    except BaseException:
        sock.close()
        raise
    bound = sock.getsockname()
    address = format_address(bound[0], bound[1])
    log.info("%s API listening on http://%s (OpenAPI at /openapi.json)", role, address)
    return RunningApi(server, address)


def api_token(cfg: RelayConfig | CollectorConfig, role: str) -> str:
    """The API's bearer token from ``api_token`` or ``api_token_file`` ("" = none); raises ConfigError."""
    if cfg.api_token and cfg.api_token_file:
        raise ConfigError("set either api_token or api_token_file, not both", key=f"{role}.api_token_file")
    return read_token(cfg.api_token, cfg.api_token_file, f"{role}.api_token_file")
