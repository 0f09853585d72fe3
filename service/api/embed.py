"""``/embed_sparse``: texts and images -> the sparse vectors search and the index use.

The text route speaks TEI's ``/embed_sparse`` (``{"inputs": ...}`` -> ``[[{index, value}]]``);
``format: "words"`` answers ``{word: weight}`` maps instead, the form Elasticsearch's
``sparse_vector`` and OpenSearch's ``rank_features`` take. Both run the same encoders, top-k and
normalisation as ``/search`` (texts) and the indexer (images): ``quantized`` gives the integer
impacts Lucene stores.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import BinaryIO

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from service.api import convert
from service.api.common import errors
from service.api.uploads import image_batch_request, multipart_body
from service.deps import EngineDep, ImageWorkDep
from service.engine import Engine
from service.exceptions import InvalidFields
from service.schemas import (
    EMBED_FORMAT_HELP,
    QUANTIZED_HELP,
    TEI_EXAMPLE,
    WORDS_EXAMPLE,
    EmbedImageOptions,
    EmbedSparseRequest,
    EmbedSparseResponse,
)

router = APIRouter(prefix="/embed_sparse", tags=["embed"])

_EXAMPLES = {"application/json": {"examples": {"tei": {"summary": "format: tei (the default)", "value": TEI_EXAMPLE},
                                               "words": {"summary": "format: words", "value": WORDS_EXAMPLE}}}}  # fmt: skip

OPENAPI_IMAGES_BODY = multipart_body(
    {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"},
                 "description": "one `file` part per image, in order (the service's batch limit applies)"},
        "format": {"type": "string", "enum": ["tei", "words"], "description": EMBED_FORMAT_HELP},
        "quantized": {"type": "boolean", "description": QUANTIZED_HELP},
    },
    encoding={"file": {"contentType": "image/*"}},
)  # fmt: skip


@router.post("", response_model=EmbedSparseResponse, responses={**errors(400, 413, 422, 503), 200: {"content": _EXAMPLES}})
async def embed_sparse(req: EmbedSparseRequest, engine: EngineDep, response: Response) -> EmbedSparseResponse:
    """Sparse vectors of a batch of texts, as text search queries the index with them.

    One vector per input, in order, largest weight first. Too many texts answer 413 with the limit;
    a text longer than the text encoder reads answers 422 naming the words left over, unless
    ``truncate`` asks for its first tokens only; a text that gives no word a weight answers 422
    naming its words and why. The words of each text that gave no weight of their own (a word
    without a row of the query table in table mode, a word unknown to the tokenizer...) are in the
    ``X-Left-Out`` header: a JSON list per input of ``[word, why]`` (at most 50 each, ASCII-escaped).
    """
    vectors, left = await run_in_threadpool(_embed_texts, engine, req)
    response.headers["X-Left-Out"] = json.dumps([[[convert.cut(w, convert.ECHO_CHARS), why] for w, why in words[: convert.RESPONSE_WORDS]]
                                                 for words in left])  # fmt: skip
    return vectors


def _embed_texts(engine: Engine, req: EmbedSparseRequest) -> tuple[EmbedSparseResponse, list]:
    texts = [req.inputs] if isinstance(req.inputs, str) else req.inputs
    vectors = convert.embed_response(engine.search.embed_texts(texts, req.quantized, req.truncate), req.format, engine.search.dimension)
    return vectors, engine.search.embed_left_out(texts)


@router.post(
    "/images",
    response_model=EmbedSparseResponse,
    responses={**errors(400, 413, 415, 422, 503), 200: {"content": _EXAMPLES}},
    openapi_extra=OPENAPI_IMAGES_BODY,
)
async def embed_sparse_images(request: Request, engine: EngineDep, work: ImageWorkDep) -> EmbedSparseResponse:
    """Sparse vectors of a batch of uploaded images (multipart, one ``file`` part each), as the indexer computes them.

    Waits in the image queue like ``/encode``; too many images answer 413 with the limit.
    """
    async with work.admit(), image_batch_request(request, engine.settings.max_embed_images) as (files, fields):
        try:
            opts = EmbedImageOptions(**fields)
        except ValidationError as exc:
            raise InvalidFields(exc.errors()) from exc
        return await work.run(_embed_images, engine, files, opts)


def _embed_images(engine: Engine, files: Sequence[tuple[str, BinaryIO]], opts: EmbedImageOptions) -> EmbedSparseResponse:
    return convert.embed_response(engine.images.embed_images(files, opts.quantized), opts.format, engine.search.dimension)
