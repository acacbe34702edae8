"""Console sessions, kept in memory with idle and absolute expiry, and the sign-in rate limit per address.

Why memory and not the role's SQLite: a session is worth little (signing in again takes seconds), the idle
expiry touches it on every page and event (a write per click would queue behind the data path's writer),
and a session id on disk would be one more secret at rest. So a restart signs everyone out; that is
documented. Both tables are bounded: at :data:`MAX_SESSIONS` the oldest session ends; the limiter forgets
the oldest address.

Time is passed in (``now``, monotonic seconds): tests use a fake clock. A session id is 256 random bits;
sign-in hands the browser a single-use *ticket* (30 s) that ``/_signin`` exchanges for the session cookie,
because a NiceGUI event cannot set an HttpOnly cookie. This module must never log an id or a ticket.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from logferry.users.roles import Person

COOKIE = "logferry_session"  # HttpOnly, SameSite=Strict; holds the session id
MAX_SESSIONS = 10_000
MAX_TICKETS = 1_000
TICKET_S = 30.0  # a ticket is redeemed by the browser's next request, within milliseconds
Clock = Callable[[], float]


@dataclass(slots=True)
class _Session:
    person: Person
    started: float
    last_seen: float


class SessionStore:
    """Live sessions by id. A session ends after ``idle_s`` without use or ``max_s`` after sign-in."""

    def __init__(self, idle_s: float, max_s: float, now: Clock = time.monotonic) -> None:
        self.idle_s = idle_s
        self.max_s = max_s
        self._now = now
        self._sessions: dict[str, _Session] = {}  # in order of sign-in: the first is the oldest
        self._tickets: dict[str, tuple[Person, float]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def start(self, person: Person) -> str:
        """A new session for ``person``; its id goes into the browser's cookie."""
        now = self._now()
        if len(self._sessions) >= MAX_SESSIONS:
            self._sweep(now)
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = _Session(person, now, now)
        return sid

    def get(self, sid: str, *, touch: bool = True) -> Person | None:
        """The person of a live session (and, with ``touch``, it counts as used now); None when it ended."""
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = self._now()
        if self._expired(session, now):
            del self._sessions[sid]
            return None
        if touch:
            session.last_seen = now
        return session.person

    def end(self, sid: str) -> bool:
        """Sign out: the session ends at once (every tab using it). False if it had already ended."""
        return self._sessions.pop(sid, None) is not None

    def issue_ticket(self, person: Person) -> str:
        """A single-use ticket that :meth:`redeem` turns into a session within :data:`TICKET_S`."""
        now = self._now()
        for old in [t for t, (_, at) in self._tickets.items() if now - at > TICKET_S]:
            del self._tickets[old]
        while len(self._tickets) >= MAX_TICKETS:
            del self._tickets[next(iter(self._tickets))]
        ticket = secrets.token_urlsafe(32)
        self._tickets[ticket] = (person, now)
        return ticket

    def redeem(self, ticket: str) -> str | None:
        """The new session id for a fresh ticket (used up now); None for an unknown or stale one."""
        found = self._tickets.pop(ticket, None)
        if found is None or self._now() - found[1] > TICKET_S:
            return None
        return self.start(found[0])

    def _expired(self, session: _Session, now: float) -> bool:
        return now - session.last_seen >= self.idle_s or now - session.started >= self.max_s

    def _sweep(self, now: float) -> None:
        for sid in [s for s, session in self._sessions.items() if self._expired(session, now)]:
            del self._sessions[sid]


class SignInLimiter:
    """At most ``max_failures`` failed sign-ins per address within ``window_s``; then it waits.

    Each failure already costs an argon2 verify (~0.15 s); this stops a patient guesser on one address.
    It counts per address, not per name, so nobody can lock a colleague out by typing their name.
    """

    def __init__(
        self, max_failures: int = 5, window_s: float = 300.0, now: Clock = time.monotonic,
        max_addresses: int = 10_000,
    ) -> None:  # fmt: skip
        self.max_failures = max_failures
        self.window_s = window_s
        self._now = now
        self._max_addresses = max_addresses
        self._failures: dict[str, deque[float]] = {}

    def wait_s(self, address: str) -> float:
        """Seconds before ``address`` may try again; 0 when it may try now."""
        times = self._failures.get(address)
        if times is None or len(times) < self.max_failures:
            return 0.0
        return max(0.0, times[0] + self.window_s - self._now())

    def failed(self, address: str) -> None:
        times = self._failures.pop(address, None) or deque(maxlen=self.max_failures)
        times.append(self._now())
        self._failures[address] = times  # re-inserted: the dict stays in order of last failure
        while len(self._failures) > self._max_addresses:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
