"""The two roles a person can have, and the person: declared once, for the config, the API and the console.

``viewer`` reads only; ``operator`` may also release, delete, resend, acknowledge and reconcile. This module
only declares: it must never import anything that does I/O (``config/schema.py`` imports it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.Enum):
    """What a person may do: a viewer reads, an operator also acts on held and missing items."""

    VIEWER = "viewer"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Person:
    """Someone using the console or the API. ``signed_in`` is False for a visitor whose session ended."""

    name: str
    role: Role
    signed_in: bool = True

    @property
    def may_write(self) -> bool:
        return self.signed_in and self.role is Role.OPERATOR
