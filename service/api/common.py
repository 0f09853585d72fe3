"""What the routes share: their documented error answers."""
from __future__ import annotations

from service.schemas import ErrorResponse

RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}

_WHY = {
    400: "the body cannot be parsed (JSON that is not UTF-8 or is nested too deeply, a multipart body without a boundary, ...)",
    401: "no or a wrong admin token",
    403: "admin routes are disabled (no admin token is configured)",
    404: "no such indexed image",
    413: "the body, the file, the image's pixel count or decoded size, or the batch is over a limit (the detail names it)",
    415: "a content type the route does not take",
    422: "an invalid request: the detail names the field or the limit; `errors` lists each invalid field",
    429: "too many requests from this client (only when a rate limit is configured)",
    500: "internal error: the body carries only the request id, the server log has the rest",
    503: "busy: the queue for this kind of work is full, or the service is still starting",
}


def errors(*statuses: int, rate_limited: bool = True) -> dict:
    """OpenAPI ``responses`` for these statuses plus 500 (any route) and 429 (a rate-limited route)."""
    out = {}
    for status in sorted({*statuses, 500, *([429] if rate_limited else [])}):
        doc: dict = {"model": ErrorResponse, "description": _WHY[status]}
        if status in (429, 503):
            doc["headers"] = RETRY_AFTER
        out[status] = doc
    return out
