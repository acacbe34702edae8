"""The logferry/1 state table and the events the connections emit.

Every legal (side, state, direction, message type) → state move is one row of ``TRANSITIONS``; the
connections in ``connection.py`` consult it for every frame sent or received, and anything not in it is a
protocol error. Events are plain frozen dataclasses. This module holds data only: no I/O, no clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeVar

from logferry.protocol.messages import (
    Ack,
    Auth,
    Batch,
    Challenge,
    Credit,
    FileAck,
    FileBundle,
    FileBundleAck,
    FileCancel,
    FileChunk,
    FileDone,
    FileNack,
    FileOffer,
    FileProgress,
    FileResume,
    FileWhole,
    Goodbye,
    Hello,
    ItemsAnswer,
    ItemsQuery,
    Message,
    Nack,
    PeerRole,
    Ping,
    Pong,
    ReconcileAnswer,
    ReconcileQuery,
    ResendRequest,
    Unavailable,
    Welcome,
)


class Side(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class State(enum.Enum):
    IDLE = "idle"  # client: start() not called yet
    AWAIT_CHALLENGE = "await-challenge"  # client: Hello sent
    CHALLENGED = "challenged"  # client, transient: Challenge read, Auth being queued
    AWAIT_WELCOME = "await-welcome"  # client: Auth sent
    AWAIT_HELLO = "await-hello"  # server: nothing read yet
    GREETED = "greeted"  # server, transient: Hello read, Challenge being queued
    AWAIT_AUTH = "await-auth"  # server: Challenge sent
    AUTHENTICATED = "authenticated"  # server: Auth verified, the application must call welcome()
    OPEN = "open"
    CLOSED = "closed"


class Dir(enum.Enum):
    SEND = "send"
    RECV = "receive"


_C, _S = Side.CLIENT, Side.SERVER
_LIVE = {
    _C: (State.IDLE, State.AWAIT_CHALLENGE, State.CHALLENGED, State.AWAIT_WELCOME, State.OPEN),
    _S: (State.AWAIT_HELLO, State.GREETED, State.AWAIT_AUTH, State.AUTHENTICATED, State.OPEN),
}
_SEND, _RECV = Dir.SEND, Dir.RECV

_FILE_CLIENT_SENDS = (FileOffer, FileChunk, FileDone, FileWhole, FileCancel, FileBundle)
_FILE_SERVER_SENDS = (FileResume, FileProgress, FileAck, FileNack, FileBundleAck)
TRANSITIONS: dict[tuple[Side, State, Dir, type[Message]], State] = {
    # client handshake
    (_C, State.IDLE, _SEND, Hello): State.AWAIT_CHALLENGE,
    (_C, State.AWAIT_CHALLENGE, _RECV, Challenge): State.CHALLENGED,
    (_C, State.CHALLENGED, _SEND, Auth): State.AWAIT_WELCOME,
    (_C, State.AWAIT_WELCOME, _RECV, Welcome): State.OPEN,
    # server handshake
    (_S, State.AWAIT_HELLO, _RECV, Hello): State.GREETED,
    (_S, State.GREETED, _SEND, Challenge): State.AWAIT_AUTH,
    (_S, State.AWAIT_AUTH, _RECV, Auth): State.AUTHENTICATED,
    (_S, State.AUTHENTICATED, _SEND, Welcome): State.OPEN,
    # the open session: batches flow client → server, verdicts and credit server → client
    (_C, State.OPEN, _SEND, Batch): State.OPEN,
    (_C, State.OPEN, _RECV, Ack): State.OPEN,
    (_C, State.OPEN, _RECV, Nack): State.OPEN,
    (_C, State.OPEN, _RECV, Credit): State.OPEN,
    (_S, State.OPEN, _RECV, Batch): State.OPEN,
    (_S, State.OPEN, _SEND, Ack): State.OPEN,
    (_S, State.OPEN, _SEND, Nack): State.OPEN,
    (_S, State.OPEN, _SEND, Credit): State.OPEN,
    # reconciliation: the relay (client) asks the collector; a relay (server) asks an agent to resend
    (_C, State.OPEN, _SEND, ReconcileQuery): State.OPEN,
    (_C, State.OPEN, _SEND, ItemsQuery): State.OPEN,
    (_C, State.OPEN, _RECV, ReconcileAnswer): State.OPEN,
    (_C, State.OPEN, _RECV, ItemsAnswer): State.OPEN,
    (_S, State.OPEN, _RECV, ReconcileQuery): State.OPEN,
    (_S, State.OPEN, _RECV, ItemsQuery): State.OPEN,
    (_S, State.OPEN, _SEND, ReconcileAnswer): State.OPEN,
    (_S, State.OPEN, _SEND, ItemsAnswer): State.OPEN,
    (_S, State.OPEN, _SEND, ResendRequest): State.OPEN,
    (_S, State.OPEN, _RECV, Unavailable): State.OPEN,
    (_C, State.OPEN, _RECV, ResendRequest): State.OPEN,
    (_C, State.OPEN, _SEND, Unavailable): State.OPEN,
    # whole files (docs/PROTOCOL.md §13): offers, chunks and Done client → server; Resume, Ack, Nack back
    **{(_C, State.OPEN, _SEND, kind): State.OPEN for kind in _FILE_CLIENT_SENDS},
    **{(_C, State.OPEN, _RECV, kind): State.OPEN for kind in _FILE_SERVER_SENDS},
    **{(_S, State.OPEN, _RECV, kind): State.OPEN for kind in _FILE_CLIENT_SENDS},
    **{(_S, State.OPEN, _SEND, kind): State.OPEN for kind in _FILE_SERVER_SENDS},
    # heartbeats, both ways, once open (the handshake has its own timeout instead)
    **{(side, State.OPEN, d, kind): State.OPEN for side in Side for d in Dir for kind in (Ping, Pong)},
    # either side may say Goodbye in any of its states before the end
    **{(side, st, d, Goodbye): State.CLOSED for side, states in _LIVE.items() for st in states for d in Dir},
}


# ---- events -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Opened:
    """Client: the server welcomed us; ``welcome`` carries credit, limits and ``acked_through``."""

    welcome: Welcome


@dataclass(frozen=True, slots=True)
class Acked:
    """Client: the server durably committed a batch."""

    ack: Ack


@dataclass(frozen=True, slots=True)
class Nacked:
    """Client: the server refused a batch; ``nack.retry`` says whether resending can succeed."""

    nack: Nack


@dataclass(frozen=True, slots=True)
class CreditChanged:
    """Client: the window is now ``credit`` batches in flight."""

    credit: int


@dataclass(frozen=True, slots=True)
class PeerClosed:
    """Either side: the peer said Goodbye; the connection is CLOSED."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Authenticated:
    """Server: the client passed the challenge; answer with ``welcome(acked_through)``."""

    source: str
    role: PeerRole
    version: int
    spool: str = ""  # the agent's spool id ("" from a relay, or an agent that predates it)


@dataclass(frozen=True, slots=True)
class BatchReceived:
    """Server: a batch within the credit window; answer with ``ack`` or ``nack``."""

    batch: Batch


@dataclass(frozen=True, slots=True)
class Answered:
    """Client: the collector answered a ReconcileQuery or ItemsQuery (matched by ``query_id``)."""

    answer: ReconcileAnswer | ItemsAnswer


@dataclass(frozen=True, slots=True)
class ResendRequested:
    """Client (agent): the relay wants these seqs again; answer with batches and, if need be, Unavailable."""

    request: ResendRequest


@dataclass(frozen=True, slots=True)
class QueryReceived:
    """Server (collector): a relay asks about summaries or items; answer with ``answer(...)``."""

    query: ReconcileQuery | ItemsQuery


@dataclass(frozen=True, slots=True)
class UnavailableReported:
    """Server (relay): an agent no longer has some of the seqs we asked it to resend."""

    report: Unavailable


@dataclass(frozen=True, slots=True)
class FileAnswered:
    """Client: the server answered the file in transfer: resume from an offset, or its final verdict."""

    answer: FileResume | FileProgress | FileAck | FileNack


@dataclass(frozen=True, slots=True)
class FileOffered:
    """Server: a file is offered; answer with ``file_resume``, ``file_ack`` or ``file_nack`` (by its id)."""

    offer: FileOffer


@dataclass(frozen=True, slots=True)
class ChunkReceived:
    """Server: the next bytes of the file in transfer, contiguous with what came before."""

    chunk: FileChunk


@dataclass(frozen=True, slots=True)
class FileFinished:
    """Server: every byte arrived; verify, make durable, then ``file_ack`` (or ``file_nack``)."""

    done: FileDone


@dataclass(frozen=True, slots=True)
class WholeReceived:
    """Server: a small file in one frame; verify, make durable, then ``file_ack(source, seq)`` (or nack)."""

    whole: FileWhole


@dataclass(frozen=True, slots=True)
class BundleReceived:
    """Server: many small files in one frame; make each durable (or refuse it), then ``file_bundle_ack``."""

    bundle: FileBundle


@dataclass(frozen=True, slots=True)
class BundleAnswered:
    """Client: the server holds every file of a bundle durably, but those it refused."""

    ack: FileBundleAck


@dataclass(frozen=True, slots=True)
class FileCancelled:
    """Server: the client stopped sending this file for now; keep its partial, or delete it (``discard``)."""

    cancel: FileCancel


ClientEvent = (
    Opened
    | Acked
    | Nacked
    | CreditChanged
    | PeerClosed
    | Answered
    | ResendRequested
    | FileAnswered
    | BundleAnswered
)
ServerEvent = (
    Authenticated
    | BatchReceived
    | PeerClosed
    | QueryReceived
    | UnavailableReported
    | FileOffered
    | ChunkReceived
    | FileFinished
    | WholeReceived
    | FileCancelled
    | BundleReceived
)
E = TypeVar("E", ClientEvent, ServerEvent)
