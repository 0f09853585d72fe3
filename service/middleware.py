"""Plain ASGI middlewares: request ids, metrics, the request body limit and the rate limit.

Plain ASGI rather than ``@app.middleware("http")`` (Starlette's ``BaseHTTPMiddleware``), which
runs every request through an extra task group and memory streams that cost more than the whole
Lucene search. Each one does a single thing; ``service.app.create_app`` stacks them.
"""
from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping, Sequence

from starlette.exceptions import HTTPException

from service import metrics
from service.errors import REQUEST_ID_HEADER, error_body
from service.limits import RateLimiter, retry_after

_GOOD_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContext:
    """Gives each request an id (the client's ``X-Request-ID`` when it is a plain token, else a
    new one), keeps it in ``scope["state"]["request_id"]`` and returns it in ``X-Request-ID``."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers", ())).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        rid = given if _GOOD_ID.match(given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), (REQUEST_ID_HEADER.encode(), rid.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_id)


class RequestMetrics:
    """Counts requests by route and status, times them, and adds ``Server-Timing: app;dur=<ms>``.

    The time is measured up to the response start (headers), i.e. routing, validation, the
    handler and serialisation of the body.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def send_timed(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                elapsed = time.perf_counter() - start
                headers = list(message.get("headers", ()))
                headers.append((b"server-timing", f"app;dur={elapsed * 1000:.3f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.REQUESTS.labels(route, str(status)).inc()
            metrics.HTTP_SECONDS.labels(route, scope.get("method", "")).observe(time.perf_counter() - start)


class BodyTooLarge(HTTPException):
    """A request body over its route's limit (HTTP 413), raised while the body streams in. The
    answer closes the connection: the rest of the body is not even received."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body is over {limit} bytes, the limit of this route", headers={"Connection": "close"})


class BodyLimit:
    """Refuses a request body over ``limits[path]`` (else ``default``) bytes with 413.

    A declared ``Content-Length`` over the limit is answered before the body is read; any other
    body (chunked included) is counted as it streams in and stops being read at the limit, so an
    over-limit body is never held in memory.
    """

    def __init__(self, app, default: int, limits: Mapping[str, int]):
        self.app, self.default, self.limits = app, default, dict(limits)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limits.get(scope["path"], self.default)
        declared = dict(scope.get("headers", ())).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            metrics.ERRORS.labels("input_413").inc()
            return await _send_error(send, scope, 413, BodyTooLarge(limit).detail, [(b"connection", b"close")])
        received = 0

        async def receive_limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, receive_limited, send)


class RateLimit:
    """At most ``limiter``'s rate per client address; over it, 429 with ``Retry-After``.

    Liveness, readiness and metrics (``exempt``) are never limited: probes must not be refused.
    """

    def __init__(self, app, limiter: RateLimiter, exempt: frozenset[str] = frozenset({"/healthz", "/readyz", "/metrics"})):
        self.app, self.limiter, self.exempt = app, limiter, exempt

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in self.exempt:
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown",))[0]
        wait = self.limiter.wait_s(client)
        if wait > 0:
            metrics.ERRORS.labels("rate_limited").inc()
            detail = f"too many requests from {client}: the limit is {self.limiter.rate:g} a second"
            return await _send_error(send, scope, 429, detail, [(b"retry-after", retry_after(wait).encode())])
        await self.app(scope, receive, send)


async def _send_error(send, scope, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """Answer with an ``ErrorResponse`` from a middleware (before the application saw the request)."""
    body = error_body(scope, detail)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
