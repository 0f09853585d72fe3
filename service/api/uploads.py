"""Reading an image from a request: a multipart file or a JSON body with base64."""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import BinaryIO

from fastapi import HTTPException, Request
from pydantic import ValidationError

from models.preprocess import InputError
from service.errors import InvalidFields, UnsupportedMediaType
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
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        async with request.form(max_files=1, max_fields=20) as form:
            yield _from_form(form)
    elif ctype == "application/json":
        yield _from_json(await request.body())
    else:
        raise UnsupportedMediaType(f"unsupported content type {ctype or '(none)'!r}: send multipart/form-data or application/json")


def _from_form(form) -> tuple[BinaryIO, ImageOptions]:
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise InputError("multipart body needs a 'file' part with the image", "file")
    part_type = (upload.content_type or "application/octet-stream").lower()
    if not part_type.startswith(IMAGE_TYPES_OK):
        raise UnsupportedMediaType(f"file part has content type {part_type!r}; expected an image")
    names = [k for k, _ in form.multi_items()]
    if repeated := sorted({k for k in names if names.count(k) > 1}):
        raise InputError(f"form fields given more than once: {', '.join(repeated)}")
    fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str) and v != ""}
    for listed in ("heatmaps", "exclude"):
        if listed in fields:
            fields[listed] = [w.strip() for w in fields[listed].split(",") if w.strip()]
    try:
        return upload.file, ImageOptions(**fields)
    except ValidationError as exc:
        raise InvalidFields(exc.errors()) from exc


def _from_json(body: bytes) -> tuple[bytes, ImageOptions]:
    try:
        req = ImageJSONRequest.model_validate(json.loads(body))
    except ValidationError as exc:
        raise InvalidFields(exc.errors()) from exc
    except UnicodeDecodeError as exc:
        raise HTTPException(400, "the JSON body is not UTF-8 (or UTF-16/32) text") from exc
    except ValueError as exc:
        raise InputError(f"body is not valid JSON: {exc}") from exc
    payload = req.image_base64.split(",", 1)[1] if req.image_base64.startswith("data:") else req.image_base64
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
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise UnsupportedMediaType(f"unsupported content type {ctype or '(none)'!r}: send multipart/form-data with `file` parts")
    async with request.form(max_files=10 * limit, max_fields=20) as form:
        files = []
        for key, value in form.multi_items():
            if key != "file":
                continue
            if isinstance(value, str):
                raise InputError("each 'file' part must be a file (an image), not a text field", "file")
            part_type = (value.content_type or "application/octet-stream").lower()
            if not part_type.startswith(IMAGE_TYPES_OK):
                raise UnsupportedMediaType(f"file {len(files)} ({value.filename!r}) has content type {part_type!r}; expected an image")
            files.append((value.filename or f"file {len(files)}", value.file))
        names = [k for k, _ in form.multi_items() if k != "file"]
        if repeated := sorted({k for k in names if names.count(k) > 1}):
            raise InputError(f"form fields given more than once: {', '.join(repeated)}")
        yield files, {k: v for k, v in form.items() if k != "file" and isinstance(v, str) and v != ""}
