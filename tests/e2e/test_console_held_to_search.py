"""End to end in a real browser: a held record is released from the relay console through the confirm
dialog, then found in the collector console's search.

Real daemons (collector, relay with the test rules, one agent tailing a file) on 127.0.0.1, and Debian's
chromium driven by Playwright. Every request the browser makes is recorded: none may leave loopback, and
the browser console must show no error. Each page is photographed into docs/screenshots/ (the README
shows them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import ConsoleMessage, Page, Request, WebSocket, expect, sync_playwright

from tests.integration.api_chain import get_json, start_api_chain
from tests.integration.procs import Procs, wait_until

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
MARK = "order=e2e4711"
LINES = [
    "2026-11-25T10:00:00 INFO http: GET /api/orders 200 12ms",
    f"2026-11-25T10:00:01 ERROR billing: charge failed card=4111111111111111 {MARK}",
    "2026-11-25T10:00:02 INFO billing: charge card=5500000000000004 order=other",
    "2026-11-25T10:00:03 INFO http: GET /api/orders 200 7ms",
]


class Browser:
    """What the browser asked for and complained about, for the offline and no-error assertions."""

    def __init__(self, page: Page) -> None:
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


def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True, animations="disabled")


def held_total(relay_api: str, **params: Any) -> int:
    return int(get_json(relay_api + "/api/held", **params)["total"])


def test_release_in_relay_console_then_find_in_collector_search(
    procs: Procs, tmp_path: Path, chromium_path: Path
) -> None:
    chain = start_api_chain(procs, tmp_path)
    log = tmp_path / "app.log"
    log.write_text("".join(line + "\n" for line in LINES), encoding="utf-8")
    chain.start_agent("edge-1", "--tail", str(log))
    wait_until(lambda: held_total(chain.relay_api) == 2, 20, "two records held by hold-cards")
    relay, collector = chain.relay_api, chain.collector_api

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            seen = Browser(page)

            page.goto(relay + "/")
            expect(page.get_by_text("Connected devices")).to_be_visible()
            expect(page.locator(".q-table").first).to_contain_text("edge-1")
            shoot(page, "relay-overview")

            page.get_by_role("link", name="Held").click()
            expect(page).to_have_url(relay + "/held")
            rows = page.locator(".q-table tbody tr")
            expect(rows).to_have_count(2)
            shoot(page, "relay-held")

            page.get_by_label("Search message or path").fill(MARK)
            page.get_by_role("button", name="Search").click()
            expect(rows).to_have_count(1)
            rows.filter(has_text=MARK).click()  # the detail dialog
            expect(page.get_by_text("Held by rule")).to_be_visible()
            expect(page.locator(".q-dialog")).to_contain_text("hold-cards")
            page.locator(".q-dialog").get_by_role("button", name="Close").click()
            expect(page.locator(".q-dialog")).to_have_count(0)

            rows.filter(has_text=MARK).locator(".q-checkbox").click()
            page.get_by_role("button", name="Release selected").click()
            dialog = page.locator(".q-dialog")
            expect(dialog).to_contain_text("Release 1 held item to the collector?")
            expect(dialog.get_by_role("button", name="Release")).to_be_visible()
            shoot(page, "relay-held-confirm")
            dialog.get_by_role("button", name="Release").click()
            expect(page.get_by_text("1 held item released to the collector")).to_be_visible()
            expect(rows).to_have_count(0)

            page.get_by_role("link", name="Missing").click()
            expect(page.get_by_text("no reconciliation since the relay started")).to_be_visible()
            shoot(page, "relay-missing")

            # released → outbox → collector; indexing may trail storage by a moment
            search_api = collector + "/api/records/search"
            wait_until(lambda: len(get_json(search_api, q='"e2e4711"')["items"]) == 1, 20, "indexed")
            page.goto(collector + "/")
            page.get_by_label("Full-text query").fill('"e2e4711"')
            page.get_by_role("button", name="Search").click()
            found = page.locator(".q-table tbody tr")
            expect(found).to_have_count(1)
            expect(found).to_contain_text(MARK)
            shoot(page, "collector-search")

            assert seen.off_host() == [], f"requests left loopback: {seen.off_host()}"
            assert seen.errors == [], f"the browser console showed errors: {seen.errors}"
            assert any("/_nicegui/" in u for u in seen.urls)  # assets came from the daemon itself
        finally:
            browser.close()

    assert held_total(relay) == 1  # the other card record is still held
    audit = get_json(relay + "/api/audit", q="held.release")["items"]
    assert [(a["operator"], a["state"], a["count"]) for a in audit] == [("console", "done", 1)]
    assert audit[0]["target"] == {"keys": ["edge-1:2"]}
