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
from service.errors import UnsupportedMediaType
from service.schemas import ImageJSONRequest, ImageOptions

IMAGE_TYPES_OK = ("image/", "application/octet-stream")

OPENAPI_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "the image file"},
                        "heatmaps": {"type": "string", "description": "comma-separated words"},
                        "heatmap_top_n": {"type": "integer", "minimum": 0, "maximum": 32},
                        "heatmap_format": {"type": "string", "enum": ["png", "array"]},
                        "top_n": {"type": "integer", "minimum": 1, "maximum": 4096},
                        "k": {"type": "integer"},
                        "exclude": {"type": "string", "description": "comma-separated words"},
                        "exclude_id": {"type": "string"},
                    },
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/ImageJSONRequest"}},
        },
    }
}


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
        raise InputError("multipart body needs a 'file' part with the image")
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
        raise InputError(f"bad form fields: {_first_error(exc)}") from exc


def _from_json(body: bytes) -> tuple[bytes, ImageOptions]:
    try:
        req = ImageJSONRequest.model_validate(json.loads(body))
    except ValidationError as exc:
        raise InputError(f"bad JSON body: {_first_error(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise HTTPException(400, "the JSON body is not UTF-8 (or UTF-16/32) text") from exc
    except ValueError as exc:
        raise InputError(f"body is not valid JSON: {exc}") from exc
    payload = req.image_base64.split(",", 1)[1] if req.image_base64.startswith("data:") else req.image_base64
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"image_base64 is not valid base64 ({exc})") from exc
    return data, ImageOptions(**req.model_dump(exclude={"image_base64"}))


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
