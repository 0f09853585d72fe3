"""``/search`` (text, with word-space edits) and ``/search/image`` (image-to-image)."""
from __future__ import annotations

from typing import BinaryIO

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from service.api import convert
from service.api.common import errors
from service.api.uploads import OPENAPI_IMAGE_BODY, image_request
from service.deps import EngineDep, ImageWorkDep
from service.engine import Engine
from service.schemas import ImageOptions, ImageSearchResponse, SearchRequest, SearchResponse

router = APIRouter(prefix="/search", tags=["search"])


@router.post("", response_model=SearchResponse, responses=errors(400, 413, 422, 503))
async def search(req: SearchRequest, engine: EngineDep) -> SearchResponse:
    """Encode the text, apply the word-space edits, search the index and explain every hit.

    The query takes Lucene's syntax: `+word` a hit must have, `-word` none may have, `word^2`
    weighs double; plain words count softly.
    """
    # one hop to the thread pool for the engine's work and the conversion to the response model
    return await run_in_threadpool(_search, engine, req)


def _search(engine: Engine, req: SearchRequest) -> SearchResponse:
    return convert.search_response(engine.search.search_text(req.query, req.k, req.boost, req.exclude, req.require, req.path))


@router.post(
    "/image",
    response_model=ImageSearchResponse,
    responses=errors(400, 413, 415, 422, 503),
    openapi_extra=OPENAPI_IMAGE_BODY,
)
async def search_image(request: Request, engine: EngineDep, work: ImageWorkDep) -> ImageSearchResponse:
    """Image-to-image search: the uploaded image's own sparse word vector is the query."""
    async with work.admit(), image_request(request) as (source, opts):
        return await work.run(_search_image, engine, source, opts)


def _search_image(engine: Engine, source: bytes | BinaryIO, opts: ImageOptions) -> ImageSearchResponse:
    image, _ = engine.images.decode_upload(source)
    return convert.image_search_response(engine.search.search_image(image, opts.k, opts.exclude, opts.exclude_id))
