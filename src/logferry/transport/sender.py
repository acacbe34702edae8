"""The client side of logferry/1 over asyncio: ship batches from a durable queue, reconnecting forever.

Used by the agent (its spool → the relay) and by the relay (its outbox → the collector). The queue is the
durable store; the sender keeps nothing that is not also on disk. After every (re)connect it starts again
from the oldest unacknowledged batch, so everything unacknowledged is resent; receivers dedupe by id.
Reconnects back off exponentially with full jitter, capped, and reset after a session opened.

Two exchanges ride the same session beside the batches: a relay's reconciliation queries (``ask``: the
answer comes back through the read loop, matched by query id), and an agent's answers to a relay's
``ResendRequest`` (``on_resend`` gives the records still spooled, sent first as ordinary batches, and the
seqs no longer there, sent as ``Unavailable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from logferry.errors import AuthError, ProtocolError, StoreError, TransportError
from logferry.log_repeats import Repeats
from logferry.protocol.connection import (
    Acked,
    Answered,
    ClientConnection,
    CreditChanged,
    Nacked,
    Opened,
    PeerClosed,
    ResendRequested,
)
from logferry.protocol.messages import (
    NONCE_BYTES,
    Ack,
    Batch,
    Code,
    ItemsAnswer,
    ItemsQuery,
    PeerRole,
    ReconcileAnswer,
    ReconcileQuery,
    ResendRequest,
    Welcome,
)
from logferry.transport.listener import describe_tls_error, format_address
from logferry.transport.wire import Wire

log = logging.getLogger("logferry.sender")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One stored batch ready to send; ``key`` orders batches and names them in flight."""

    key: int
    source: str
    count: int
    codec: int
    body: bytes


class OutQueue(Protocol):
    async def pending(self, after_key: int, max_batches: int) -> list[Outgoing]:
        """Unacknowledged batches with key > after_key, oldest first."""
        ...

    async def acked(self, key: int, ack: Ack) -> None:
        """The receiver durably holds batch ``key``."""
        ...


@dataclass(frozen=True, slots=True)
class SenderConfig:
    host: str
    port: int
    source: str
    role: PeerRole
    token: bytes | None
    max_frame_bytes: int = 8 << 20
    connect_timeout_s: float = 10.0
    handshake_timeout_s: float = 10.0
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 30.0
    write_timeout_s: float = 30.0
    software: str = "logferry"
    spool: str = ""  # an agent's spool id, sent in Hello (a relay refuses a second spool for one source)
    tls: ssl.SSLContext | None = None  # TLS toward the server; its certificate is verified (logferry.tls)
    server_hostname: str = ""  # the name the server's certificate must carry; "" = host


@dataclass
class SenderStatus:
    connected: bool = False
    sessions: int = 0
    last_error: str = ""
    batches_sent: int = 0
    batches_acked: int = 0
    in_flight: int = 0


class Sender:
    """Keeps one session to the next hop open and feeds it from ``queue``."""

    carries = "records"  # what its sessions carry, named in its log lines (a hop has one session per kind)

    def __init__(
        self,
        config: SenderConfig,
        queue: OutQueue,
        *,
        on_open: Callable[[Welcome], Awaitable[None]] | None = None,
        on_resend: Callable[[ResendRequest], Awaitable[tuple[list[Outgoing], list[tuple[int, int]]]]]
        | None = None,
    ) -> None:
        self.config = config
        self.queue = queue
        self.status = SenderStatus()
        self._on_open = on_open
        self._on_resend = on_resend
        self._wake = asyncio.Event()
        self._rng = random.Random()
        self._wire: Wire[ClientConnection] | None = None  # the open session, for ask()
        self._answers: dict[int, asyncio.Future[ReconcileAnswer | ItemsAnswer]] = {}
        self._next_query = 0
        self._extra: list[Outgoing] = []  # resent batches, sent before the queue's (this session only)
        # Why sessions end, said once while it lasts (a relay away for hours is retried all along):
        self._ended = Repeats(log)

    @property
    def target(self) -> str:
        return format_address(self.config.host, self.config.port)

    def notify(self) -> None:
        """New batches were committed to the queue."""
        self._wake.set()

    async def ask(
        self, make: Callable[[int], ReconcileQuery | ItemsQuery], timeout_s: float = 30.0
    ) -> ReconcileAnswer | ItemsAnswer:
        """Send the query ``make(query_id)`` on the open session and wait for its answer.

        Raises ``TransportError`` when no session is open, when it ends first, or after ``timeout_s``.
        """
        wire = self._wire
        if wire is None or not self.status.connected:
            raise TransportError(f"not connected to {self.target}")
        self._next_query += 1
        query = make(self._next_query)
        future: asyncio.Future[ReconcileAnswer | ItemsAnswer] = asyncio.get_running_loop().create_future()
        self._answers[query.query_id] = future
        try:
            await wire.write(wire.conn.send_query(query, wire.now()))
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError as exc:
            raise TransportError(
                f"{self.target} did not answer query {query.query_id} in {timeout_s} s"
            ) from exc
        finally:
            self._answers.pop(query.query_id, None)

    async def run(self, stopping: asyncio.Event) -> None:
        """Connect, ship, reconnect, until ``stopping`` is set."""
        delay = self.config.reconnect_min_s
        while not stopping.is_set():
            opened = False
            try:
                opened = await self._session(stopping)
            except (ProtocolError, AuthError, TransportError) as exc:
                self.status.last_error = str(exc)
                level = logging.ERROR if isinstance(exc, AuthError) or _is_auth(exc) else logging.WARNING
                self._ended.say(level, f"{self.carries} session with {self.target} ended: {exc}")
            except StoreError as exc:
                # Our queue's disk (full, say): nothing is lost, the next session tries again.
                self.status.last_error = str(exc)
                self._ended.say(
                    logging.ERROR, f"{self.carries} session with {self.target} ended: {exc}; trying again"
                )
            except Exception as exc:  # noqa: BLE001 - a bug in one session must not end shipping for good
                self._failed(exc)
            except asyncio.CancelledError as exc:
                current = asyncio.current_task()
                if current is None or current.cancelling():
                    raise  # we are cancelled
                self._failed(exc)  # a cancellation that leaked from a task of the session: a bug too
            finally:
                self.status.connected = False
                self.status.in_flight = 0
            if stopping.is_set():
                break
            if opened:
                delay = self.config.reconnect_min_s
            # Full jitter: many agents that lost the relay at once do not come back in lockstep.
            wait = self._rng.uniform(self.config.reconnect_min_s, delay)
            delay = min(self.config.reconnect_max_s, delay * 2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), wait)

    def _failed(self, exc: BaseException) -> None:
        self.status.last_error = f"internal error: {exc!r}"
        log.error("%s session with %s failed: %r; reconnecting (a bug: please report it with this traceback)",
                  self.carries, self.target, exc, exc_info=exc)  # fmt: skip

    async def _session(self, stopping: asyncio.Event) -> bool:
        cfg = self.config
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    cfg.host, cfg.port, limit=1 << 20, ssl=cfg.tls,
                    server_hostname=(cfg.server_hostname or cfg.host) if cfg.tls else None,
                    ssl_handshake_timeout=cfg.handshake_timeout_s if cfg.tls else None,
                ),
                cfg.connect_timeout_s,
            )  # fmt: skip
        except ssl.SSLCertVerificationError as exc:
            # Not transient: logged as an error (the server is not who it should be, or we trust another CA).
            raise AuthError(
                f"TLS: {self.target} is not trusted: {describe_tls_error(exc)}; its certificate must "
                f"be signed by the CA this side trusts and name {cfg.server_hostname or cfg.host!r}"
            ) from exc
        except ssl.SSLError as exc:
            raise TransportError(
                f"TLS handshake with {self.target} failed: {describe_tls_error(exc)}"
            ) from exc
        except (OSError, TimeoutError) as exc:
            raise TransportError(f"cannot connect to {self.target}: {exc or 'timed out'}") from exc
        conn = ClientConnection(
            source=cfg.source,
            role=cfg.role,
            token=cfg.token,
            client_nonce=os.urandom(NONCE_BYTES),
            max_frame_bytes=cfg.max_frame_bytes,
            software=cfg.software,
            handshake_timeout_s=cfg.handshake_timeout_s,
            spool=cfg.spool,
        )
        wire = Wire(reader, writer, conn, peer=self.target, write_timeout_s=cfg.write_timeout_s)
        opened = False
        try:
            await wire.write(conn.start(wire.now()))
            event = await wire.next_event()
            if event is None:
                # Over TLS 1.3 a server refuses a client certificate after our side finished the handshake,
                # and asyncio reports its alert as a plain close: say what it most likely was.
                hint = "; over TLS: does it require a client certificate this side lacks?" if cfg.tls else ""
                raise TransportError(f"{self.target} closed the connection during the handshake{hint}")
            if isinstance(event, PeerClosed):
                raise ProtocolError(
                    f"{self.target} refused us: {event.reason} ({Code(event.code).name})", event.code
                )
            if not isinstance(event, Opened):
                raise ProtocolError(f"unexpected {type(event).__name__} during the handshake", Code.PROTOCOL)
            opened = True
            self.status.connected = True
            self.status.sessions += 1
            self.status.last_error = ""
            log.info("connected to %s as %s for %s (credit %d)", self.target, cfg.source, self.carries,
                     event.welcome.credit)  # fmt: skip
            self._ended.clear()  # the next failure is news again
            if self._on_open is not None:
                await self._on_open(event.welcome)
            self._wire = wire
            await self._pump(wire, stopping)
            await wire.close(conn.close(Code.NORMAL, "stopping"))
        finally:
            self._wire = None
            self._extra.clear()
            for future in self._answers.values():
                if not future.done():
                    future.set_exception(TransportError(f"the session with {self.target} ended"))
            if not writer.is_closing():
                await wire.close(conn.data_to_send())
        return opened

    async def _pump(self, wire: Wire[ClientConnection], stopping: asyncio.Event) -> None:
        """Send while the window has room; handle acks; end on stop or any error."""
        conn = wire.conn
        reader = asyncio.ensure_future(self._read_loop(wire))
        stop_wait = asyncio.ensure_future(stopping.wait())
        last_key = 0
        try:
            while True:
                self._wake.clear()  # before looking at the queue, so a notify() during the look is kept
                room = max(0, conn.credit - conn.in_flight)
                extra, self._extra = self._extra[:room], self._extra[room:]
                room -= len(extra)
                batches = await self.queue.pending(last_key, room) if room > 0 else []
                for out in [*extra, *batches]:
                    batch = Batch(out.key, out.source, out.count, out.codec, out.body)
                    await wire.write(conn.send_batch(batch, wire.now()))
                    self.status.batches_sent += 1
                if batches:
                    last_key = batches[-1].key
                batches = [*extra, *batches]
                self.status.in_flight = conn.in_flight
                if batches and conn.credit - conn.in_flight > 0:
                    await asyncio.sleep(0)  # drain() may not yield on a low buffer: let acks in
                    continue
                wake = asyncio.ensure_future(self._wake.wait())
                done, _ = await asyncio.wait({wake, reader, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                if reader in done:
                    reader.result()  # raises what ended the session
                    return
                if stop_wait in done:
                    return
        finally:
            reader.cancel()
            stop_wait.cancel()

    async def _read_loop(self, wire: Wire[ClientConnection]) -> None:
        # Acks are recorded concurrently (the store groups them into one transaction); the window reopens
        # as soon as an Ack arrives, since the receiver already holds the batch durably.
        recording: set[asyncio.Task[None]] = set()
        try:
            while True:
                event = await wire.next_event()
                if event is None:
                    raise TransportError(f"{self.target} closed the connection")
                if isinstance(event, Acked):
                    task = asyncio.create_task(self._record_ack(event.ack))
                    recording.add(task)
                    task.add_done_callback(recording.discard)
                elif isinstance(event, Answered):
                    future = self._answers.get(event.answer.query_id)
                    if future is not None and not future.done():
                        future.set_result(event.answer)
                elif isinstance(event, ResendRequested):
                    task = asyncio.create_task(self._resend(wire, event.request))
                    recording.add(task)
                    task.add_done_callback(recording.discard)
                else:
                    self._handle_other(event)
        finally:
            if recording:
                await asyncio.wait(recording)

    async def _resend(self, wire: Wire[ClientConnection], request: ResendRequest) -> None:
        """Answer a relay's ResendRequest: what the queue still has as batches, the rest as Unavailable."""
        if self._on_resend is None:
            unavailable, batches = list(request.ranges), list[Outgoing]()
        else:
            batches, unavailable = await self._on_resend(request)
        log.info("%s asked for seqs %s again: resending %d batches, %d ranges no longer here",
                 self.target, request.ranges[:8], len(batches), len(unavailable))  # fmt: skip
        self._extra.extend(batches)
        if unavailable:
            await wire.write(wire.conn.unavailable(request.request_id, unavailable, wire.now()))
        self._wake.set()

    async def _record_ack(self, ack: Ack) -> None:
        await self.queue.acked(ack.batch_id, ack)
        self.status.batches_acked += 1
        self._wake.set()

    def _handle_other(self, event: object) -> None:
        if isinstance(event, Nacked):
            nack = event.nack
            # Either way the batch stays in our store; ending the session makes us resend it after backoff.
            hint = ", will retry" if nack.retry else ", kept in the store; fix the cause"
            raise ProtocolError(
                f"{self.target} refused batch {nack.batch_id}: {nack.reason} ({Code(nack.code).name}{hint})",
                nack.code,
            )
        if isinstance(event, CreditChanged):
            self._wake.set()
        elif isinstance(event, PeerClosed):
            raise ProtocolError(f"{self.target} closed the session: {event.reason}", event.code)


def _is_auth(exc: BaseException) -> bool:
    return isinstance(exc, ProtocolError) and exc.code == Code.UNAUTHORIZED
