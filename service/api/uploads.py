"""Reading an image from a request: a multipart file or a JSON body with base64."""
from __future__ import annotations

import base64
import binascii
import json

from fastapi import Request
from pydantic import ValidationError

from models.preprocess import InputError
from service.engine import UploadTooLarge
from service.errors import UnsupportedMediaType
from service.schemas import ImageJSONRequest, ImageOptions

FORM_SLACK_BYTES = 64 * 1024
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
                        "file": {"type": "string", "format": "binary"},
                        "heatmaps": {"type": "string", "description": "comma-separated words"},
                        "heatmap_top_n": {"type": "integer"},
                        "heatmap_format": {"type": "string", "enum": ["png", "array"]},
                        "top_n": {"type": "integer"},
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


async def read_image_request(request: Request, max_bytes: int) -> tuple[bytes, ImageOptions]:
    """The uploaded file's bytes and the options sent with it.

    Raises
    ------
    UnsupportedMediaType
        for a body that is neither ``multipart/form-data`` nor ``application/json``, or a file part
        that is not an image.
    UploadTooLarge
        when the body is over ``max_bytes`` (checked from Content-Length before reading).
    """
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes * 4 // 3 + FORM_SLACK_BYTES:
        raise UploadTooLarge(f"request body is {length} bytes; the upload limit is {max_bytes}")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        return await _from_form(request)
    if ctype == "application/json":
        return _from_json(await request.body())
    raise UnsupportedMediaType(f"unsupported content type {ctype or '(none)'!r}: send multipart/form-data or application/json")


async def _from_form(request: Request) -> tuple[bytes, ImageOptions]:
    form = await request.form(max_files=1, max_fields=20)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise InputError("multipart body needs a 'file' part with the image")
    part_type = (upload.content_type or "application/octet-stream").lower()
    if not part_type.startswith(IMAGE_TYPES_OK):
        raise UnsupportedMediaType(f"file part has content type {part_type!r}; expected an image")
    data = await upload.read()
    fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str) and v != ""}
    for listed in ("heatmaps", "exclude"):
        if listed in fields:
            fields[listed] = [w.strip() for w in fields[listed].split(",") if w.strip()]
    try:
        return data, ImageOptions(**fields)
    except ValidationError as exc:
        raise InputError(f"bad form fields: {_first_error(exc)}") from exc


def _from_json(body: bytes) -> tuple[bytes, ImageOptions]:
    try:
        req = ImageJSONRequest(**json.loads(body))
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ValidationError):
            raise InputError(f"bad JSON body: {_first_error(exc)}") from exc
        raise InputError(f"body is not a JSON object: {exc}") from exc
    payload = req.image_base64.split(",", 1)[1] if req.image_base64.startswith("data:") else req.image_base64
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"image_base64 is not valid base64 ({exc})") from exc
    return data, ImageOptions(**req.model_dump(exclude={"image_base64"}))


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
