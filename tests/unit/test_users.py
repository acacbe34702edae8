"""Users: argon2id hashes and token digests, the config checks, sessions and the sign-in limit (a fake clock),
and the gate's answers to "who is this?" — no mocks: real argon2, real config files."""

from __future__ import annotations

from pathlib import Path

import argon2
import pytest

from logferry.config import Role, check_file, load
from logferry.config.schema import UserConfig
from logferry.users.credentials import (
    hash_password,
    new_token,
    password_hash_problem,
    token_digest,
    token_hash_problem,
    verify_password,
)
from logferry.users.gate import SHARED, Gate, SignInRefused
from logferry.users.roles import Person
from logferry.users.roles import Role as UserRole
from logferry.users.sessions import MAX_SESSIONS, TICKET_S, SessionStore, SignInLimiter

# Cheap parameters keep the tests fast; a hash carries its parameters, so verify works the same way.
CHEAP = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def user(name: str, role: UserRole, password: str, token: str = "") -> UserConfig:
    return UserConfig(
        name=name,
        role=role,
        password_hash=CHEAP.hash(password),
        api_token_hash=token_digest(token) if token else "",
    )


def test_hash_and_verify_with_the_default_parameters() -> None:
    made = hash_password("correct horse")
    assert made.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert password_hash_problem(made) is None
    assert verify_password(made, "correct horse")
    assert not verify_password(made, "correct horsE")
    assert not verify_password("$argon2id$damaged", "correct horse")  # never raises


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "got an empty string"),
        ("hunter22", "got a string of 8 characters that is not one"),
        (argon2.PasswordHasher(type=argon2.Type.I).hash("x"), "got an argon2i or argon2d hash"),
        ("$argon2id$v=19$m=65536,t=3,p=4$abc", "got a damaged argon2id hash"),
    ],
)
def test_a_bad_password_hash_is_named_without_repeating_it(value: str, says: str) -> None:
    problem = password_hash_problem(value)
    assert problem is not None and says in problem and "logferry users hash" in problem
    if value:
        assert value not in problem


def test_token_digests() -> None:
    token = new_token()
    assert token.startswith("lft_") and len(token) > 40
    assert token_hash_problem(token_digest(token)) is None
    assert token_hash_problem("") is None
    assert "looks like a token" in (token_hash_problem(token) or "")
    assert "64 lowercase hex" in (token_hash_problem("sha256:ABC") or "")


def test_config_errors_name_file_key_and_what_to_do(tmp_path: Path) -> None:
    good = CHEAP.hash("pw")
    path = tmp_path / "relay.toml"
    path.write_text(
        "[relay]\n"
        f'[[relay.users]]\nname = "kim"\nrole = "operator"\npassword_hash = "{good}"\n'
        f'[[relay.users]]\nname = "lee"\nrole = "admin"\npassword_hash = "plain-text"\n'
        f'[[relay.users]]\nname = "kim"\nrole = "viewer"\npassword_hash = "{good}"\n',
        encoding="utf-8",
    )
    report = check_file(path)
    assert report.problems == [
        f'{path}: relay.users[1].role: expected one of viewer, operator, got "admin"',
        f"{path}: relay.users[1].password_hash: expected an argon2id hash "
        '("$argon2id$v=19$m=…,t=…,p=…$salt$hash"), got a string of 10 characters that is not one; make one '
        "with `logferry users hash` (or `logferry users add NAME --role ROLE`)",
    ]
    path.write_text(path.read_text().replace('"admin"', '"viewer"').replace('"plain-text"', f'"{good}"'))
    token = token_digest("t")
    path.write_text(path.read_text() + f'api_token_hash = "{token}"\n')  # the third user
    path.write_text(
        path.read_text().replace('role = "operator"\n', f'role = "operator"\napi_token_hash = "{token}"\n')
    )
    assert check_file(path).problems == [
        f'{path}: relay.users[2].name: "kim" is already the name of relay.users[0]; give every user '
        "their own name (the audit log tells people apart by it)",
        f"{path}: relay.users[2].api_token_hash: the same token as relay.users[0]; every user needs "
        "their own token; make one with `logferry users token`, which prints a new token and its "
        "api_token_hash",
    ]


def test_users_load_with_their_roles(tmp_path: Path) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(
        f'[collector]\nsession_idle_s = 60\n[[collector.users]]\nname = "lee"\nrole = "viewer"\n'
        f'password_hash = "{CHEAP.hash("pw")}"\n',
        encoding="utf-8",
    )
    cfg = load(Role.COLLECTOR, path)
    assert [(u.name, u.role) for u in getattr(cfg, "users")] == [("lee", UserRole.VIEWER)]  # noqa: B009
    assert getattr(cfg, "session_idle_s") == 60  # noqa: B009


def test_sessions_end_when_idle_or_too_old() -> None:
    clock = FakeClock()
    store = SessionStore(idle_s=100, max_s=250, now=clock)
    kim = Person("kim", UserRole.OPERATOR)
    sid = store.start(kim)
    assert store.get(sid) == kim
    clock.advance(99)
    assert store.get(sid) == kim  # used: the idle time starts again
    clock.advance(99)
    assert store.get(sid, touch=False) == kim
    clock.advance(1)
    assert store.get(sid) is None  # 100 s without use
    sid = store.start(kim)
    for _ in range(4):
        clock.advance(60)
        assert store.get(sid) == kim
    clock.advance(10)
    assert store.get(sid) is None  # 250 s after sign-in, however busy
    assert store.get("unknown") is None
    sid = store.start(kim)
    assert store.end(sid) and not store.end(sid)
    assert store.get(sid) is None


def test_tickets_are_single_use_and_short_lived() -> None:
    clock = FakeClock()
    store = SessionStore(idle_s=100, max_s=1000, now=clock)
    kim = Person("kim", UserRole.OPERATOR)
    ticket = store.issue_ticket(kim)
    sid = store.redeem(ticket)
    assert sid is not None and store.get(sid) == kim
    assert store.redeem(ticket) is None
    late = store.issue_ticket(kim)
    clock.advance(TICKET_S + 1)
    assert store.redeem(late) is None


def test_sessions_are_bounded() -> None:
    store = SessionStore(idle_s=100, max_s=1000, now=FakeClock())
    first = store.start(Person("a", UserRole.VIEWER))
    for _ in range(MAX_SESSIONS):
        store.start(Person("b", UserRole.VIEWER))
    assert len(store) == MAX_SESSIONS
    assert store.get(first) is None  # the oldest made room


def test_the_limiter_counts_failures_per_address() -> None:
    clock = FakeClock()
    limiter = SignInLimiter(max_failures=3, window_s=60, now=clock)
    for _ in range(3):
        assert limiter.wait_s("10.0.0.1") == 0
        limiter.failed("10.0.0.1")
    assert limiter.wait_s("10.0.0.1") == 60
    assert limiter.wait_s("10.0.0.2") == 0  # another address is not slowed
    clock.advance(45)
    assert limiter.wait_s("10.0.0.1") == 15
    clock.advance(15)
    assert limiter.wait_s("10.0.0.1") == 0
    limiter.failed("10.0.0.1")
    limiter.succeeded("10.0.0.1")
    assert limiter.wait_s("10.0.0.1") == 0


def test_bearer_tokens() -> None:
    lee_token = new_token()
    gate = Gate([user("kim", UserRole.OPERATOR, "pw-kim"), user("lee", UserRole.VIEWER, "pw-lee", lee_token)],
                "shared-secret")  # fmt: skip
    shared = gate.bearer("shared-secret")
    assert shared is not None and shared.shared and shared.person == SHARED
    lee = gate.bearer(lee_token)
    assert lee is not None and not lee.shared and lee.person == Person("lee", UserRole.VIEWER)
    assert gate.bearer("wrong") is None and gate.bearer("") is None
    assert gate.api_needs_token and gate.has_users and not gate.console_closed
    assert Gate([], "t").console_closed and not Gate([], "").api_needs_token


async def test_sign_in_refuses_alike_and_then_waits() -> None:
    clock = FakeClock()
    gate = Gate([user("kim", UserRole.OPERATOR, "pw-kim")], now=clock)
    assert await gate.sign_in("kim", "pw-kim", "10.0.0.1") == Person("kim", UserRole.OPERATOR)
    refusals = []
    for name, password in (("kim", "wrong"), ("nobody", "pw-kim"), ("nobody", "wrong"), ("kim", "x" * 5000)):
        with pytest.raises(SignInRefused) as refused:
            await gate.sign_in(name, password, "10.0.0.1")
        refusals.append(str(refused.value))
    assert set(refusals) == {"wrong name or password"}  # never which part was wrong
    with pytest.raises(SignInRefused) as refused:
        await gate.sign_in("kim", "wrong", "10.0.0.1")  # the fifth failure
    with pytest.raises(SignInRefused) as refused:
        await gate.sign_in("kim", "pw-kim", "10.0.0.1")  # even the right password waits now
    assert refused.value.wait_s == 300
    assert await gate.sign_in("kim", "pw-kim", "10.0.0.2") == Person("kim", UserRole.OPERATOR)
