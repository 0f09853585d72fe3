"""``/images/{id}``: indexed images only, looked up by id in the index (never a path from the URL).

Ids are opaque and may contain slashes; clients percent-encode them (``quote(id, safe="")``) and
the ``path`` converter takes them back whole.
"""
from __future__ import annotations

import mimetypes
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from service.deps import EngineDep
from service.schemas import ErrorResponse

router = APIRouter(prefix="/images", tags=["images"])
NOT_FOUND = {404: {"model": ErrorResponse}}
PNG = {200: {"content": {"image/png": {}}}}


@router.get("/{doc_id:path}/thumb", response_class=Response, responses={**NOT_FOUND, 200: {"content": {"image/jpeg": {}}}})
def thumbnail(doc_id: str, engine: EngineDep) -> Response:
    """A JPEG thumbnail of an indexed image."""
    return Response(engine.thumbnail(doc_id), media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


@router.get("/{doc_id:path}/heatmap", response_class=Response, responses={**NOT_FOUND, **PNG, 422: {"model": ErrorResponse}})
async def word_heatmap(doc_id: str, word: Annotated[str, Query(min_length=1, max_length=64)], engine: EngineDep) -> Response:
    """The image with ``word``'s patch activation drawn over it (re-encodes the image with patches)."""
    png = await run_in_threadpool(engine.heatmap_png, doc_id, word)
    return Response(png, media_type="image/png")


@router.get("/{doc_id:path}", response_class=FileResponse, responses=NOT_FOUND)
def image(doc_id: str, engine: EngineDep) -> FileResponse:
    """The original file of an indexed image."""
    path = engine.image_file(doc_id)
    return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")
