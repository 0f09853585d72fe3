"""Every error answer in one shape (``ErrorResponse``): client errors are 4xx with a message that
names what was wrong; a 500 carries only the request id (the log has the rest).

The status of each error class is :data:`service.exceptions.HTTP_STATUS` (the one table). Every
422 lists its errors as ``[{loc, msg, type}]``, whoever found them: FastAPI's request validation,
a body a route parses itself (:class:`~service.exceptions.InvalidFields`), or a rule the engine
checks (an ``InputError``, whose ``field`` gives the ``loc``).

Bodies are ASCII JSON, so text a client sent (an unpaired surrogate, say) is escaped rather than
failing to encode. They quote at most a short prefix of what the client sent (``service.echo``):
a detail is at most ``MAX_DETAIL_CHARS`` characters, a field error's location parts and message
are cut the same way, and at most ``MAX_ERRORS`` field errors are listed (the detail counts them
all), whatever the request held.

A 500 closes the connection (``Connection: close``): the server also drops it after logging the
failure, and a client told so opens a new one instead of sending its next request into a closing
socket.
"""
from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import metrics
from service.echo import MAX_DETAIL_CHARS, cut, field_errors, summary
from service.exceptions import Busy, InputError, InvalidFields, NotFound, status_of

log = logging.getLogger(__name__)
REQUEST_ID_HEADER = "x-request-id"
MAX_ERRORS = 20  # field errors listed in one answer (the detail counts them all)
JSON_TOO_DEEP = "the JSON body is nested too deeply to parse"
JSON_NOT_TEXT = "the JSON body is not UTF-8 (or UTF-16/32) text"


def request_id(scope) -> str:
    """The id :class:`service.middleware.RequestContext` gave this request (``-`` before it ran)."""
    return (scope.get("state") or {}).get("request_id", "-")


def error_body(scope, detail: str, errors: list[dict] | None = None) -> bytes:
    """An ``ErrorResponse`` as ASCII JSON bytes."""
    body: dict = {"detail": cut(detail, MAX_DETAIL_CHARS), "request_id": request_id(scope)}
    if errors is not None:
        body["errors"] = errors[:MAX_ERRORS]
    return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode()


def error_response(request: Request, status: int, detail: str, errors: list[dict] | None = None, headers=None) -> Response:
    return Response(error_body(request.scope, detail, errors), status_code=status, headers=headers, media_type="application/json")


def validation_errors(exc: RequestValidationError) -> list[dict]:
    """:func:`field_errors` of FastAPI's request validation (its locations start at body/query/path)."""
    return field_errors(exc.errors())


def input_errors(request: Request, exc: InputError) -> list[dict]:
    """The ``errors`` list of a 422 for an input error: its own list, or one entry located at its
    field (in the body of a request that has one, else in the query string)."""
    if isinstance(exc, InvalidFields):
        return exc.errors
    field = getattr(exc, "field", None)
    where = "body" if request.method in ("POST", "PUT", "PATCH") else "query"
    return [{"loc": [where, field] if field else [], "msg": cut(str(exc), MAX_DETAIL_CHARS), "type": "value_error"}]


def _parse_failure(exc: StarletteHTTPException) -> str | None:
    """What was wrong with a body FastAPI could not parse (its 400 says only that it could not),
    in the words the routes that parse their own JSON use."""
    if exc.status_code != 400:
        return None
    if isinstance(exc.__cause__, RecursionError):  # Python's JSON parser recurses once per level
        return JSON_TOO_DEEP
    if isinstance(exc.__cause__, UnicodeDecodeError):
        return JSON_NOT_TEXT
    return None


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> Response:
        status = status_of(exc)
        metrics.ERRORS.labels(f"input_{status}").inc()
        return error_response(request, status, str(exc), input_errors(request, exc) if status == 422 else None)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        metrics.ERRORS.labels("not_found").inc()
        return error_response(request, status_of(exc), str(exc))

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> Response:
        return error_response(request, status_of(exc), str(exc), headers={"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        metrics.ERRORS.labels("input_422").inc()
        errors = validation_errors(exc)
        return error_response(request, 422, summary(errors), errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code < 500:
            metrics.ERRORS.labels(f"input_{exc.status_code}").inc()
        return error_response(request, exc.status_code, _parse_failure(exc) or str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        metrics.ERRORS.labels("internal").inc()
        rid = request_id(request.scope)
        log.error("request %s: %s %s failed", rid, request.method, request.url.path, exc_info=exc)
        return error_response(request, 500, "internal error; the server log has the details under this request id",
                              headers={REQUEST_ID_HEADER: rid, "Connection": "close"})  # fmt: skip
