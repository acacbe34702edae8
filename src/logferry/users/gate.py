"""One role's door: its users, its shared ``api_token`` and its console sessions; answers "who is this?".

The rules, in one place (docs/API.md and docs/CONSOLE.md say them in words):

- No users and no ``api_token``: the API is open and the console needs no sign-in; everyone acts as an
  operator (the console's operator is "console", the API's is the X-Logferry-Operator header).
- ``api_token`` and no users: the API wants the token (an operator's), and the console stays **closed**:
  without users there is nobody to sign in, and an open console would open what the token closes.
- Users: the API wants a bearer token (``api_token`` as an operator, or a user's own token with that user's
  role), and every console page wants a signed-in user.

A failed sign-in costs one argon2 verify whether or not the name exists (a decoy hash with the same
parameters stands in for an unknown name), and :class:`SignInLimiter` slows a guesser per address. Verifies
run in a worker thread, at most :data:`MAX_VERIFYING` at once (each takes 64 MiB), so the event loop keeps
serving devices. This module must never log a password, a hash, a token or a session id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from logferry.config.schema import CollectorConfig, RelayConfig, UserConfig
from logferry.users.credentials import parameters_like, same_digest, token_digest, verify_password
from logferry.users.roles import Person, Role
from logferry.users.sessions import Clock, SessionStore, SignInLimiter

log = logging.getLogger("logferry.users")

MAX_VERIFYING = 2
MAX_PASSWORD_CHARS = 1024  # longer is refused as wrong without hashing: bounds the work one request causes
SHARED = Person("anonymous", Role.OPERATOR)  # the shared api_token (or an open API): the header names them


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made an API request. ``shared``: the shared api_token or an open API, so the X-Logferry-Operator
    header may name the person; a user's own token or session names them itself."""

    person: Person
    shared: bool


class SignInRefused(Exception):
    """Sign-in failed. ``wait_s`` > 0: too many failures from this address, try again after that long."""

    def __init__(self, wait_s: float = 0.0) -> None:
        super().__init__(f"too many tries; wait {wait_s:.0f} s" if wait_s > 0 else "wrong name or password")
        self.wait_s = wait_s


@dataclass(frozen=True, slots=True)
class _User:
    person: Person
    password_hash: str


class Gate:
    """The users, the shared token and the sessions of one server role (see the module's rules)."""

    def __init__(
        self,
        users: Sequence[UserConfig],
        api_token: str = "",
        *,
        session_idle_s: float = 1800.0,
        session_max_s: float = 43200.0,
        now: Clock = time.monotonic,
    ) -> None:
        self.api_token = api_token
        self._users = {u.name: _User(Person(u.name, u.role), u.password_hash) for u in users}
        self._tokens = {u.api_token_hash: Person(u.name, u.role) for u in users if u.api_token_hash}
        self.sessions = SessionStore(session_idle_s, session_max_s, now)
        self.limiter = SignInLimiter(now=now)
        self._verifying: asyncio.Semaphore | None = None
        self._decoy: str | None = None

    @property
    def has_users(self) -> bool:
        return bool(self._users)

    @property
    def console_closed(self) -> bool:
        """True when the console must not open at all: a token closes the API and nobody can sign in."""
        return bool(self.api_token) and not self._users

    @property
    def api_needs_token(self) -> bool:
        return bool(self.api_token) or bool(self._users)

    def bearer(self, token: str) -> Caller | None:
        """The caller a bearer token stands for; None when it is nobody's."""
        if not token:
            return None
        if self.api_token and same_digest(token, self.api_token):
            return Caller(SHARED, shared=True)
        person = self._tokens.get(token_digest(token))  # a dict lookup on a digest: no timing to learn from
        return None if person is None else Caller(person, shared=False)

    def session(self, sid: str | None, *, touch: bool = True) -> Person | None:
        """The person of a live console session; None without one (or once it ended)."""
        return self.sessions.get(sid, touch=touch) if sid else None

    async def sign_in(self, name: str, password: str, address: str) -> Person:
        """The user whose name and password these are; :class:`SignInRefused` otherwise (after the same
        argon2 work for an unknown name as for a wrong password)."""
        wait_s = self.limiter.wait_s(address)
        if wait_s > 0:
            raise SignInRefused(wait_s)
        if not self._users:
            raise SignInRefused()
        user = self._users.get(name.strip())
        ok = False
        if len(password) <= MAX_PASSWORD_CHARS:
            if self._verifying is None:
                self._verifying = asyncio.Semaphore(MAX_VERIFYING)
            async with self._verifying:
                password_hash = user.password_hash if user is not None else await self._decoy_hash()
                ok = await asyncio.to_thread(verify_password, password_hash, password)
        if not ok or user is None:
            self.limiter.failed(address)
            log.warning("console sign-in refused from %s (wrong name or password)", address or "?")
            raise SignInRefused()
        self.limiter.succeeded(address)
        person = user.person
        log.info("%s (%s) signed in to the console from %s", person.name, person.role.value, address)
        return user.person

    async def _decoy_hash(self) -> str:
        if self._decoy is None:
            model = next(iter(self._users.values())).password_hash
            self._decoy = await asyncio.to_thread(parameters_like, model)
        return self._decoy


def gate_for(config: RelayConfig | CollectorConfig, api_token: str, now: Clock = time.monotonic) -> Gate:
    """The gate of a relay's or collector's config (its ``users`` and session options)."""
    return Gate(config.users, api_token, session_idle_s=config.session_idle_s,
                session_max_s=config.session_ttl_s, now=now)  # fmt: skip
