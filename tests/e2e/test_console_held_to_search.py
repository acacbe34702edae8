"""End to end in a real browser: a held record is released from the relay console through the confirm
dialog, then found in the collector console's search.

Real daemons (collector, relay with the test rules, two agents tailing a file each) on 127.0.0.1, and
Debian's chromium driven by Playwright. Every request the browser makes is recorded: none may leave
loopback, and the browser console must show no error. Each page is photographed into docs/screenshots/ (the
README shows them).

Before the four lines under test, a second device ("web-1") sends a few hundred lines of several kinds in
rounds a second or two apart, so the photographed Analysis page has templates, alerts and an error rate
over several windows, and the Search page a histogram. None of them matches a rule but drop-debug's level
(no card number), so exactly the two card lines of edge-1 are held.
"""

from __future__ import annotations

import time
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
# Short error-rate windows and a small warm-up: seconds of traffic show as several windows, and the
# templates that first appear in later rounds raise new-template alerts.
ANALYSIS = (
    "analysis_interval_s = 0.5\nanalysis_window_s = 2\nanalysis_warmup_records = 120\n"
    "analysis_min_window_records = 10\nanalysis_baseline_windows = 3\n"
)
ROUNDS = 5
LONG_TAIL = "region=eu-central-1 tier=cold"
PER_ROUND = 80


def noise(round_no: int, i: int) -> str:
    """The i-th line of a round of web-1's traffic: six kinds of line, errors rising in round 3."""
    at = f"2026-11-25T10:{round_no:02d}:{i % 60:02d}"
    kind = i % 10
    if kind == 0 or (round_no == 3 and kind in (4, 6)):
        return f"{at} ERROR db: query timeout after {300 + i}ms table=orders"
    if kind == 1:
        return f"{at} INFO auth: login ok user=user{i % 7}"
    if kind == 2:
        return f"{at} WARN cache: miss key=k{i} ratio=0.{i % 9}"
    if kind == 3 and round_no >= 3:  # a kind of line that only starts later: a new template
        return f"{at} ERROR payment: gateway refused status=502 attempt={i % 4}"
    if kind == 5:
        return f"{at} INFO worker: job {1000 + i} done in {i % 50}ms"
    if kind == 7:  # longer than the templates column: cut there, whole on hover
        return (f"{at} INFO export: nightly archive of table=orders to /srv/archive/orders finished "
                f"rows={1000 + i} bytes={4096 * i} checksum=sha256 replicas=3 {LONG_TAIL}")  # fmt: skip
    return f"{at} INFO http: GET /api/items/{i} 200 {i % 90}ms"


def send_noise(log: Path) -> int:
    """Append web-1's rounds to ``log``, a second and a half apart (record time is read time); how many."""
    for round_no in range(1, ROUNDS + 1):
        with log.open("a", encoding="utf-8") as out:
            out.write("".join(noise(round_no, i) + "\n" for i in range(PER_ROUND)))
        time.sleep(1.5)
    return ROUNDS * PER_ROUND


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
        collector_extra=f'api_token = "{TOKEN}"\n' + ANALYSIS + users_toml("collector"),
    )  # fmt: skip
    traffic = tmp_path / "web.log"
    traffic.touch()
    chain.start_agent("web-1", "--tail", str(traffic))
    sent = send_noise(traffic)
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

        mined = collector + "/api/analysis/status"
        wait_until(lambda: api(mined)["mined"] >= sent + 3, 20, "every stored record mined")
        page.get_by_role("link", name="Analysis").click()
        expect(page).to_have_url(collector + "/analysis")
        templates = page.locator(".q-table").filter(has_text="Trend (24 h)").last
        expect(templates).to_contain_text("ERROR payment: gateway refused")
        expect(page.locator("canvas").first).to_be_visible()  # the error-rate chart has drawn
        shoot(page, "collector-analysis")
        # A long template is cut to one line (its row as compact as the others) and read whole on hover.
        long = templates.locator("tbody td").filter(has_text="INFO export: nightly archive")
        short = templates.locator("tbody td").filter(has_text="ERROR payment: gateway refused")
        assert long.evaluate("td => td.scrollWidth > td.clientWidth"), "the long template is not cut"
        heights = [box["height"] for box in (long.bounding_box(), short.bounding_box()) if box]
        assert len(heights) == 2 and heights[0] == heights[1], heights
        long.hover()
        expect(page.locator(".q-tooltip")).to_contain_text(LONG_TAIL)

        seen.assert_clean()

    assert held_total(relay) == 1  # the other card record is still held
    audit = api(relay + "/api/audit", q="held.release")["items"]
    assert [(a["operator"], a["state"], a["count"]) for a in audit] == [("kim", "done", 1)]
    assert audit[0]["target"] == {"keys": ["edge-1:2"]}
