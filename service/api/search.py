"""``/search`` (text, with word-space edits) and ``/search/image`` (image-to-image)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from service.api.uploads import OPENAPI_IMAGE_BODY, read_image_request
from service.deps import EngineDep
from service.schemas import ErrorResponse, ImageSearchResponse, SearchRequest, SearchResponse

router = APIRouter(prefix="/search", tags=["search"])
ERRORS = {422: {"model": ErrorResponse}}


@router.post("", response_model=SearchResponse, responses=ERRORS)
def search(req: SearchRequest, engine: EngineDep) -> dict:
    """Encode the text, apply boosts/exclusions, search the index and explain every hit."""
    return engine.search_text(req)


@router.post(
    "/image",
    response_model=ImageSearchResponse,
    responses={413: {"model": ErrorResponse}, 415: {"model": ErrorResponse}, **ERRORS},
    openapi_extra=OPENAPI_IMAGE_BODY,
)
async def search_image(request: Request, engine: EngineDep) -> dict:
    """Image-to-image search: the uploaded image's own sparse word vector is the query."""
    data, opts = await read_image_request(request, engine.settings.max_upload_bytes)
    image = await run_in_threadpool(engine.decode_upload, data)
    return await run_in_threadpool(engine.search_image, image, opts.k, opts.exclude, opts.exclude_id)
