"""The declared configuration of the tail input: every option once, with its type, default, unit and help.

The TOML loader maps a ``[[inputs.tail]]`` table onto ``TailConfig`` with
``msgspec.convert(table, TailConfig)``; the constraints below (``Meta``) and ``__post_init__`` reject
bad values with a message naming the option.
``describe_options()`` gives (name, type, default, help) rows for ``logferry config check`` and the docs.

This module must never do I/O or touch the files it describes.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from logferry.inputs.records import encoding_problem


class ReadFrom(enum.Enum):
    """Where to start in a file that has no checkpoint and was already there when the input started."""

    BEGINNING = "beginning"
    END = "end"


def _opt(description: str, **constraints: Any) -> Meta:
    return Meta(description=description, **constraints)


class TailConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of one tail input (one ``[[inputs.tail]]`` table)."""

    paths: Annotated[
        list[str],
        _opt("Glob patterns of the files to follow; `**` matches directories recursively.", min_length=1),
    ]
    exclude: Annotated[list[str], _opt("Glob patterns of matched paths to skip (e.g. `*.gz`).")] = []
    name: Annotated[
        str,
        _opt(
            "Names this input: prefix of its checkpoint keys and value of the `input` field of its records. "
            "Two tail inputs of one agent need different names.",
            pattern=r"^[A-Za-z0-9_.-]+$",
        ),
    ] = "tail"
    read_from: Annotated[
        ReadFrom,
        _opt(
            "For a file without checkpoint present at start: `beginning` or `end`. Files that appear "
            "later (e.g. after rotation) are always read from the beginning, so no line is lost."
        ),
    ] = ReadFrom.BEGINNING
    poll_interval_s: Annotated[
        float, _opt("Seconds between checks of the followed files for new data.", gt=0)
    ] = 0.25
    glob_rescan_interval_s: Annotated[
        float, _opt("Seconds between re-expansions of the globs (new, rotated and deleted files).", gt=0)
    ] = 1.0
    rotate_wait_s: Annotated[
        float,
        _opt(
            "Seconds a rotated-away or deleted file stays open after its last growth, for writers that have "
            "not reopened yet; then its last partial line is emitted and it is forgotten.",
            ge=0,
        ),
    ] = 5.0
    max_line_bytes: Annotated[
        int,
        _opt(
            "Longest line or multiline record in bytes. A longer line is cut into parts flagged with the "
            "fields `part` and `part_last`; nothing is dropped.",
            ge=64,
            le=16 * 1024 * 1024,
        ),
    ] = 64 * 1024
    multiline_start: Annotated[
        str | None,
        _opt(
            "Regex (Python `re`, searched) matching the first line of a record; other lines are joined to it."
        ),
    ] = None
    multiline_timeout_s: Annotated[
        float, _opt("Seconds without new lines after which a pending multiline record is emitted.", gt=0)
    ] = 1.0
    max_batch_records: Annotated[int, _opt("Most records handed to the spool in one transaction.", ge=1)] = (
        1000
    )
    max_batch_wait_s: Annotated[
        float, _opt("Longest a read record waits for its batch to fill while files still have data.", ge=0)
    ] = 0.01
    detect_level: Annotated[
        bool, _opt("Guess each record's level from tokens like ERROR, level=warn, [debug], <3>; else INFO.")
    ] = True
    include_path: Annotated[
        bool, _opt("Put the file's path in each record's `path`; else leave it empty.")
    ] = True
    encoding: Annotated[
        str,
        _opt(
            "Character encoding of the files: `utf-8`, `utf-8-sig` (drops a byte-order mark), `utf-16` "
            "(as Windows writes it: little-endian, byte-order mark dropped; or `utf-16-be`), or a code page "
            "such as `cp949`, `euc-kr`, `shift_jis`, `gb18030`, `big5`, `cp1252`, `latin-1`. Bytes that do "
            "not decode become U+FFFD.",
            extra={"kind": "encoding"},
        ),
    ] = "utf-8"
    fingerprint_bytes: Annotated[
        int,
        _opt(
            "Bytes at the head of a file hashed into its identity, so a reused inode is seen as a new file.",
            ge=16,
            le=4096,
        ),
    ] = 256
    read_chunk_bytes: Annotated[
        int,
        _opt(
            "Bytes read per system call (raised to max_line_bytes + 1 if smaller).",
            ge=4096,
            le=64 * 1024 * 1024,
        ),
    ] = 256 * 1024

    def __post_init__(self) -> None:
        problem = encoding_problem(self.encoding)
        if problem is not None:
            raise ValueError(problem)
        if self.multiline_start is not None:
            try:
                re.compile(self.multiline_start)
            except re.error as exc:
                raise ValueError(
                    f"multiline_start is not a valid regex ({exc}): {self.multiline_start!r}"
                ) from exc


def describe_options() -> list[tuple[str, str, str, str]]:
    """(name, type, default, help) for every TailConfig option, in declaration order."""
    info = msgspec.inspect.type_info(TailConfig)
    assert isinstance(info, msgspec.inspect.StructType)
    rows: list[tuple[str, str, str, str]] = []
    for f in info.fields:
        description = ""
        type_name = type(f.type).__name__.removesuffix("Type").lower()
        if isinstance(f.type, msgspec.inspect.Metadata):
            description = str((f.type.extra_json_schema or {}).get("description", ""))
            type_name = type(f.type.type).__name__.removesuffix("Type").lower()
        if f.required:
            default = "required"
        elif f.default is msgspec.NODEFAULT:
            default = repr(f.default_factory())
        else:
            default = repr(f.default.value if isinstance(f.default, enum.Enum) else f.default)
        rows.append((f.name, type_name, default, description))
    return rows
