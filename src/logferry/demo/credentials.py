"""The demo's console sign-in: a demo operator and a demo viewer in the relay's and collector's configs.

With users configured every console page wants a sign-in and the REST API a bearer token
(``logferry.users``). The demo therefore writes two users into both configs — ``demo-operator`` (may
release, delete, resend, acknowledge) and ``demo-viewer`` (looks only) — with throwaway passwords equal to
their names, stored as argon2id hashes like any user's, and gives the operator an API token of its own,
new for each run, for the CLI and REST calls (the audit log then names ``demo-operator``).

These credentials are the demo's own, printed on purpose: the demo listens on 127.0.0.1 only. This module
must never print or write any other secret, and never a password into a config (only its hash).
"""

from __future__ import annotations

from dataclasses import dataclass

from logferry.users.credentials import hash_password, new_token, token_digest


@dataclass(frozen=True)
class DemoUser:
    name: str
    password: str
    role: str  # logferry.users.roles.Role's value
    token: str  # the user's own API token ("" for none)


def make_demo_users() -> tuple[DemoUser, ...]:
    """The demo's operator (with a fresh API token) and viewer."""
    return (
        DemoUser("demo-operator", "demo-operator", "operator", new_token()),
        DemoUser("demo-viewer", "demo-viewer", "viewer", ""),
    )


def users_toml(section: str, users: tuple[DemoUser, ...]) -> str:
    """``[[SECTION.users]]`` tables for a relay's or collector's config (hashes only)."""
    out = []
    for u in users:
        token = f"api_token_hash = '{token_digest(u.token)}'\n" if u.token else ""
        out.append(
            f"\n[[{section}.users]]\nname = '{u.name}'\nrole = '{u.role}'\n"
            f"password_hash = '{hash_password(u.password)}'\n{token}"
        )
    return "".join(out)


def operator_token(users: tuple[DemoUser, ...]) -> str:
    return next(u.token for u in users if u.role == "operator")


def credential_lines(users: tuple[DemoUser, ...]) -> list[str]:
    """What the demo prints about signing in to its consoles and calling its APIs."""
    rights = {"operator": "release, delete, resend, acknowledge", "viewer": "looks only"}
    lines = [
        f"  sign in as         {u.name} / {u.password}   ({u.role}: {rights.get(u.role, u.role)})"
        for u in users
    ]
    lines.append(
        f"  API token          {operator_token(users)}   (demo-operator's; the CLI reads $LOGFERRY_TOKEN)"
    )
    return lines
