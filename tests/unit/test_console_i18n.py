"""The console's Korean locale covers every text the pages show through ``t()``.

The check reads the console package's source: every ``t("literal", …)`` call, and every page title in the
navigation tuples, must have a Korean entry, and a Korean entry may use only the placeholders its English text
has (a missing placeholder would raise KeyError while a page is built). A page that forgets ``register`` or a
new text without a translation fails here, not in front of an operator.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import string
from pathlib import Path

import pytest

import logferry.console
from logferry.console import i18n, layout, missing, overview
from logferry.model import Fate, Level
from logferry.store.missing import MissingKind, MissingState

PACKAGE = Path(logferry.console.__file__).parent


def texts_in_source() -> dict[str, str]:
    """Every literal passed to ``t(...)`` in the console package → ``module:line`` of its first use."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "t"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.setdefault(node.args[0].value, f"{path.name}:{node.lineno}")
    return found


def import_every_page() -> None:
    for module in pkgutil.iter_modules([str(PACKAGE)]):
        importlib.import_module(f"logferry.console.{module.name}")


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_console_text_has_a_korean_translation() -> None:
    import_every_page()
    korean = i18n.catalog("ko")
    texts = texts_in_source()
    for _, title in layout.RELAY_PAGES + layout.COLLECTOR_PAGES:
        texts.setdefault(title, "layout.py: navigation")
    assert len(texts) >= 8, "the scan found almost no t() calls: is the package path right?"
    missing = {text: where for text, where in texts.items() if text not in korean}
    assert not missing, f"texts without a Korean entry (add to the page's register('ko', ...)): {missing}"


def test_korean_entries_use_only_the_english_placeholders() -> None:
    import_every_page()
    wrong = {
        english: korean
        for english, korean in i18n.catalog("ko").items()
        if not fields(korean) <= fields(english)
    }
    assert not wrong, f"Korean entries with placeholders their English text lacks: {wrong}"


def test_every_named_state_a_page_shows_has_a_korean_text() -> None:
    """Levels, fates, missing-list states and kinds are labels a person reads: each goes through t(), so a
    member added to one of these enums needs a text in the page's mapping and a Korean entry."""
    import_every_page()
    korean = i18n.catalog("ko")
    shown = (
        [layout.level_text(m) for m in Level] + [overview.fate_text(f) for f in Fate]
        + [missing.state_text(s) for s in MissingState] + [missing.kind_text(k) for k in MissingKind]
    )  # fmt: skip
    assert [text for text in shown if text not in korean] == []


def test_outside_a_page_the_console_speaks_english() -> None:
    assert i18n.current() == "en"
    assert i18n.t("Cancel") == "Cancel"
    assert i18n.t("{level} or worse", level="error") == "error or worse"


def test_unknown_locale_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: en, ko"):
        i18n.register("xx", {"a": "b"})


@pytest.mark.parametrize(
    ("given", "kept"),
    [("/held", "/held"), ("//evil.example/", "/"), ("https://x.example/", "/"), ("/\\evil", "/"), ("", "/")],
)
def test_language_switch_redirects_only_within_this_host(given: str, kept: str) -> None:
    assert i18n.safe_next(given) == kept
