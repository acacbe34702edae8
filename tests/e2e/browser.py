"""What every browser test shares: Debian's chromium through Playwright, a record of every request the page
makes (none may leave loopback) and of every console error (there must be none), sign-in, screenshots, and
the console users the daemons under test are configured with.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import ConsoleMessage, Page, Request, WebSocket, expect, sync_playwright

from logferry.users.credentials import hash_password

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password: str


OPERATOR = User("kim", "operator", "kim-e2e-password")
VIEWER = User("lee", "viewer", "lee-e2e-password")


def users_toml(table: str, users: tuple[User, ...] = (OPERATOR, VIEWER)) -> str:
    """``[[relay.users]]`` / ``[[collector.users]]`` tables for ``users`` (argon2id hashes made now)."""
    return "".join(
        f'\n[[{table}.users]]\nname = "{u.name}"\nrole = "{u.role}"\n'
        f'password_hash = "{hash_password(u.password)}"\n'
        for u in users
    )


class Browser:
    """What the browser asked for and complained about, for the offline and no-error assertions."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.urls: list[str] = []
        self.errors: list[str] = []
        page.on("request", self._request)
        page.on("websocket", self._websocket)
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def _request(self, request: Request) -> None:
        self.urls.append(request.url)

    def _websocket(self, ws: WebSocket) -> None:
        self.urls.append(ws.url)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text}")

    def off_host(self) -> list[str]:
        return [u for u in self.urls if not u.startswith("data:") and urlsplit(u).hostname != "127.0.0.1"]

    def assert_clean(self) -> None:
        """No request left loopback, no console error, and NiceGUI's assets came from the daemon itself."""
        assert self.off_host() == [], f"requests left loopback: {self.off_host()}"
        assert self.errors == [], f"the browser console showed errors: {self.errors}"
        assert any("/_nicegui/" in u for u in self.urls)

    def sign_in(self, base: str, user: User, path: str = "/") -> None:
        """Open ``base + path``, get sent to the sign-in page, sign in, land on ``path``."""
        page = self.page
        page.goto(base + path)
        expect(page).to_have_url(re.compile(re.escape(base) + r"/login\?next="))
        page.get_by_label("Name").fill(user.name)
        page.get_by_label("Password").fill(user.password)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(base + path)
        expect(page.get_by_text(user.name, exact=False).first).to_be_visible()


@contextmanager
def browser_page(chromium: Path) -> Iterator[Browser]:
    """One chromium page (1400×900), recorded; the browser closes whatever happens."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            yield Browser(page)
        finally:
            browser.close()


def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True, animations="disabled")
