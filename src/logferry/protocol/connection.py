"""The logferry/1 state machines: ``ClientConnection`` (agent or relay side) and ``ServerConnection``.

Bytes in → events out, calls in → bytes out, in the manner of h11. ``receive_data(data, now)`` buffers what
the socket read; ``next_event()`` returns the next typed event or None (more data needed); automatic replies
(Auth after Challenge, Pong after Ping, Ping on an idle heartbeat, Goodbye after an error) pile up in
``data_to_send()``; methods the application calls (``send_batch``, ``welcome``, ``ack`` …) return the frame
to write. Every legal move is one row of ``TRANSITIONS``; anything else raises ``RemoteProtocolError``
(the peer's fault: a Goodbye with its code is queued and the connection is CLOSED) or
``LocalProtocolError`` (the caller's fault: nothing is sent, the state is unchanged).

Authentication failures are reported as ``RemoteProtocolError(code=Code.UNAUTHORIZED)`` rather than
``AuthError``: the transport handles every peer fault the same way (flush the Goodbye, drop the socket).

This module must never touch a socket, asyncio, a clock or a random source: time (``now``, monotonic
seconds) and nonces are passed in, and only the transport arms timers (``next_deadline``/``handle_timer``).
"""

from __future__ import annotations

from logferry.protocol.base import MAX_REASON_CHARS, MISSED_HEARTBEATS
from logferry.protocol.client import ClientConnection
from logferry.protocol.server import ServerConnection
from logferry.protocol.state import (
    Acked,
    Answered,
    Authenticated,
    BatchReceived,
    BundleAnswered,
    BundleReceived,
    ChunkReceived,
    ClientEvent,
    CreditChanged,
    FileAnswered,
    FileCancelled,
    FileFinished,
    FileOffered,
    Nacked,
    Opened,
    PeerClosed,
    QueryReceived,
    ResendRequested,
    ServerEvent,
    State,
    UnavailableReported,
    WholeReceived,
)

__all__ = [
    "MAX_REASON_CHARS",
    "MISSED_HEARTBEATS",
    "Acked",
    "Answered",
    "Authenticated",
    "BatchReceived",
    "BundleAnswered",
    "BundleReceived",
    "ChunkReceived",
    "ClientConnection",
    "ClientEvent",
    "CreditChanged",
    "FileAnswered",
    "FileCancelled",
    "FileFinished",
    "FileOffered",
    "Nacked",
    "Opened",
    "PeerClosed",
    "QueryReceived",
    "ResendRequested",
    "ServerConnection",
    "ServerEvent",
    "State",
    "UnavailableReported",
    "WholeReceived",
]
