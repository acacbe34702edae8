"""The ``logferry users hash|token|add`` command line: make what a ``[[relay.users]]`` table needs.

- ``users hash``: reads a password (a no-echo prompt, asked twice, on a terminal; else the first line of
  stdin) and prints its argon2id hash for ``password_hash``.
- ``users token``: prints a new random API token (once: keep it in the script's secret store) and the
  ``api_token_hash`` line for the config.
- ``users add NAME --role ROLE``: asks for the password the same way and prints a whole TOML table; with
  ``--token`` it also makes the user's API token (printed on stderr, so redirecting stdout into the config
  file never writes the token there).

Hashing is done by :mod:`logferry.users.credentials`. This module must never write a password or a token
into a file, a log or the config: a token appears once, on the terminal, and only a digest goes to stdout.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from logferry.errors import ConfigError
from logferry.users.credentials import MIN_PASSWORD_CHARS, hash_password, new_token, token_digest
from logferry.users.roles import Role


def add_users_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``logferry users hash|token|add``."""
    users = sub.add_parser("users", help="make password hashes and API tokens for console users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    users_sub.add_parser(
        "hash", help="read a password (prompt, or the first line of stdin) and print its argon2id hash"
    )
    users_sub.add_parser("token", help="print a new API token and its api_token_hash for the config")
    add = users_sub.add_parser("add", help="print a [[relay.users]] table for a new user (asks the password)")
    add.add_argument("name", help="the name to sign in with")
    add.add_argument("--role", required=True, choices=[r.value for r in Role], help="viewer or operator")
    add.add_argument("--table", default="relay", choices=["relay", "collector"], help="whose config")
    add.add_argument("--token", action="store_true", help="also make the user's own API token")


def read_password() -> str:
    """The new password: asked twice without echo on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ConfigError("the two passwords differ; nothing was made", path="logferry users")
    else:
        first = sys.stdin.readline().rstrip("\r\n")
    if len(first) < MIN_PASSWORD_CHARS:
        raise ConfigError(
            f"a password needs at least {MIN_PASSWORD_CHARS} characters; nothing was made",
            path="logferry users",
        )
    return first


def run_users(args: argparse.Namespace) -> int:
    """Run ``logferry users ...``; ConfigError (exit 2) for a bad password."""
    if args.users_command == "hash":
        print(hash_password(read_password()))
        return 0
    if args.users_command == "token":
        token = new_token()
        print(f"token (give it to the script; it is shown only now): {token}")
        print(f'api_token_hash = "{token_digest(token)}"')
        return 0
    name = str(args.name).strip()
    if not name:
        raise ConfigError("the user's name is empty", path="logferry users add")
    password_hash = hash_password(read_password())
    lines = [
        f"[[{args.table}.users]]",
        f"name = {json.dumps(name, ensure_ascii=False)}",
        f'role = "{args.role}"',
        f'password_hash = "{password_hash}"',
    ]
    if args.token:
        token = new_token()
        lines.append(f'api_token_hash = "{token_digest(token)}"')
        print(f"API token of {name} (shown only now; not in the table below): {token}", file=sys.stderr)
    print("\n".join(lines))
    return 0
