"""The console's frame and its shared display pieces: header with navigation, page titles, confirm dialogs,
a row's detail dialog, the pager under every table, how times, levels and sizes are shown, and the page
size of every table.

Every page builds inside :func:`frame`, so the relay and the collector look alike and a page never links to
anything outside its own daemon (no CDN, no external font or image: the console runs offline). This module
must never read a store or act on one; pages pass it what they show.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from nicegui import events, ui

from logferry import __version__
from logferry.console import access
from logferry.console.i18n import LOCALES, current, register, t
from logferry.model import Level
from logferry.users.roles import Person, Role

PAGE_SIZE = 50  # rows per table page
NS = 1_000_000_000


def level_text(level: Level) -> str:
    """A level's name in the page's language (the literals are here so the i18n test sees each one)."""
    names = {
        Level.EMERGENCY: t("emergency"), Level.ALERT: t("alert"), Level.CRITICAL: t("critical"),
        Level.ERROR: t("error"), Level.WARNING: t("warning"), Level.NOTICE: t("notice"),
        Level.INFO: t("info"), Level.DEBUG: t("debug"),
    }  # fmt: skip
    return names[level]


def level_options() -> dict[str, str]:
    """The level filter's choices in the page's language; the keys stay the English names it parses."""
    return {"": t("any level")} | {
        m.name.lower(): t("{level} or worse", level=level_text(m)) for m in Level if m is not Level.DEBUG
    }


RELAY_PAGES = (("/", "Overview"), ("/held", "Held"), ("/missing", "Missing"), ("/audit", "Audit"))
COLLECTOR_PAGES = (("/", "Search"), ("/analysis", "Analysis"), ("/files", "Files"))


def header(role: str, name: str, pages: tuple[tuple[str, str], ...], person: Person | None = None) -> None:
    """The bar on top of every page: which daemon this is, its pages and, with sign-in, who is signed in."""
    with ui.header().classes("items-center gap-6 bg-slate-800 text-white px-4 py-2"):
        ui.label(f"logferry {role}").classes("text-lg font-bold")
        ui.label(name).classes("text-sm opacity-80").mark("daemon-name")
        with ui.row().classes("gap-4"):
            for path, title in pages:
                link = ui.link(t(title), path).classes("text-white no-underline hover:underline")
                link.mark(f"nav-{title}")
        ui.space()
        if person is not None and person.signed_in:
            signed_in(person)
        language_switch()
        ui.label(f"v{__version__}").classes("text-xs opacity-70")


def signed_in(person: Person) -> None:
    """Who is signed in, their role, and the way out (the session ends on the server at once)."""
    with ui.row().classes("items-center gap-2 text-sm"):
        ui.icon("person").classes("opacity-80")
        ui.label(person.name).classes("font-semibold").mark("signed-in-name")
        role = t("operator") if person.role is Role.OPERATOR else t("viewer")
        ui.label(f"({role})").classes("opacity-80").mark("signed-in-role")
        ui.button(t("Sign out"), on_click=access.sign_out).props(
            "flat dense no-caps size=sm color=white"
        ).mark("sign-out")


def language_switch() -> None:
    """Links to the other languages; the choice is a cookie (``i18n.add_locale_route``), kept per browser."""
    here = current()
    with ui.row().classes("gap-2 text-xs"):
        for code, label in LOCALES.items():
            if code == here:
                ui.label(label).classes("font-semibold").mark(f"locale-{code}-current")
                continue

            def switch(code: str = code) -> None:
                # a full page load (not ui.navigate, which stays inside the sub-page router): the cookie is
                # set by a server route, and every page is rebuilt in the new language
                ui.run_javascript(
                    f"window.location.assign('/_locale/{code}?next=' + "
                    "encodeURIComponent(window.location.pathname))"
                )

            ui.button(label, on_click=switch).props("flat dense no-caps size=sm color=white").mark(
                f"locale-{code}"
            )


@contextmanager
def frame(title: str) -> Iterator[None]:
    """A page's column with its title; the page's content goes inside the ``with``."""
    with ui.column().classes("w-full max-w-screen-xl mx-auto p-4 gap-4"):
        ui.label(title).classes("text-2xl font-semibold")
        yield


def when(ns: int | None) -> str:
    """Epoch nanoseconds as UTC ``2026-11-25 10:00:01.123``; "" for None."""
    if ns is None:
        return ""
    moment = datetime.datetime.fromtimestamp(ns / NS, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def level_name(level: int | None) -> str:
    """A record's level as a person reads it (translated); "" for none, the number for one out of range."""
    if level is None:
        return ""
    try:
        return level_text(Level(level))
    except ValueError:
        return str(level)


def size(n: int) -> str:
    """Bytes for people: ``1.2 MiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def pager_text(offset: int, shown: int, total: int | None) -> str:
    """``1–50 of 120`` (``total`` None when it is not known: ``51–100``)."""
    if shown == 0:
        return t("nothing matches") if offset == 0 else t("no more items after {offset}", offset=offset)
    span = f"{offset + 1}–{offset + shown}"
    return span if total is None else t("{span} of {total}", span=span, total=f"{total:,}")


class Pager:
    """Previous / ``1–50 of 120`` / Next under a server-side paged table, and the offset it stands at.

    The page owns the read: ``refresh`` reads the rows at :attr:`offset` and then calls :meth:`show`. The
    elements are marked ``{marker}-previous``, ``{marker}-span`` and ``{marker}-next``; ``row`` is the
    container, for a page that puts a note beside the pager.
    """

    def __init__(self, refresh: Callable[[], Awaitable[None]], marker: str) -> None:
        self.offset = 0
        self._refresh = refresh
        with ui.row().classes("items-center gap-2") as self.row:
            self.previous = ui.button(t("Previous"), on_click=self.back).props("flat")
            self.previous.mark(f"{marker}-previous")
            self.span = ui.label("").mark(f"{marker}-span")
            self.next = ui.button(t("Next"), on_click=self.on).props("flat").mark(f"{marker}-next")

    async def first(self) -> None:
        """Back to the first page (a new search), then read."""
        self.offset = 0
        await self._refresh()

    async def back(self) -> None:
        self.offset = max(0, self.offset - PAGE_SIZE)
        await self._refresh()

    async def on(self) -> None:
        self.offset += PAGE_SIZE
        await self._refresh()

    def last_page(self, total: int) -> int:
        """The offset of the last page of ``total`` rows (where to go when the current page emptied)."""
        return max(0, (total - 1) // PAGE_SIZE * PAGE_SIZE)

    def show(self, shown: int, total: int | None, *, more: bool | None = None) -> None:
        """Say which rows are shown; ``total`` None when it is unknown (then ``more`` says if Next may go)."""
        self.span.set_text(pager_text(self.offset, shown, total))
        self.previous.set_enabled(self.offset > 0)
        if more is None:
            more = total is not None and self.offset + shown < total
        self.next.set_enabled(more)


def clicked_row(event: events.GenericEventArguments) -> dict[str, object]:
    """The row a ``rowClick`` event names (Quasar sends ``[event, row, index]``); {} when it names none."""
    args = event.args if isinstance(event.args, list) else []
    return args[1] if len(args) > 1 and isinstance(args[1], dict) else {}


def detail_dialog(title: str, lines: list[tuple[str, str]], marker: str) -> None:
    """Open a dialog with ``title`` and (label, value) lines; values wrap, so a long message is readable."""
    with ui.dialog() as dialog, ui.card().classes("min-w-[36rem] max-w-4xl"):
        ui.label(title).classes("text-lg font-semibold")
        with ui.grid(columns="auto 1fr").classes("gap-x-4 gap-y-1").mark(marker):
            for label, value in lines:
                ui.label(label).classes("text-sm opacity-60")
                ui.label(value).classes("text-sm break-all whitespace-pre-wrap")
        ui.button(t("Close"), on_click=dialog.close).props("flat").classes("self-end")
    dialog.open()


def confirm(question: str, verb: str, act: Callable[[], Awaitable[None]], *, danger: bool = False) -> None:
    """Open a dialog asking ``question``; ``act`` runs only when the operator presses ``verb``."""
    with ui.dialog() as dialog, ui.card().classes("min-w-96"):
        ui.label(question).classes("text-base").mark("confirm-question")
        with ui.row().classes("w-full justify-end gap-2"):
            ui.button(t("Cancel"), on_click=dialog.close).props("flat").mark("confirm-cancel")

            async def go() -> None:
                dialog.close()
                await act()

            ui.button(verb, on_click=go, color="negative" if danger else "primary").mark("confirm-ok")
    dialog.open()


def stat(label: str, marker: str) -> ui.label:
    """A labelled number on a card; returns the label whose text the page updates."""
    with ui.card().classes("min-w-40 p-3 gap-1"):
        ui.label(label).classes("text-xs uppercase opacity-60")
        return ui.label("…").classes("text-xl font-semibold").mark(marker)


register(
    "ko",
    {
        "Overview": "개요",
        "Held": "보류",
        "Missing": "누락",
        "Audit": "감사",
        "Search": "검색",
        "Analysis": "분석",
        "Files": "파일",
        "any level": "모든 수준",
        "emergency": "긴급",
        "alert": "경보",
        "critical": "치명",
        "error": "오류",
        "warning": "경고",
        "notice": "알림",
        "info": "정보",
        "debug": "디버그",
        "{level} or worse": "{level} 이상",
        "nothing matches": "일치하는 항목 없음",
        "no more items after {offset}": "{offset}번 이후 항목 없음",
        "{span} of {total}": "{span} / 전체 {total}",
        "Cancel": "취소",
        "operator": "운영자",
        "viewer": "조회자",
        "Sign out": "로그아웃",
        "Previous": "이전",
        "Next": "다음",
        "Close": "닫기",
    },
)
