"""Error types and the handlers that turn them into JSON 4xx answers (never a bare 500)."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from models.preprocess import ImageError, InputError
from service import metrics
from service.engine import NotFound, UploadTooLarge

log = logging.getLogger(__name__)


class UnsupportedMediaType(InputError):
    """A request body of a content type the route does not take (HTTP 415)."""


def status_of(exc: InputError) -> int:
    """HTTP status of an input error: 413 for size limits, 415 for content types, else 422."""
    if isinstance(exc, UploadTooLarge) or (isinstance(exc, ImageError) and exc.reason.startswith("too large")):
        return 413
    if isinstance(exc, UnsupportedMediaType):
        return 415
    return 422


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> JSONResponse:
        status = status_of(exc)
        metrics.ERRORS.labels(f"input_{status}").inc()
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        metrics.ERRORS.labels("not_found").inc()
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        metrics.ERRORS.labels("internal").inc()
        log.exception("request %s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)
