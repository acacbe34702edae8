"""The agent's inputs: sources that read log lines and hand them, with checkpoints, to the spool.

- ``TailInput`` follows files matching globs (rotation, truncation, multiline, restart from checkpoints);
- ``StdinInput`` reads standard input until end of file (``stdin_source()`` builds its stream).

Every input has ``async def run(self, emit: Emit) -> None``; ``Emit`` states the contract. Inputs produce
``model.Entry`` objects; they never number them (the spool gives seqs) and never talk to the network.
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
