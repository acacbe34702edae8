"""Inputs: where records come from.

The agent's inputs hand lines, with checkpoints, to its spool:

- ``TailInput`` follows files matching globs (rotation, truncation, multiline, restart from checkpoints);
- ``StdinInput`` reads standard input until end of file (``stdin_source()`` builds its stream).

They have ``async def run(self, emit: Emit) -> None``; ``Emit`` states the contract. They produce
``model.Entry`` objects, never number them (the spool gives seqs) and never talk to the network.

The relay's inputs for senders without an agent listen on TCP and hand entries to the relay's journal,
which numbers them: ``inputs.syslog`` (RFC 6587 framing, RFC 5424 / 3164) and ``inputs.line`` (the seed
prototype's ``name&&message`` protocol). See docs/INPUTS.md.
"""

from logferry.inputs.emit import DELETE_CHECKPOINT, Emit
from logferry.inputs.file_identity import TailCheckpoint
from logferry.inputs.levels import detect_level
from logferry.inputs.stdin import StdinInput, StdinSource, stdin_source
from logferry.inputs.tail import TailInput, TailStats
from logferry.inputs.tail_config import ReadFrom, TailConfig, describe_options

__all__ = [
    "DELETE_CHECKPOINT",
    "Emit",
    "ReadFrom",
    "StdinInput",
    "StdinSource",
    "TailCheckpoint",
    "TailConfig",
    "TailInput",
    "TailStats",
    "describe_options",
    "detect_level",
    "stdin_source",
]
