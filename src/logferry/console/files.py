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
from logferry.console.layout import PAGE_SIZE, frame, pager_text, size, when
from logferry.store.file_manifests import StoredFile

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
        {"name": "path", "label": t("Path"), "field": "path", "align": "left",
         "classes": "max-w-md truncate", "headerClasses": "max-w-md"},
        {"name": "size", "label": t("Size"), "field": "size", "align": "right"},
        {"name": "sha256", "label": t("SHA-256"), "field": "sha256", "align": "left",
         "classes": "font-mono text-xs"},
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
        self.offset = 0

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
            self.table.add_slot("body-cell-download", DOWNLOAD_SLOT)
            with ui.row().classes("items-center gap-2"):
                self.previous = ui.button(t("Previous"), on_click=self.page_back).props("flat")
                self.previous.mark("files-previous")
                self.span = ui.label("").mark("files-span")
                self.next = ui.button(t("Next"), on_click=self.page_on).props("flat").mark("files-next")
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
            offset=self.offset,
        )
        self.table.rows = [row(f) for f in found]
        self.table.update()
        self.span.set_text(pager_text(self.offset, len(found), total))
        self.previous.set_enabled(self.offset > 0)
        self.next.set_enabled(self.offset + len(found) < total)

    async def search(self) -> None:
        self.offset = 0
        await self.refresh()

    async def page_back(self) -> None:
        self.offset = max(0, self.offset - PAGE_SIZE)
        await self.refresh()

    async def page_on(self) -> None:
        self.offset += PAGE_SIZE
        await self.refresh()


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
        "Previous": "이전",
        "Next": "다음",
        "A download streams the stored file; compare its sha256 with the one shown.": (
            "내려받기는 저장된 파일을 그대로 전송합니다. sha256을 표시된 값과 비교하세요."
        ),
    },
)
