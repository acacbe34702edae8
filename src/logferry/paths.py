"""File names as logferry shows them and keeps them.

A POSIX file name is bytes and need not be UTF-8 (a Latin-1 name from an old device, or any garbage); a
Windows one may hold a lone surrogate. Python hands such a name over with what is not valid as lone
surrogates (PEP 383): fine for opening the file, but no UTF-8 encoder takes it, and every manifest, record,
checkpoint and queue row that names a file is UTF-8. So a name is sent and shown as ``shown(path)`` (the
offending bytes escaped, ``caf\\xe9.log``) and kept exactly in SQLite as ``stored(path)`` (its bytes where
it is not valid text), read back with ``loaded``.
"""

from __future__ import annotations

import os


def _is_text(path: str) -> bool:
    if path.isascii():
        return True
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(path: str) -> str:
    """The name to send and show: itself, or with each byte that is not UTF-8 written as ``\\xNN``."""
    return path if _is_text(path) else os.fsencode(path).decode("utf-8", "backslashreplace")


def stored(path: str) -> str | bytes:
    """The exact name as an SQLite value: text, or its bytes where it is not valid text."""
    return path if _is_text(path) else os.fsencode(path)


def loaded(value: str | bytes) -> str:
    """A name kept by ``stored``, as the path to open."""
    return value if isinstance(value, str) else os.fsdecode(value)
