"""End to end in a real browser: a viewer signs in, reads the held items, and is refused every write — the
buttons are disabled, a write forced from the page's own session is refused by the API, and nothing moves
or is audited as done. Then the Korean locale is switched on and the page speaks Korean.

Real daemons on 127.0.0.1 and Debian's chromium; no request may leave loopback, no console error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.e2e.browser import VIEWER, browser_page, shoot, users_toml
from tests.integration.api_chain import call, start_api_chain
from tests.integration.procs import Procs, query, wait_until

TOKEN = "e2e-token-" + "7" * 32
LINES = [
    "2026-11-25T10:00:01 ERROR billing: charge failed card=4111111111111111 order=v1",
    "2026-11-25T10:00:02 INFO billing: charge card=5500000000000004 order=v2",
]


def held(relay_api: str) -> Any:
    response = call("GET", relay_api + "/api/held", token=TOKEN)
    assert response.status_code == 200, response.text
    return response.json()


def test_viewer_reads_but_every_write_is_refused(procs: Procs, tmp_path: Path, chromium_path: Path) -> None:
    chain = start_api_chain(procs, tmp_path, relay_extra=f'api_token = "{TOKEN}"\n' + users_toml("relay"))
    log = tmp_path / "app.log"
    log.write_text("".join(line + "\n" for line in LINES), encoding="utf-8")
    chain.start_agent("edge-v", "--tail", str(log))
    wait_until(lambda: held(chain.relay_api)["total"] == 2, 20, "two records held")
    relay = chain.relay_api

    with browser_page(chromium_path) as seen:
        page = seen.page
        seen.sign_in(relay, VIEWER, "/held")
        expect(page.get_by_text("(viewer)")).to_be_visible()
        rows = page.locator(".q-table tbody tr")
        expect(rows).to_have_count(2)
        for name in ("Release selected", "Delete selected", "Release all matching", "Delete all matching"):
            expect(page.get_by_role("button", name=name)).to_be_disabled()
        shoot(page, "relay-held-viewer")

        # The browser holds the viewer's session cookie: a write sent with it is refused, not carried out.
        status = page.evaluate(
            """async () => (await fetch('/api/held/release', {method: 'POST',
                 headers: {'Content-Type': 'application/json'},
                 body: JSON.stringify({keys: ['edge-v:1']})})).status"""
        )
        assert status in (401, 403), f"a viewer's session carried out a write: HTTP {status}"
        refused = f"console error: Failed to load resource: the server responded with a status of {status}"
        assert all(e.startswith(refused) for e in seen.errors), seen.errors  # the browser logs our refusal
        seen.errors.clear()

        page.get_by_role("link", name="Missing").click()
        expect(page.get_by_role("button", name="Reconcile now")).to_be_disabled()

        page.get_by_role("button", name="한국어").click()
        expect(page.get_by_role("link", name="보류")).to_be_visible()
        expect(page.get_by_role("button", name="지금 대조")).to_be_disabled()
        expect(page.get_by_text("열림")).to_be_visible()  # the state filter's choice is a label: translated
        shoot(page, "relay-missing-korean")
        seen.assert_clean()

    assert held(relay)["total"] == 2  # nothing moved
    done = query(tmp_path / "relay" / "audit.db", "SELECT action FROM audit WHERE state = 'done'")
    assert done == []
