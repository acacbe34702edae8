"""Write the option tables of ``docs/CONFIG.md`` from the declarations, so the doc cannot drift.

The doc keeps hand-written prose; between ``<!-- BEGIN GENERATED: NAME -->`` and ``<!-- END GENERATED: NAME
-->`` markers this module puts one table per config table. ``python -m logferry.config.docgen docs/CONFIG.md``
rewrites the file in place; a unit test checks that the committed doc equals what this would write.

This module must never invent an option or a default: everything it prints comes from ``schema.py`` and
``pipeline/rule_config.py``.
"""

from __future__ import annotations

import enum
import re
import sys
from pathlib import Path
from typing import Any

import msgspec

from logferry.config.schema import (
    AgentConfig,
    CollectorConfig,
    FilesInput,
    RelayConfig,
    StdinInput,
    TailInput,
    UserConfig,
)
from logferry.config.validate import describe
from logferry.pipeline.rule_config import RuleConfig

TABLES: dict[str, tuple[str, type[msgspec.Struct]]] = {
    "agent": ("[agent]", AgentConfig),
    "agent.inputs.tail": ('[[agent.inputs]] type = "tail"', TailInput),
    "agent.inputs.stdin": ('[[agent.inputs]] type = "stdin"', StdinInput),
    "agent.inputs.files": ('[[agent.inputs]] type = "files"', FilesInput),
    "relay": ("[relay]", RelayConfig),
    "relay.rules": ("[[relay.rules]]", RuleConfig),
    "relay.users": ("[[relay.users]]", UserConfig),
    "collector": ("[collector]", CollectorConfig),
    "collector.users": ("[[collector.users]]", UserConfig),
}

_BLOCK = re.compile(
    r"(?P<begin><!-- BEGIN GENERATED: (?P<name>[\w.]+) -->\n).*?(?P<end><!-- END GENERATED: (?P=name) -->)",
    re.S,
)


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n} ({n // factor} {unit})"
    return str(n)


def render_default(field: msgspec.structs.FieldInfo) -> str:
    """A default as a person would write it in TOML, or the explanation of a computed default."""
    meta = typing_meta(field.type)
    doc = (meta.extra or {}).get("default_doc") if meta is not None else None
    if doc is not None:
        return f"*{doc}*"
    if field.required:
        return "*required*"
    value: Any = field.default
    if value is msgspec.NODEFAULT:
        value = field.default_factory()  # mutable defaults ([] and {}) are stored as factories
    if value is None:
        return "*not set*"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`' if value else '`""`'
    if isinstance(value, int) and field.name.endswith("_bytes"):
        return f"`{_size(value)}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, list):
        return "`[]`"
    if isinstance(value, dict):
        return "`{}`"
    return f"`{value}`"


def typing_meta(tp: Any) -> msgspec.Meta | None:
    for m in getattr(tp, "__metadata__", ()):
        if isinstance(m, msgspec.Meta):
            return m
    return None


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(cls: type[msgspec.Struct]) -> str:
    """A markdown table of every option of one config table."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    fields = msgspec.structs.fields(cls)
    own = set(cls.__annotations__)
    # A role's own options first, then those it shares with the other server (declared on a base class).
    for f in sorted(fields, key=lambda f: f.name not in own):
        meta = typing_meta(f.type)
        help_text = (meta.description or "") if meta is not None else ""
        rows.append(f"| `{f.name}` | {_cell(describe(f.type))} | {render_default(f)} | {_cell(help_text)} |")
    return "\n".join(rows) + "\n"


def sync(doc: str) -> str:
    """``doc`` with every generated block replaced by the current tables."""

    def repl(m: re.Match[str]) -> str:
        name = m["name"]
        if name not in TABLES:
            raise KeyError(
                f"docs/CONFIG.md names an unknown generated block {name!r}; known: {', '.join(TABLES)}"
            )
        return m["begin"] + render_table(TABLES[name][1]) + m["end"]

    return _BLOCK.sub(repl, doc)


def main(argv: list[str]) -> int:
    """Rewrite the doc(s) given on the command line; exit 1 if any changed (useful in CI)."""
    changed = 0
    for name in argv:
        path = Path(name)
        old = path.read_text(encoding="utf-8")
        new = sync(old)
        if new != old:
            path.write_text(new, encoding="utf-8")
            print(f"{path}: option tables updated")
            changed += 1
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
