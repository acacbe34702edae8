"""The one exception tree of logferry.

    LogferryError
    ├── ConfigError            a config file or option is wrong (names the file, key and what is expected)
    ├── ProtocolError          logferry/1 was violated
    │   ├── LocalProtocolError     we tried to do something the protocol forbids (a bug on our side)
    │   └── RemoteProtocolError    the peer sent something malformed, oversized or out of order
    ├── AuthError              the peer failed the HMAC challenge or is unknown
    ├── StoreError             a durable store could not be opened or written
    └── TransportError         a connection could not be made or was lost

Every message says what happened and, where it can, what to do about it.
"""

from __future__ import annotations


class LogferryError(Exception):
    """Base of every error logferry raises on purpose."""


class ConfigError(LogferryError):
    """A configuration file, key or command-line option is invalid."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}: "
        if key is not None:
            where += f"{key}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.key = key


class ProtocolError(LogferryError):
    """logferry/1 was violated. ``code`` is the Goodbye/Nack code sent to the peer."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class LocalProtocolError(ProtocolError):
    """We attempted something the protocol forbids in the current state: a bug in the caller."""


class RemoteProtocolError(ProtocolError):
    """The peer sent malformed, oversized or out-of-order data."""


class AuthError(LogferryError):
    """The peer failed authentication."""


class StoreError(LogferryError):
    """A durable store could not be opened, migrated or written."""


class TransportError(LogferryError):
    """A connection could not be established or was lost."""
