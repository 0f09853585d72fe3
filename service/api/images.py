"""``/images/{id}``: indexed images only, looked up by id in the index (never a path from the URL).

Ids are opaque and may contain slashes; clients percent-encode them (``quote(id, safe="")``) and
the ``path`` converter takes them back whole. Thumbnails and heatmaps decode the image, so they
wait in the image queue like uploads do.
"""
from __future__ import annotations

import mimetypes
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from service.api.common import errors
from service.deps import EngineDep, ImageWorkDep

router = APIRouter(prefix="/images", tags=["images"])


@router.get("/{doc_id:path}/thumb", response_class=Response,
            responses={**errors(404, 413, 422, 503), 200: {"content": {"image/jpeg": {}}}})  # fmt: skip
async def thumbnail(doc_id: str, engine: EngineDep, work: ImageWorkDep) -> Response:
    """A JPEG thumbnail of an indexed image."""
    async with work.admit():
        jpeg = await work.run(engine.images.thumbnail, doc_id)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


@router.get("/{doc_id:path}/heatmap", response_class=Response,
            responses={**errors(404, 413, 422, 503), 200: {"content": {"image/png": {}}}})  # fmt: skip
async def word_heatmap(
    doc_id: str, word: Annotated[str, Query(min_length=1, max_length=64)], engine: EngineDep, work: ImageWorkDep
) -> Response:
    """The image with ``word``'s patch activation drawn over it (the patch grid is cached; browsers may keep the PNG)."""
    async with work.admit():
        png = await work.run(engine.images.heatmap_png, doc_id, word)
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


@router.get("/{doc_id:path}", response_class=FileResponse,
            responses={**errors(404, 422), 200: {"content": {"image/*": {}}, "description": "the indexed file"}})  # fmt: skip
def image(doc_id: str, engine: EngineDep) -> FileResponse:
    """The original file of an indexed image."""
    path = engine.images.image_file(doc_id)
    return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")
