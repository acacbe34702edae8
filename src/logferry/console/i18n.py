"""The console's languages: English text in the code, Korean (the original users' language) as a second.

Every text a page shows goes through :func:`t` with its English wording, which is also the catalog key::

    ui.label(t("Held items"))
    t("{n} items match", n=12)          # placeholders are filled after the lookup

Each page module registers its own Korean catalog at import (``register("ko", {...})``), keyed by the same
English text, so a page and its translations stay side by side. ``tests/unit/test_console_i18n.py`` reads
every ``t("…")`` call in the package and fails when a text has no Korean entry, or when an entry has
placeholders the English text does not.

The locale is the browser's choice, kept in the ``logferry_locale`` cookie that ``GET /_locale/{code}`` sets
(the language switch in the header links there; it redirects back). Nothing is stored on the server. Outside a
page (unit tests, logs) the locale is English. This module must never translate log lines, API errors or CLI
output: those stay English, for scripts and for searching the web.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from nicegui import context

COOKIE: Final = "logferry_locale"
DEFAULT: Final = "en"
LOCALES: Final = {"en": "English", "ko": "한국어"}
COOKIE_MAX_AGE_S: Final = 365 * 24 * 3600

_catalogs: dict[str, dict[str, str]] = {code: {} for code in LOCALES if code != DEFAULT}


def register(locale: str, catalog: dict[str, str]) -> None:
    """Add ``catalog`` (English text → translation) to ``locale``; a page module calls this at import."""
    if locale not in _catalogs:
        raise ValueError(f"unknown console locale {locale!r}; known: {', '.join(LOCALES)}")
    _catalogs[locale].update(catalog)


def catalog(locale: str) -> dict[str, str]:
    """The translations registered for ``locale`` (a copy), for tests and tools."""
    return dict(_catalogs.get(locale, {}))


def current() -> str:
    """The locale of the page being built or the event being handled; English outside a page."""
    try:
        request = context.client.request
    except (RuntimeError, AttributeError):  # no page in context, or a client without a request (tests)
        return DEFAULT
    chosen = request.cookies.get(COOKIE, DEFAULT)
    return chosen if chosen in LOCALES else DEFAULT


def t(text: str, /, **values: object) -> str:
    """``text`` in the current locale (English when no translation is registered), placeholders filled."""
    locale = current()
    shown = text if locale == DEFAULT else _catalogs[locale].get(text, text)
    return shown.format(**values) if values else shown


def safe_next(path: str) -> str:
    """Only a path on this host may follow a language switch (no open redirect to another site)."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def add_locale_route(app: FastAPI) -> None:
    """``GET /_locale/{code}?next=/held``: remember the language in a cookie, then go back to ``next``."""

    async def choose_locale(code: str, next: str = "/") -> RedirectResponse:
        response = RedirectResponse(safe_next(next), status_code=303)
        if code in LOCALES:
            response.set_cookie(COOKIE, code, max_age=COOKIE_MAX_AGE_S, samesite="strict", httponly=True)
        return response

    app.add_api_route("/_locale/{code}", choose_locale, methods=["GET"], include_in_schema=False)
