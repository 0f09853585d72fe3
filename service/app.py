"""The FastAPI application: routers, error handlers, start-up checks and the index reload loop."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from service import errors, metrics
from service.api import admin, encode, health, images, search
from service.config import Settings, get_settings
from service.engine import Engine

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def _reload_loop(engine: Engine, interval_s: float, stop: threading.Event) -> None:
    """Poll for a newly published generation every ``interval_s`` seconds until ``stop``."""
    while not stop.wait(interval_s):
        try:
            switched, detail = engine.reload()
            if switched:
                log.info("index reload: %s", detail)
        except Exception:  # the loop must outlive any single failure
            log.exception("index reload poll failed")


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings: Settings = app.state.settings
    owned = app.state.engine is None
    if owned:
        app.state.engine = Engine.load(settings)  # StartupError: uvicorn exits with the message
    stop = threading.Event()
    poller = None
    if settings.reload_interval_s > 0:
        poller = threading.Thread(
            target=_reload_loop, args=(app.state.engine, settings.reload_interval_s, stop), daemon=True, name="index-reload"
        )
        poller.start()
    try:
        yield
    finally:
        stop.set()
        if poller is not None:
            poller.join(timeout=5)
        if owned:
            app.state.engine.close()
            app.state.engine = None


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the application.

    Parameters
    ----------
    settings : overrides ``get_settings()`` (also installed as the dependency override).
    engine : an already-loaded engine (otherwise loaded at start-up from ``settings``).
    """
    settings = settings or get_settings()
    app = FastAPI(
        title="LexVLA search",
        summary="Sparse lexical text-to-image retrieval; every match explained by the words it shares.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings, app.state.engine = settings, engine
    app.dependency_overrides[get_settings] = lambda: settings
    errors.install(app)
    for module in (search, encode, images, health, admin):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.add_middleware(RequestMetrics)
    return app


class RequestMetrics:
    """Counts requests by route and status, times them, and adds ``Server-Timing: app;dur=<ms>``.

    A plain ASGI middleware: ``@app.middleware("http")`` (Starlette's ``BaseHTTPMiddleware``)
    runs every request through an extra task group and memory streams, which cost more than the
    whole Lucene search. The time is measured up to the response start (headers), i.e. routing,
    validation, the handler and serialisation of the body.
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
            route = scope.get("route")
            metrics.REQUESTS.labels(getattr(route, "path", "unmatched"), str(status)).inc()
            metrics.STAGE_SECONDS.labels("http").observe(time.perf_counter() - start)


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory service.app:app_from_env`` (settings from ``LEXVLA_*``)."""
    return create_app(get_settings())
