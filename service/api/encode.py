"""``/encode``: an image's sparse word vector and per-word heatmaps."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from service.api.uploads import OPENAPI_IMAGE_BODY, read_image_request
from service.deps import EngineDep
from service.schemas import EncodeResponse, ErrorResponse

router = APIRouter(prefix="/encode", tags=["encode"])


@router.post(
    "",
    response_model=EncodeResponse,
    responses={413: {"model": ErrorResponse}, 415: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    openapi_extra=OPENAPI_IMAGE_BODY,
)
async def encode(request: Request, engine: EngineDep) -> dict:
    """Encode an uploaded image (multipart ``file`` or JSON ``image_base64``)."""
    data, opts = await read_image_request(request, engine.settings.max_upload_bytes)
    image = await run_in_threadpool(engine.decode_upload, data)
    return await run_in_threadpool(
        engine.encode_image, image, opts.heatmaps, opts.heatmap_top_n, opts.heatmap_format, opts.top_n
    )
