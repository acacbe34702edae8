"""Run an ASGI app with uvicorn inside a role's own event loop, on a socket the role already bound.

Two things differ from ``uvicorn.run``: the socket comes from ``transport.listener.bind_socket`` (so the
API restarts at once after ``kill -9``, like the logferry/1 port), and uvicorn's own signal handling is
switched off — the role's ``StopSignal`` owns SIGTERM/SIGINT and stops the API in its ordered shutdown.
uvicorn's logging config is left alone too (the role set up logging; access logs are off).

This module must never install signal handlers, configure logging, or bind sockets itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

import uvicorn

log = logging.getLogger("logferry.api")


class ApiServer:
    """One running API: ``start()`` returns once it accepts; ``stop()`` closes it within a deadline.

    uvicorn's ``Server.serve()`` would capture signals; its parts (``startup``, ``main_loop``,
    ``shutdown``) are called here instead, so start-up is awaited directly rather than polled for.
    """

    def __init__(self, app: Any, sock: socket.socket, name: str) -> None:
        self._config = uvicorn.Config(
            app,
            # The app's lifespan starts and stops the console (NiceGUI) inside start() and stop(), so it
            # stays within the role's ordered start-up and shutdown.
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
            server_header=False,
        )
        self.name = name
        self._sock = sock
        self._server = uvicorn.Server(self._config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if not self._config.loaded:
            self._config.load()
        self._server.lifespan = self._config.lifespan_class(self._config)
        await self._server.startup(sockets=[self._sock])
        self._task = asyncio.create_task(self._serve(), name=f"{self.name} API")

    async def _serve(self) -> None:
        await self._server.main_loop()  # returns once should_exit is set
        await self._server.shutdown(sockets=[self._sock])

    async def stop(self, deadline_s: float) -> None:
        if self._task is None:
            self._sock.close()
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), deadline_s)
        except TimeoutError:
            log.warning("%s API did not stop within %.1fs; closing its connections", self.name, deadline_s)
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
