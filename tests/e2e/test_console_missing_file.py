"""End to end in a real browser: a file deleted behind the collector's back shows up on the relay's Missing
page after "Reconcile now"; an operator resends it, and the collector's Files page lists it again with the
sha256 it had on the device — checked on the bytes the download link serves.

Real daemons (collector, relay with policy ``confirm``, one agent watching a folder) on 127.0.0.1, Debian's
chromium through Playwright; no request may leave loopback and the browser console must show no error.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.browser import OPERATOR, browser_page, shoot, users_toml
from tests.integration.files_chain import ITEMS, age, start_files_chain, write_file
from tests.integration.procs import Procs, query, wait_until


def test_operator_resends_a_missing_file_and_it_arrives_with_its_sha256(
    procs: Procs, tmp_path: Path, chromium_path: Path
) -> None:
    # reconcile only when asked: the operator's "Reconcile now" is what finds the hole
    relay_extra = 'resend_policy = "confirm"\nreconcile_interval_s = 0\n' + users_toml("relay")
    collector_config = tmp_path / "collector.toml"
    collector_config.write_text("[collector]\n" + users_toml("collector"), encoding="utf-8")
    chain = start_files_chain(
        procs, tmp_path, relay_extra=relay_extra, collector_args=("--config", str(collector_config))
    )
    keep, lose = chain.folder / "report-keep.bin", chain.folder / "report-lost.bin"
    write_file(keep, 40_000, seed=7)
    want = write_file(lose, 300_000, seed=8)
    age(keep)
    age(lose)
    chain.start_agent(chunk_bytes=64 * 1024)
    wait_until(lambda: len(chain.stored()) == 2, 30, "both files at the collector")
    journal = tmp_path / "relay" / "journal.db"
    wait_until(lambda: not query(journal, "SELECT 1 FROM file_items WHERE sent = 0"), 10, "acknowledged")

    # behind the collector's back: the manifest row and the content of report-lost.bin go away
    conn = sqlite3.connect(chain.files_db, timeout=30)
    with conn:
        conn.execute("DELETE FROM files WHERE source = ? AND path = ?", (ITEMS, str(lose)))
    conn.close()
    chain.content_path(want).unlink()
    relay = "http://" + chain.relay.address("api")
    collector = "http://" + chain.collector.address("api")

    with browser_page(chromium_path) as seen:
        page = seen.page
        seen.sign_in(relay, OPERATOR, "/missing")
        page.get_by_role("button", name="Reconcile now").click()
        page.locator(".q-dialog").get_by_role("button", name="Reconcile").click()
        group = page.locator(".q-expansion-item").filter(has_text=ITEMS)
        expect(group).to_have_count(1)
        # the only group opens by itself (clicking its header while it animates open would close it again)
        expect(group.locator(".q-table")).to_be_visible()
        rows = group.locator(".q-table tbody tr")
        expect(rows).to_have_count(1)
        expect(rows).to_contain_text("file")
        shoot(page, "relay-missing")

        rows.first.locator(".q-checkbox").click()
        group.get_by_role("button", name="Resend selected").click()
        # the Reconcile dialog may still be fading out beside it: take the one that asks about the resend
        dialog = page.locator(".q-dialog").filter(has_text="Resend 1 entry to the collector?")
        expect(dialog).to_have_count(1)
        dialog.get_by_role("button", name="Resend").click()
        expect(page.get_by_text("1 files", exact=False).first).to_be_visible()

        wait_until(lambda: chain.stored().get(str(lose)) == want, 30, "the resent file stored again")
        seen.sign_in(collector, OPERATOR, "/files")
        row = page.locator(".q-table tbody tr").filter(has_text="report-lost.bin")
        expect(row).to_have_count(1)
        expect(row).to_contain_text(want)  # the sha256 the device computed, shown in full
        shoot(page, "collector-files")
        with page.expect_download() as download_info:
            row.get_by_text("Download").click()
        got = Path(download_info.value.path())
        assert hashlib.sha256(got.read_bytes()).hexdigest() == want
        assert got.read_bytes() == lose.read_bytes()
        seen.assert_clean()

    audit = query(tmp_path / "relay" / "audit.db", "SELECT operator, action, state FROM audit ORDER BY id")
    assert audit == [("kim", "reconcile", "done"), ("kim", "missing.resend", "done")]
