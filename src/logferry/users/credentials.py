"""Password hashes (argon2id) and API-token digests (sha256): make them, check them, and check the config.

- Passwords are chosen by people, so they are stored as argon2id hashes (argon2-cffi, its RFC 9106
  defaults: 64 MiB, 3 passes, 4 lanes; about 0.15 s per verify). The hash string carries its own
  parameters and salt, so a hash made elsewhere with other parameters still verifies.
- API tokens are made by :func:`new_token` (256 random bits), so a fast digest is enough: nobody can guess
  one by trying, and a sha256 digest lets a request find its user in one dictionary lookup instead of one
  argon2 verify per configured user on every call.

The config checks (:func:`password_hash_problem`, :func:`token_hash_problem`, :func:`user_problems`) return
messages that say what a good value looks like and how to make one; they never repeat the value itself.
This module must never log, print or raise with a password, a hash or a token in the message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from typing import Protocol

from logferry.users.roles import Role

# $argon2id$v=19$m=65536,t=3,p=4$<salt, base64 without padding>$<hash, base64 without padding>
_ARGON2ID = re.compile(
    r"\$argon2id\$v=19\$m=\d{1,10},t=\d{1,10},p=\d{1,3}\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}"
)
_TOKEN_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
TOKEN_PREFIX = "lft_"  # makes a logferry token recognizable in a script or a secret scanner
MIN_PASSWORD_CHARS = 8
MAKE_HASH = "make one with `logferry users hash` (or `logferry users add NAME --role ROLE`)"
MAKE_TOKEN = "make one with `logferry users token`, which prints a new token and its api_token_hash"


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (blocking, ~0.15 s and 64 MiB)."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (blocking; costs what the hash's parameters say)."""
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return PasswordHasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):  # a mismatch, or a hash the config check let through
        return False


def parameters_like(password_hash: str) -> str:
    """A hash of a random password with the parameters of ``password_hash``: verifying against it costs
    the same time as against a real user's, so a wrong name takes as long as a wrong password."""
    from argon2 import PasswordHasher, extract_parameters

    return PasswordHasher.from_parameters(extract_parameters(password_hash)).hash(secrets.token_hex(16))


def new_token() -> str:
    """A new random API token (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the config keeps of a token: ``sha256:<64 hex digits>``."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def same_digest(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def password_hash_problem(value: str) -> str | None:
    """Why ``value`` is not an argon2id hash string, or None when it is one."""
    if _ARGON2ID.fullmatch(value):
        return None
    if value.startswith(("$argon2i$", "$argon2d$")):
        got = "an argon2i or argon2d hash"
    elif value.startswith("$argon2id$"):
        got = "a damaged argon2id hash"
    elif not value:
        got = "an empty string"
    else:
        got = f"a string of {len(value)} characters that is not one"
    return f'expected an argon2id hash ("$argon2id$v=19$m=…,t=…,p=…$salt$hash"), got {got}; {MAKE_HASH}'


def token_hash_problem(value: str) -> str | None:
    """Why ``value`` is not a token digest (``""`` is fine: the user has no API token)."""
    if not value or _TOKEN_DIGEST.fullmatch(value):
        return None
    if value.startswith(TOKEN_PREFIX):
        return f"this looks like a token, not its digest: never put a token in the config; {MAKE_TOKEN}"
    got = f"a string of {len(value)} characters"
    return f'expected "sha256:" and 64 lowercase hex digits, got {got}; {MAKE_TOKEN}'


class UserLike(Protocol):
    """What :func:`user_problems` reads of a configured user (``schema.UserConfig``)."""

    @property
    def name(self) -> str: ...
    @property
    def role(self) -> Role: ...
    @property
    def api_token_hash(self) -> str: ...


def user_problems(users: Sequence[UserLike], table: str) -> list[tuple[str, str]]:
    """``(key, message)`` for users that clash: the same name twice, or the same API token twice."""
    out: list[tuple[str, str]] = []
    names: dict[str, int] = {}
    digests: dict[str, int] = {}
    for i, user in enumerate(users):
        key = f"{table}.users[{i}]"
        first = names.setdefault(user.name, i)
        if first != i:
            shown = json.dumps(user.name, ensure_ascii=False)
            out.append((f"{key}.name", f"{shown} is already the name of {table}.users[{first}]; give every "
                        "user their own name (the audit log tells people apart by it)"))  # fmt: skip
        if user.api_token_hash:
            first = digests.setdefault(user.api_token_hash, i)
            if first != i:
                out.append((f"{key}.api_token_hash", f"the same token as {table}.users[{first}]; every "
                            f"user needs their own token; {MAKE_TOKEN}"))  # fmt: skip
    return out
