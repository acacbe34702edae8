"""The contract between an input and the agent: the ``Emit`` callback every input calls.

``await emit(entries, checkpoint_updates)`` returns only once the entries AND the checkpoint updates are
committed in the agent's spool, in one transaction. Hence a line is spooled exactly once across a
``kill -9``: after a restart an input resumes from the checkpoints it is given, which cover exactly the
entries already spooled. ``emit`` may block for a long time (the spool is full): the input then waits and
reads nothing more, which bounds its memory.

Checkpoint keys are strings an input chooses (prefixed with its name); values are opaque bytes it defines.
An empty value (``b""``) means "delete this key": the tail input sends it when it forgets a file that was
rotated away or deleted and drained, so checkpoints do not pile up. ``entries`` may be empty when only
checkpoints change.

This module only declares types; it must never grow behaviour.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from logferry.model import Entry

Emit = Callable[[list[Entry], dict[str, bytes]], Awaitable[None]]
"""Commit ``entries`` and ``checkpoint_updates`` in one spool transaction; see the module docstring."""

DELETE_CHECKPOINT = b""
"""The checkpoint value that deletes its key."""
