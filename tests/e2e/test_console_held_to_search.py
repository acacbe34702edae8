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

from playwright.sync_api import expect

from tests.e2e.browser import OPERATOR, browser_page, shoot, users_toml
from tests.integration.api_chain import call, start_api_chain
from tests.integration.procs import Procs, wait_until

MARK = "order=e2e4711"
LINES = [
    "2026-11-25T10:00:00 INFO http: GET /api/orders 200 12ms",
    f"2026-11-25T10:00:01 ERROR billing: charge failed card=4111111111111111 {MARK}",
    "2026-11-25T10:00:02 INFO billing: charge card=5500000000000004 order=other",
    "2026-11-25T10:00:03 INFO http: GET /api/orders 200 7ms",
]
TOKEN = "e2e-token-" + "9" * 32  # the shared api_token the test itself reads the API with


def held_total(relay_api: str, **params: Any) -> int:
    response = call("GET", relay_api + "/api/held", token=TOKEN, **params)
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def api(url: str, **params: Any) -> Any:
    response = call("GET", url, token=TOKEN, **params)
    assert response.status_code == 200, response.text
    return response.json()


def test_operator_releases_in_relay_console_then_finds_it_in_collector_search(
    procs: Procs, tmp_path: Path, chromium_path: Path
) -> None:
    chain = start_api_chain(
        procs, tmp_path,
        relay_extra=f'api_token = "{TOKEN}"\n' + users_toml("relay"),
        collector_extra=f'api_token = "{TOKEN}"\n' + users_toml("collector"),
    )  # fmt: skip
    log = tmp_path / "app.log"
    log.write_text("".join(line + "\n" for line in LINES), encoding="utf-8")
    chain.start_agent("edge-1", "--tail", str(log))
    wait_until(lambda: held_total(chain.relay_api) == 2, 20, "two records held by hold-cards")
    relay, collector = chain.relay_api, chain.collector_api

    with browser_page(chromium_path) as seen:
        page = seen.page
        page.goto(relay + "/held")
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        shoot(page, "relay-signin")
        seen.sign_in(relay, OPERATOR, "/")
        expect(page.get_by_text("Connected devices")).to_be_visible()
        expect(page.locator(".q-table").first).to_contain_text("edge-1")
        page.wait_for_timeout(3500)  # one refresh of the live charts has points to draw
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
        shoot(page, "relay-held-detail")
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
        shoot(page, "relay-missing-empty")

        page.get_by_role("link", name="Audit").click()
        expect(page.locator(".q-table tbody tr").filter(has_text="held.release")).to_have_count(1)
        expect(page.locator(".q-table tbody tr").filter(has_text="held.release")).to_contain_text("kim")
        shoot(page, "relay-audit")

        # released → outbox → collector; indexing may trail storage by a moment
        search_api = collector + "/api/records/search"
        wait_until(lambda: len(api(search_api, q='"e2e4711"')["items"]) == 1, 20, "indexed")
        seen.sign_in(collector, OPERATOR, "/")
        page.get_by_label("Full-text query").fill('"e2e4711"')
        page.get_by_role("button", name="Search").click()
        found = page.locator(".q-table tbody tr").filter(has_text=MARK)
        expect(found).to_have_count(1)
        page.get_by_label("Full-text query").fill("")
        page.get_by_role("button", name="Search").click()
        expect(page.locator(".q-table tbody tr").filter(has_text="GET /api/orders")).to_have_count(2)
        shoot(page, "collector-search")

        page.get_by_role("link", name="Analysis").click()
        expect(page).to_have_url(collector + "/analysis")
        shoot(page, "collector-analysis")

        seen.assert_clean()

    assert held_total(relay) == 1  # the other card record is still held
    audit = api(relay + "/api/audit", q="held.release")["items"]
    assert [(a["operator"], a["state"], a["count"]) for a in audit] == [("kim", "done", 1)]
    assert audit[0]["target"] == {"keys": ["edge-1:2"]}
