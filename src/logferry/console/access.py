"""Who is using the console page being built or the event being handled, and whether they may write.

Pages ask here, never anywhere else: ``who().name`` is what the audit log records for a console action,
``can_write()`` decides whether write controls are enabled, and ``require_operator()`` is called by every
write handler before it acts (a disabled button is a courtesy; this check is the rule)::

    try:
        name = require_operator()
    except NotAllowed as exc:
        refuse(exc)          # says why; back to the sign-in page when the session ended
        return
    await actions.settle_held(view, verb, target, name)

Roles: ``viewer`` reads only; ``operator`` may also release, delete, resend and acknowledge. While no users
are configured the console has no sign-in and everyone is the operator "console". With users, the person is
looked up on every call from the page's session cookie in the role's :class:`~logferry.users.gate.Gate`, so
an idle or absolute expiry, or a sign-out in another tab, takes effect at the next click.

The page's root binds the gate to its NiceGUI client (:func:`bind`). This module must never trust anything
the browser sends but the session cookie, and never log a session id.
"""

from __future__ import annotations

import weakref
from urllib.parse import quote

from nicegui import Client, context, ui

from logferry.console.i18n import register, t
from logferry.users.gate import Gate
from logferry.users.roles import Person, Role
from logferry.users.sessions import COOKIE

__all__ = [
    "ANONYMOUS_OPERATOR",
    "SIGNED_OUT",
    "NotAllowed",
    "Person",
    "Role",
    "bind",
    "can_write",
    "refuse",
    "require_operator",
    "who",
]

LOGIN_PATH = "/login"
ANONYMOUS_OPERATOR = Person("console", Role.OPERATOR)
SIGNED_OUT = Person("", Role.VIEWER, signed_in=False)

_gates: weakref.WeakKeyDictionary[Client, Gate] = weakref.WeakKeyDictionary()


class NotAllowed(Exception):
    """A viewer tried a write, or the session ended; the page shows the message and nothing moves."""

    def __init__(self, message: str, *, signed_out: bool = False) -> None:
        super().__init__(message)
        self.signed_out = signed_out


def bind(gate: Gate) -> None:
    """Tie the page being built (its NiceGUI client) to the role's gate; the page's root calls this."""
    _gates[context.client] = gate


def _current() -> tuple[Client, Gate] | None:
    try:
        client = context.client
    except RuntimeError:  # no page in context: a unit test calling actions directly
        return None
    gate = _gates.get(client)
    return None if gate is None else (client, gate)


def who() -> Person:
    """The person behind the current page or event; :data:`SIGNED_OUT` when their session ended."""
    found = _current()
    if found is None or not found[1].has_users:
        return ANONYMOUS_OPERATOR
    client, gate = found
    try:
        sid = client.request.cookies.get(COOKIE)
    except RuntimeError:  # a client without a request: nobody signed in through it
        return SIGNED_OUT
    return gate.session(sid) or SIGNED_OUT


def can_write() -> bool:
    return who().may_write


def require_operator() -> str:
    """The operator's name for the audit log; raises :class:`NotAllowed` for a viewer or an ended session."""
    person = who()
    if not person.signed_in:
        raise NotAllowed(t("Your session has ended: sign in again. Nothing was changed."), signed_out=True)
    if person.role is not Role.OPERATOR:
        raise NotAllowed(
            t("{name} is a viewer: only an operator may change held or missing items.", name=person.name)
        )
    return person.name


def sign_in_path(next_path: str) -> str:
    return f"{LOGIN_PATH}?next={quote(next_path, safe='/')}"


def refuse(exc: NotAllowed) -> None:
    """Show why a write was refused; when the session ended, go to the sign-in page (then back here)."""
    ui.notify(str(exc), type="negative", multi_line=True)
    if exc.signed_out:
        to_sign_in()


def to_sign_in() -> None:
    """Load the page again: its root finds no session and sends the browser to ``/login?next=<page>``.

    A full load, not ``ui.navigate.to``: inside the sub-pages that would look for ``/login`` among them.
    """
    ui.navigate.reload()


def sign_out() -> None:
    """End the current page's session on the server (every tab using it), then go to the sign-in page."""
    found = _current()
    if found is not None:
        client, gate = found
        sid = client.request.cookies.get(COOKIE)
        if sid:
            gate.sessions.end(sid)
    to_sign_in()


register(
    "ko",
    {
        "Your session has ended: sign in again. Nothing was changed.": (
            "세션이 끝났습니다. 다시 로그인하십시오. 아무것도 변경되지 않았습니다."
        ),
        "{name} is a viewer: only an operator may change held or missing items.": (
            "{name}님은 조회자입니다. 보류 또는 누락 항목은 운영자만 변경할 수 있습니다."
        ),
    },
)
