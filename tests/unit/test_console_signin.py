"""Console sign-in and roles, on a real journal, audit log and gate (argon2, sessions) — NiceGUI's ``User``
simulation drives the pages; the session cookie travels through the real ``/_signin`` route.

What must hold: with users configured every page wants a sign-in; a wrong password (or name) is refused with
one message; a viewer sees the write buttons disabled, and a write forced past them is refused and leaves no
audit entry; an operator's release is audited under their name; an ended session sends the person back to
the sign-in page and refuses writes; with api_token and no users the console stays shut.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import argon2
import nicegui
import pytest
from nicegui import ui
from nicegui.storage import Storage
from nicegui.testing.user import User
from nicegui.testing.user_simulation import user_simulation

from logferry.api.launch import RelayView
from logferry.config import RelayConfig
from logferry.config.schema import UserConfig
from logferry.console import actions, signin
from logferry.console.actions import HeldView
from logferry.console.mount import relay_root
from logferry.model import Fate, Level, make_record
from logferry.store.journal import Decision
from logferry.users.gate import Gate
from logferry.users.roles import Role
from tests.unit.console_views import relay_view

CHEAP = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # a hash carries its parameters
USERS = [
    UserConfig(name="kim", role=Role.OPERATOR, password_hash=CHEAP.hash("kim-password")),
    UserConfig(name="lee", role=Role.VIEWER, password_hash=CHEAP.hash("lee-password")),
]
IDLE_S = 600.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def held(seq: int, msg: str) -> Decision:
    record = make_record(seq, 1_000 * seq, int(Level.ERROR), "host-a", "/var/log/app.log", msg, {})
    return Decision(record, Fate.HELD, "hold-cards")


@pytest.fixture
async def view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RelayView]:
    monkeypatch.setattr(Storage, "path", tmp_path / "nicegui")  # NiceGUI's own files stay in tmp
    async with relay_view(tmp_path, RelayConfig(users=USERS)) as v:
        await v.journal.commit(
            "edge-1", [held(1, "charge card=4111111111111111"), held(2, "charge card=5500")]
        )
        yield v


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gate(view: RelayView, clock: FakeClock) -> Gate:
    return Gate(USERS, session_idle_s=IDLE_S, session_max_s=8 * 3600, now=clock)


@pytest.fixture
async def user(view: RelayView, gate: Gate) -> AsyncIterator[User]:
    async with user_simulation(root=relay_root(view, gate)) as simulated:
        # In production mount_console adds these routes to the role's app; here NiceGUI's app serves.
        signin.add_session_routes(nicegui.app, gate)
        yield simulated


async def sign_in(user: User, name: str, password: str) -> None:
    user.find(marker="signin-name").clear().type(name)
    user.find(marker="signin-password").type(password)
    user.find(marker="signin-submit").click()


async def eventually(check: object, timeout_s: float = 3.0) -> None:
    """Wait for the simulated browser to finish a navigation (it runs in a background task)."""
    assert callable(check)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_every_page_wants_a_sign_in_and_a_wrong_password_is_refused(
    user: User, caplog: pytest.LogCaptureFixture
) -> None:
    await user.open("/held")
    await user.should_see(marker="signin-submit")
    await user.should_not_see(marker="held-table")
    assert user.back_history[-1] == "/held"

    def refusals() -> int:
        return sum("sign-in refused" in r.getMessage() for r in caplog.records)

    await sign_in(user, "kim", "not-her-password")
    await eventually(lambda: refusals() == 1)
    await user.should_see("Wrong name or password.")
    await sign_in(user, "nobody", "kim-password")
    await eventually(lambda: refusals() == 2)
    await user.should_see("Wrong name or password.")  # the same words: no hint which part was wrong
    [password] = user.find(marker="signin-password").elements
    assert isinstance(password, ui.input) and password.value == ""
    assert not any("kim-password" in r.getMessage() or "nobody" in r.getMessage() for r in caplog.records)

    await sign_in(user, "kim", "kim-password")
    await user.should_see(marker="held-table", retries=30)  # back where kim wanted to go
    await user.should_see(marker="signed-in-name")
    await user.should_see("(operator)")


async def test_a_viewer_sees_writes_disabled_and_a_forced_write_is_refused(
    user: User, view: RelayView
) -> None:
    await user.open("/login?next=/held")
    await sign_in(user, "lee", "lee-password")
    await user.should_see(marker="held-table", retries=30)
    await user.should_see("(viewer)")
    [release] = user.find(marker="release-matching").elements
    assert isinstance(release, ui.button) and not release.enabled

    release.enable()  # as a tampered page would: the server must still refuse
    user.find(marker="release-matching").click()
    await user.should_see(marker="confirm-ok")
    user.find(marker="confirm-ok").click()
    await user.should_see("lee is a viewer: only an operator may change held or missing items.")
    assert await actions.held_count(view, HeldView()) == 2
    assert await view.audit.page() == []  # nothing was done, so nothing is audited as done


async def test_an_operator_release_is_audited_under_their_name(user: User, view: RelayView) -> None:
    await user.open("/held")
    await sign_in(user, "kim", "kim-password")
    await user.should_see(marker="held-table", retries=30)
    await user.should_see("1–2 of 2")
    user.find(marker="release-matching").click()
    await user.should_see(marker="confirm-ok")
    user.find(marker="confirm-ok").click()
    await user.should_see("audited as kim", retries=30)
    [entry] = await view.audit.page()
    assert (entry.operator, entry.action, entry.state.value, entry.count) == (
        "kim",
        "held.release",
        "done",
        2,
    )


async def test_an_ended_session_goes_back_to_sign_in_and_refuses_writes(
    user: User, view: RelayView, clock: FakeClock
) -> None:
    await user.open("/held")
    await sign_in(user, "kim", "kim-password")
    await user.should_see("1–2 of 2", retries=30)

    clock.now += IDLE_S  # half an hour... of nothing
    user.find(marker="release-matching").click()
    await user.should_see(marker="confirm-ok")
    user.find(marker="confirm-ok").click()
    await user.should_see(marker="signin-submit", retries=30)
    assert await view.audit.page() == []
    assert await actions.held_count(view, HeldView()) == 2

    await user.open("/missing")  # any page, opened anew
    await user.should_see(marker="signin-submit")
    await user.should_not_see(marker="signed-in-name")


async def test_sign_out_ends_the_session(user: User, gate: Gate) -> None:
    await user.open("/")
    await sign_in(user, "kim", "kim-password")
    await user.should_see(marker="sign-out", retries=30)
    assert len(gate.sessions) == 1
    user.find(marker="sign-out").click()
    await user.should_see(marker="signin-submit", retries=30)
    assert len(gate.sessions) == 0


async def test_a_token_without_users_keeps_the_console_shut(view: RelayView) -> None:
    async with user_simulation(root=relay_root(view, Gate([], "s3cret"))) as user:
        await user.open("/held")
        await user.should_see(marker="console-closed")
        await user.should_not_see(marker="held-table")
