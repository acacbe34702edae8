"""Console sign-in and sign-out: the ``/login`` page, and the two routes that set and clear the cookie.

Sign-in is two steps because a NiceGUI event travels over the page's websocket and cannot set an HttpOnly
cookie: the page checks the name and password (:meth:`Gate.sign_in`: one argon2 verify in a worker thread,
the same work for an unknown name, a per-address limit) and, when they match, sends the browser to
``/_signin?ticket=…&next=…``. That route redeems the single-use, 30-second ticket for a session and answers
with the cookie (HttpOnly: no script can read it; SameSite=Strict: no other site's page can use it; Secure
over HTTPS) and a redirect back to the page the person wanted. ``/_signout`` ends the session and clears
the cookie.

A refusal says "wrong name or password" and never which of the two was wrong. This module must never log
or show a password, a ticket or a session id, and never redirect to another host (``safe_next``).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from nicegui import context, ui

from logferry.console.i18n import register, safe_next, t
from logferry.users.gate import Gate, SignInRefused
from logferry.users.sessions import COOKIE

SIGNIN_ROUTE = "/_signin"
SIGNOUT_ROUTE = "/_signout"
MAX_FIELD_CHARS = 1024  # longer input is refused by the gate without hashing; this keeps the form honest


def add_session_routes(app: FastAPI, gate: Gate) -> None:
    """``GET /_signin?ticket=&next=`` (ticket → session cookie) and ``GET /_signout`` on ``app``."""

    async def redeem(request: Request, ticket: str = "", next: str = "/") -> RedirectResponse:
        sid = gate.sessions.redeem(ticket) if ticket else None
        if sid is None:  # stale or used: sign in again (the page says nothing went wrong but the time)
            return RedirectResponse(f"/login?next={quote(safe_next(next), safe='/')}", status_code=303)
        response = RedirectResponse(safe_next(next), status_code=303)
        response.set_cookie(
            COOKIE, sid, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
        )
        return response

    async def sign_out(request: Request) -> RedirectResponse:
        sid = request.cookies.get(COOKIE)
        if sid:
            gate.sessions.end(sid)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    app.add_api_route(SIGNIN_ROUTE, redeem, methods=["GET"], include_in_schema=False)
    app.add_api_route(SIGNOUT_ROUTE, sign_out, methods=["GET"], include_in_schema=False)


def build(gate: Gate, role: str, name: str, next_path: str) -> None:
    """The sign-in page: which daemon this is, a name and a password, and why a try was refused."""
    target = safe_next(next_path)
    with ui.column().classes("w-full items-center pt-24"), ui.card().classes("w-96 gap-3 p-6"):
        ui.label(f"logferry {role}").classes("text-xl font-bold")
        ui.label(name).classes("text-sm opacity-70").mark("daemon-name")
        ui.label(t("Sign in")).classes("text-lg font-semibold")
        user = ui.input(t("Name")).props("autofocus autocomplete=username").classes("w-full")
        user.props(f"maxlength={MAX_FIELD_CHARS}").mark("signin-name")
        password = ui.input(t("Password"), password=True).classes("w-full")
        password.props(f"autocomplete=current-password maxlength={MAX_FIELD_CHARS}").mark("signin-password")
        problem = ui.label("").classes("text-sm text-negative").mark("signin-problem")
        button = ui.button(t("Sign in"), icon="login").classes("w-full").mark("signin-submit")

        async def submit() -> None:
            given, secret = str(user.value or ""), str(password.value or "")
            password.value = ""  # the password leaves the page's state at once, right or wrong
            if not given.strip() or not secret:
                problem.set_text(t("Enter your name and password."))
                return
            button.disable()
            try:
                person = await gate.sign_in(given, secret, context.client.ip)
            except SignInRefused as refused:
                if refused.wait_s > 0:
                    text = t(
                        "Too many failed sign-ins from this address: try again in {seconds} s.",
                        seconds=f"{refused.wait_s:.0f}",
                    )
                else:
                    text = t("Wrong name or password.")
                problem.set_text(text)
                return
            finally:
                button.enable()
            ticket = gate.sessions.issue_ticket(person)
            ui.navigate.to(f"{SIGNIN_ROUTE}?ticket={ticket}&next={quote(target, safe='/')}")

        button.on_click(submit)
        password.on("keydown.enter", submit)


register(
    "ko",
    {
        "Sign in": "로그인",
        "Name": "이름",
        "Password": "비밀번호",
        "Enter your name and password.": "이름과 비밀번호를 입력하십시오.",
        "Wrong name or password.": "이름 또는 비밀번호가 틀렸습니다.",
        "Too many failed sign-ins from this address: try again in {seconds} s.": (
            "이 주소에서 로그인 실패가 너무 많습니다. {seconds}초 후에 다시 시도하십시오."
        ),
    },
)
