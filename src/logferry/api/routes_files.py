"""The collector's whole files: list the manifests (filters, paging) and download a file's content.

A download streams the stored content in pieces (bounded memory, whatever the file's size) with its exact
``Content-Length`` and an ``X-Logferry-Sha256`` header, so a client can check what it got end to end. The
content is served from its content address, so two items with identical content serve the same bytes.
This module reads only; it must never change a manifest or the content store.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from logferry.api.auth import token_check
from logferry.api.launch import CollectorView
from logferry.api.params import DEFAULT_LIMIT, MAX_LIMIT, MAX_TEXT, iso
from logferry.api.problems import ApiError, error_responses
from logferry.store.file_manifests import FileManifests, StoredFile

MAX_SEQ = 2**63 - 1
MAX_OFFSET = 2**62
STREAM_BYTES = 1 << 20


class FileOut(BaseModel):
    source: str = Field(description='the item source: "<agent source>/files"')
    seq: int
    path: str = Field(description="the file's path on the device")
    size: int
    mtime: str
    mtime_ns: int
    sha256: str
    relay: str
    received: str
    received_ns: int
    content: str = Field(description="where to download it (relative URL)")


class FilePage(BaseModel):
    items: list[FileOut]
    total: int
    limit: int
    offset: int


def file_out(f: StoredFile) -> FileOut:
    return FileOut(
        source=f.source, seq=f.seq, path=f.path, size=f.size, mtime=iso(f.mtime_ns), mtime_ns=f.mtime_ns,
        sha256=f.sha256.hex(), relay=f.relay, received=iso(f.received_ns), received_ns=f.received_ns,
        content=f"/api/files/{f.source}/{f.seq}/content",
    )  # fmt: skip


def _manifests(view: CollectorView) -> FileManifests:
    if view.files is None:
        raise ApiError(503, "this collector has no file store open", "restart the collector")
    return view.files


def files_router(view: CollectorView) -> APIRouter:
    router = APIRouter(
        prefix="/api",
        tags=["files"],
        dependencies=[Depends(token_check(view.token))],
        responses=error_responses(400, 401, 503),
    )

    @router.get("/files", response_model=FilePage, summary="Stored files (manifests), newest first")
    async def list_files(
        source: Annotated[str | None, Query(max_length=MAX_TEXT, description='e.g. "edge-1/files"')] = None,
        name: Annotated[str | None, Query(max_length=MAX_TEXT, description="substring of the path")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> FilePage:
        manifests = _manifests(view)
        found, total = await manifests.page(source=source or None, name=name, limit=limit, offset=offset)
        return FilePage(items=[file_out(f) for f in found], total=total, limit=limit, offset=offset)

    @router.get(
        "/files/{source:path}/{seq}/content",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/octet-stream": {}}}, **error_responses(404)},
        summary="Download a stored file's content (streamed; X-Logferry-Sha256 header)",
    )
    async def content(
        source: Annotated[str, Path(min_length=1, max_length=MAX_TEXT)],
        seq: Annotated[int, Path(ge=1, le=MAX_SEQ)],
    ) -> StreamingResponse:
        manifests = _manifests(view)
        stored = await manifests.get(source, seq)
        if stored is None:
            raise ApiError(404, f"file {source}:{seq} is not stored here",
                           "list what is stored with /api/files; it may still be on its way")  # fmt: skip
        store = manifests.content
        if not store.has(stored.sha256):
            raise ApiError(
                404,
                f"the content of {source}:{seq} is missing from the file store",
                "reconcile on the relay (POST /api/reconcile) to have it sent again",
            )

        def pieces() -> Iterator[bytes]:
            yield from store.read(stored.sha256, 0, STREAM_BYTES)

        name = stored.path.replace("\\", "/").rsplit("/", 1)[-1].replace('"', "")
        headers = {
            "Content-Length": str(stored.size),
            "X-Logferry-Sha256": stored.sha256.hex(),
            "Content-Disposition": f'attachment; filename="{name}"',
        }
        return StreamingResponse(pieces(), media_type="application/octet-stream", headers=headers)

    return router
