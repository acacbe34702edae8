"""The collector's Files page: the manifests of the whole files received (source, path, size, sha256,
received), newest first, a page at a time, filtered by source and a part of the path, each with a download.

The list is ``FileManifests.page`` — what ``GET /api/files`` answers. A download is a plain link to the
REST route ``GET /api/files/{source}/{seq}/content`` on this same daemon: the browser streams the file to
disk (never through the page's websocket or into this process's memory), and the route sends the sha256 in
``X-Logferry-Sha256``; the page shows the full sha256 so an operator can compare it with ``sha256sum``.
This page reads only; it must never change a manifest or the content store.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from nicegui import ui

from logferry.api.launch import CollectorView
from logferry.console.i18n import register, t
from logferry.console.layout import PAGE_SIZE, Pager, frame, size, when
from logferry.store.file_manifests import StoredFile

# A long path is cut at the start of the cell (the file name at its end stays in view) and shown whole on
# hover; the sha256 is never cut (an operator compares all of it), so the path gives way and the Download
# link keeps its place at 1400 px.
PATH_SLOT = r"""
<q-td :props="props">
  <div class="truncate" style="max-width: 16rem; direction: rtl; text-align: left" :title="props.value">
    <bdi>{{ props.value }}</bdi>
  </div>
</q-td>
"""
DOWNLOAD_SLOT = r"""
<q-td :props="props">
  <a :href="props.row.content" download class="text-blue-800 underline"
     :data-testid="'download-' + props.row.key">
    {{ props.value }}
  </a>
</q-td>
"""


def columns() -> list[dict[str, Any]]:
    return [
        {"name": "received", "label": t("Received (UTC)"), "field": "received", "align": "left"},
        {"name": "key", "label": t("Item"), "field": "key", "align": "left"},
        {"name": "path", "label": t("Path"), "field": "path", "align": "left"},
        {"name": "size", "label": t("Size"), "field": "size", "align": "right"},
        {"name": "sha256", "label": t("SHA-256"), "field": "sha256", "align": "left",
         "classes": "font-mono text-xs whitespace-nowrap"},
        {"name": "download", "label": "", "field": "download", "align": "left"},
    ]  # fmt: skip


def content_url(f: StoredFile) -> str:
    """The REST download route of a file (its source holds a "/": kept, every other character quoted)."""
    return f"/api/files/{quote(f.source, safe='/')}/{f.seq}/content"


def row(f: StoredFile) -> dict[str, Any]:
    return {
        "key": f"{f.source}:{f.seq}", "received": when(f.received_ns), "path": f.path, "size": size(f.size),
        "sha256": f.sha256.hex(), "content": content_url(f), "download": t("Download"),
    }  # fmt: skip


class FilesPage:
    def __init__(self, view: CollectorView) -> None:
        self.view = view

    async def build(self) -> None:
        with frame(t("Files")):
            if self.view.files is None:
                ui.label(t("This collector has no file store open.")).mark("files-off")
                return
            with ui.row().classes("items-end gap-3 flex-wrap"):
                self.source = ui.input(t("Source"), placeholder="edge-1/files").classes("w-56")
                self.source.mark("files-source").on("keydown.enter", self.search)
                self.name = ui.input(t("Part of the path")).classes("w-72").mark("files-name")
                self.name.on("keydown.enter", self.search)
                ui.button(t("Search"), icon="search", on_click=self.search).mark("files-go")
            self.table = ui.table(columns=columns(), rows=[], row_key="key", pagination=0).classes("w-full")
            self.table.props("hide-bottom dense").mark("files-table")
            self.table.add_slot("body-cell-path", PATH_SLOT)
            self.table.add_slot("body-cell-download", DOWNLOAD_SLOT)
            self.pager = Pager(self.refresh, "files")
            ui.label(t("A download streams the stored file; compare its sha256 with the one shown.")).classes(
                "text-sm opacity-60"
            )
        await self.refresh()

    async def refresh(self) -> None:
        assert self.view.files is not None
        found, total = await self.view.files.page(
            source=str(self.source.value or "").strip() or None,
            name=str(self.name.value or "").strip() or None,
            limit=PAGE_SIZE,
            offset=self.pager.offset,
        )
        self.table.rows = [row(f) for f in found]
        self.table.update()
        self.pager.show(len(found), total)

    async def search(self) -> None:
        await self.pager.first()


async def build(view: CollectorView) -> None:
    await FilesPage(view).build()


register(
    "ko",
    {
        "Files": "파일",
        "Received (UTC)": "수신 시각 (UTC)",
        "Item": "항목",
        "Path": "경로",
        "Size": "크기",
        "SHA-256": "SHA-256",
        "Download": "내려받기",
        "This collector has no file store open.": "이 컬렉터에는 열린 파일 저장소가 없습니다.",
        "Source": "소스",
        "Part of the path": "경로 일부",
        "Search": "검색",
        "A download streams the stored file; compare its sha256 with the one shown.": (
            "내려받기는 저장된 파일을 그대로 전송합니다. sha256을 표시된 값과 비교하세요."
        ),
    },
)
