"""``/search`` (text, with word-space edits) and ``/search/image`` (image-to-image)."""
from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from service.api.uploads import OPENAPI_IMAGE_BODY, read_image_request
from service.deps import EngineDep
from service.schemas import ErrorResponse, ImageSearchResponse, SearchRequest, SearchResponse

router = APIRouter(prefix="/search", tags=["search"])
ERRORS = {422: {"model": ErrorResponse}}


@router.post("", response_model=SearchResponse, responses=ERRORS)
async def search(req: SearchRequest, engine: EngineDep) -> Response:
    """Encode the text, apply boosts/exclusions, search the index and explain every hit."""
    # One hop to the thread pool for the whole request (encode, search, explain and JSON). A sync
    # route would cost three: the handler, then FastAPI's re-validation of the returned dict
    # through SearchResponse and its serialisation. The engine builds exactly that shape
    # (tests/service check it against the model), so it is written out directly.
    body = await run_in_threadpool(_search_json, engine, req)
    return Response(body, media_type="application/json")


def _search_json(engine, req: SearchRequest) -> bytes:
    return json.dumps(engine.search_text(req), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


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
