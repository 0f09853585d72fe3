"""``/search`` (text, with word-space edits) and ``/search/image`` (image-to-image)."""
from __future__ import annotations

from typing import BinaryIO

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from service.api.common import errors, json_bytes
from service.api.uploads import OPENAPI_IMAGE_BODY, image_request
from service.deps import EngineDep, ImageWorkDep
from service.engine import Engine
from service.schemas import ImageOptions, ImageSearchResponse, SearchRequest, SearchResponse

router = APIRouter(prefix="/search", tags=["search"])


@router.post("", response_model=SearchResponse, responses=errors(400, 413, 422, 503))
async def search(req: SearchRequest, engine: EngineDep) -> Response:
    """Encode the text, apply boosts/exclusions, search the index and explain every hit."""
    # One hop to the thread pool for the whole request (encode, search, explain and JSON). A sync
    # route would cost three: the handler, then FastAPI's re-validation of the returned dict
    # through SearchResponse and its serialisation. The engine builds exactly that shape
    # (tests/service check it against the model), so it is written out directly.
    body = await run_in_threadpool(_search_json, engine, req)
    return Response(body, media_type="application/json")


def _search_json(engine: Engine, req: SearchRequest) -> bytes:
    return json_bytes(engine.search_text(req))


@router.post(
    "/image",
    response_model=ImageSearchResponse,
    responses=errors(400, 413, 415, 422, 503),
    openapi_extra=OPENAPI_IMAGE_BODY,
)
async def search_image(request: Request, engine: EngineDep, work: ImageWorkDep) -> Response:
    """Image-to-image search: the uploaded image's own sparse word vector is the query."""
    async with work.admit(), image_request(request) as (source, opts):
        return Response(await work.run(_search_image, engine, source, opts), media_type="application/json")


def _search_image(engine: Engine, source: bytes | BinaryIO, opts: ImageOptions) -> bytes:
    image, _ = engine.decode_upload(source)
    return json_bytes(engine.search_image(image, opts.k, opts.exclude, opts.exclude_id))
