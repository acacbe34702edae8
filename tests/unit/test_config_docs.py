"""docs/CONFIG.md stays in sync with the declarations: every option, type and default as declared."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from logferry.config.docgen import TABLES, render_table, sync
from logferry.pipeline import PRESETS

DOC = Path(__file__).resolve().parents[2] / "docs" / "CONFIG.md"


def test_generated_tables_are_up_to_date() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert sync(text) == text, "run: python -m logferry.config.docgen docs/CONFIG.md"


@pytest.mark.parametrize("name", list(TABLES))
def test_every_table_has_a_generated_block(name: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    assert (
        f"<!-- BEGIN GENERATED: {name} -->\n{render_table(TABLES[name][1])}<!-- END GENERATED: {name} -->"
        in text
    )


@pytest.mark.parametrize("name", list(TABLES))
def test_every_option_has_help_text(name: str) -> None:
    for f in msgspec.structs.fields(TABLES[name][1]):
        meta = next(m for m in f.type.__metadata__ if isinstance(m, msgspec.Meta))
        assert meta.description, f"{name}.{f.name} needs a description"


def test_every_preset_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for preset in PRESETS:
        assert f"| `{preset}` |" in text


def test_unknown_block_is_an_error() -> None:
    with pytest.raises(KeyError, match="unknown generated block"):
        sync("<!-- BEGIN GENERATED: nope -->\n<!-- END GENERATED: nope -->")
