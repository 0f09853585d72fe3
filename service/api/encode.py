"""``/encode``: an image's sparse word vector and per-word heatmaps."""
from __future__ import annotations

from typing import BinaryIO

from fastapi import APIRouter, Request

from service.api import convert
from service.api.common import errors
from service.api.uploads import OPENAPI_IMAGE_BODY, image_request
from service.deps import EngineDep, ImageWorkDep
from service.engine import Engine
from service.schemas import EncodeResponse, ImageOptions

router = APIRouter(prefix="/encode", tags=["encode"])


@router.post(
    "",
    response_model=EncodeResponse,
    response_model_exclude_unset=True,  # a heatmap carries png or grid, and no peak for a word outside the vocabulary
    responses=errors(400, 413, 415, 422, 503),
    openapi_extra=OPENAPI_IMAGE_BODY,
)
async def encode(request: Request, engine: EngineDep, work: ImageWorkDep) -> EncodeResponse:
    """Encode an uploaded image (multipart ``file`` or JSON ``image_base64``).

    Waits in the image queue (503 when it is full); decoding, encoding, heatmaps and the
    response model are one job on an image worker.
    """
    async with work.admit(), image_request(request) as (source, opts):
        return await work.run(_encode, engine, source, opts)


def _encode(engine: Engine, source: bytes | BinaryIO, opts: ImageOptions) -> EncodeResponse:
    engine.images.check_heatmaps(opts.heatmaps, opts.heatmap_top_n)  # before any decoding
    image, size = engine.images.decode_upload(source)
    result = engine.images.encode_image(image, size, opts.heatmaps, opts.heatmap_top_n, opts.heatmap_format, opts.top_n)
    return convert.encode_response(result)

