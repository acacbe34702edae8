"""Who is using the console page being built or the event being handled, and whether they may write.

Pages ask here, never anywhere else: ``who().name`` is what the audit log records for a console action,
``can_write()`` decides whether write controls are enabled, and ``require_operator()`` is called by every
write handler before it acts (a disabled button is a courtesy; this check is the rule).

Roles: ``viewer`` reads only; ``operator`` may also release, delete, resend and acknowledge. While no users
are configured the console has no sign-in and everyone is the operator "console".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.Enum):
    VIEWER = "viewer"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    role: Role


class NotAllowed(Exception):
    """A viewer tried a write; the page shows the message and nothing moves."""


ANONYMOUS_OPERATOR = Person("console", Role.OPERATOR)


def who() -> Person:
    """The person behind the current page or event."""
    return ANONYMOUS_OPERATOR


def can_write() -> bool:
    return who().role is Role.OPERATOR


def require_operator() -> str:
    """The operator's name for the audit log; raises :class:`NotAllowed` for a viewer."""
    person = who()
    if person.role is not Role.OPERATOR:
        raise NotAllowed(f"{person.name} is a viewer: only an operator may change held or missing items")
    return person.name
