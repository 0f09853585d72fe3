"""Reading an image from a request: a multipart file or a JSON body with base64."""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, BinaryIO

from fastapi import HTTPException, Request
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from service.echo import echo, echo_words
from service.errors import JSON_NOT_TEXT, JSON_TOO_DEEP
from service.exceptions import InputError, InvalidFields, UnsupportedMediaType
from service.schemas import ImageJSONRequest, ImageOptions

IMAGE_TYPES_OK = ("image/", "application/octet-stream")


def multipart_body(properties: dict, encoding: dict | None = None, other_types: dict | None = None) -> dict:
    """``openapi_extra`` for a route that parses its own body: a required ``multipart/form-data``
    form with a required ``file`` and these ``properties`` (and per-part ``encoding``);
    ``other_types`` adds other media types the route accepts."""
    form = {"schema": {"type": "object", "required": ["file"], "properties": properties}}
    if encoding:
        form["encoding"] = encoding
    return {"requestBody": {"required": True, "content": {"multipart/form-data": form, **(other_types or {})}}}


OPENAPI_IMAGE_BODY = multipart_body(
    {
        "file": {"type": "string", "format": "binary", "description": "the image file"},
        "heatmaps": {"type": "string", "description": "comma-separated words"},
        "heatmap_top_n": {"type": "integer", "minimum": 0, "maximum": 32},
        "heatmap_format": {"type": "string", "enum": ["png", "array"]},
        "top_n": {"type": "integer", "minimum": 1, "maximum": 4096},
        "k": {"type": "integer"},
        "exclude": {"type": "string", "description": "comma-separated words"},
        "exclude_id": {"type": "string"},
    },
    other_types={"application/json": {"schema": {"$ref": "#/components/schemas/ImageJSONRequest"}}},
)


@asynccontextmanager
async def image_request(request: Request) -> AsyncIterator[tuple[bytes | BinaryIO, ImageOptions]]:
    """The uploaded file (bytes, or the multipart part's spooled file, open while inside) and the
    options sent with it. The body's size limit is :class:`service.middleware.BodyLimit`'s.

    Raises
    ------
    UnsupportedMediaType
        for a body that is neither ``multipart/form-data`` nor ``application/json``, or a file part
        that is not an image.
    InputError
        for a missing file part, bad base64 or invalid options.
    HTTPException
        (400) for a body that cannot be parsed: broken multipart, JSON that is not UTF-8 text or
        is nested too deeply to read.
    """
    ctype = _content_type(request)
    if ctype == "multipart/form-data":
        form = await parse_form(request, max_files=1, max_fields=20)
        try:
            yield _from_form(form)
        finally:
            await form.close()
    elif ctype == "application/json":
        yield _from_json(await request.body())
    else:
        raise UnsupportedMediaType(f"unsupported content type {_shown(ctype)}: send multipart/form-data or application/json")


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _shown(ctype: str) -> str:
    return echo(ctype) if ctype else "(none)"


async def parse_form(request: Request, max_files: int, max_fields: int) -> FormData:
    """The request's multipart form, read whole (files spooled): any failure to parse it is one
    400, whatever the parser raised. The body limit's 413 and a client that went away pass."""
    try:
        return await request.form(max_files=max_files, max_fields=max_fields)
    except (StarletteHTTPException, ClientDisconnect):  # FastAPI's HTTPException is a subclass
        raise
    except Exception as exc:  # the parser's own errors are 400s already (Starlette's); anything else is one too
        raise HTTPException(400, "the multipart body cannot be parsed") from exc


def _from_form(form) -> tuple[BinaryIO, ImageOptions]:
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise InputError("multipart body needs a 'file' part with the image", "file")
    part_type = (upload.content_type or "application/octet-stream").lower()
    if not part_type.startswith(IMAGE_TYPES_OK):
        raise UnsupportedMediaType(f"file part has content type {echo(part_type)}; expected an image")
    names = [k for k, _ in form.multi_items()]
    if repeated := sorted({k for k in names if names.count(k) > 1}):
        raise InputError(f"form fields given more than once: {echo_words(repeated)}")
    fields: dict[str, Any] = {k: v for k, v in form.items() if k != "file" and isinstance(v, str) and v != ""}
    for listed in ("heatmaps", "exclude"):
        if listed in fields:
            fields[listed] = [w.strip() for w in fields[listed].split(",") if w.strip()]
    try:
        return upload.file, ImageOptions(**fields)
    except ValidationError as exc:
        raise InvalidFields(exc.errors()) from exc


def _from_json(body: bytes) -> tuple[bytes, ImageOptions]:
    """The image and options of a JSON body. What cannot be read as JSON at all is a 400 (as
    FastAPI answers for the routes whose body it parses), JSON that is not the request a 422."""
    try:
        data = json.loads(body)
    except UnicodeDecodeError as exc:
        raise HTTPException(400, JSON_NOT_TEXT) from exc
    except RecursionError as exc:  # Python's parser recurses once per nesting level
        raise HTTPException(400, JSON_TOO_DEEP) from exc
    except ValueError as exc:
        raise InputError(f"body is not valid JSON: {exc}") from exc
    try:
        req = ImageJSONRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidFields(exc.errors()) from exc
    payload = req.image_base64
    if payload.startswith("data:"):  # a data: URL: the base64 follows the first comma
        _, comma, payload = payload.partition(",")
        if not comma:
            raise InputError("image_base64 is a data: URL without a comma before the base64", "image_base64")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"image_base64 is not valid base64 ({exc})", "image_base64") from exc
    return data, ImageOptions(**req.model_dump(exclude={"image_base64"}))

@asynccontextmanager
async def image_batch_request(request: Request, limit: int) -> AsyncIterator[tuple[list[tuple[str, BinaryIO]], dict]]:
    """The ``file`` parts of a multipart body as ``(filename, open file)`` pairs, in order, and its
    other form fields. Files stay open while inside. More than ``limit`` files: the engine's batch
    check answers 413; far more (ten times) are refused by the parser itself (400).

    Raises
    ------
    UnsupportedMediaType
        for a body that is not ``multipart/form-data``, or a file part that is not an image.
    """
    ctype = _content_type(request)
    if ctype != "multipart/form-data":
        raise UnsupportedMediaType(f"unsupported content type {_shown(ctype)}: send multipart/form-data with `file` parts")
    form = await parse_form(request, max_files=10 * limit, max_fields=20)
    try:
        files: list[tuple[str, BinaryIO]] = []
        for key, value in form.multi_items():
            if key != "file":
                continue
            if isinstance(value, str):
                raise InputError("each 'file' part must be a file (an image), not a text field", "file")
            part_type = (value.content_type or "application/octet-stream").lower()
            if not part_type.startswith(IMAGE_TYPES_OK):
                raise UnsupportedMediaType(f"file {len(files)} ({echo(value.filename or '')}) has content type {echo(part_type)}; "
                                           "expected an image")  # fmt: skip
            files.append((value.filename or f"file {len(files)}", value.file))
        names = [k for k, _ in form.multi_items() if k != "file"]
        if repeated := sorted({k for k in names if names.count(k) > 1}):
            raise InputError(f"form fields given more than once: {echo_words(repeated)}")
        yield files, {k: v for k, v in form.items() if k != "file" and isinstance(v, str) and v != ""}
    finally:
        await form.close()
