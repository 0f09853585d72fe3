"""The FastAPI application: routers, error handlers, middlewares, start-up checks and the index reload loop."""
from __future__ import annotations

import ctypes
import logging
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from service import errors
from service.api import about, admin, embed, encode, health, images, search
from service.config import Settings, get_settings
from service.engine import Engine
from service.limits import RateLimiter, WorkQueue
from service.middleware import BodyLimit, RateLimit, RequestContext, RequestMetrics
from service.schemas import ImageJSONRequest

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def _reload_loop(engine: Engine, interval_s: float, stop: threading.Event) -> None:
    """Poll for a newly published generation every ``interval_s`` seconds until ``stop``."""
    while not stop.wait(interval_s):
        try:
            switched, detail = engine.index.reload()
            if switched:
                log.info("index reload: %s", detail)
        except Exception:  # the loop must outlive any single failure
            log.exception("index reload poll failed")


def large_allocations_to_mmap(threshold: int = 1 << 20) -> bool:
    """Have glibc serve allocations of ``threshold`` bytes and more with mmap, so that freeing them
    gives the memory back to the system.

    By default glibc raises this threshold up to 32 MB after the first large block is freed; the
    16 MB blocks of decoded images then came from the heap and stayed with the process after the
    request (hundreds of MB after a burst of large uploads). Setting it fixes it. False where the
    C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


M_MMAP_THRESHOLD = -3  # <malloc.h>


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings: Settings = app.state.settings
    large_allocations_to_mmap()
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
    settings : instead of ``get_settings()`` (the dependencies read ``app.state.settings``).
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
    app.state.image_work = WorkQueue("image", settings.image_workers, settings.image_queue, settings.retry_after_s)
    errors.install(app)
    for module in (search, encode, embed, images, health, admin, about):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    add_middlewares(app, settings)
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]  # FastAPI's documented way
    return app


def add_middlewares(app: FastAPI, settings: Settings) -> None:
    """From the outside in: request id, metrics, CORS, rate limit, body limit (the last one added
    is the outermost). Limits sit inside CORS so a browser can read their answers."""
    upload_limit = settings.upload_body_bytes
    limits = {"/encode": upload_limit, "/search/image": upload_limit, "/embed_sparse/images": upload_limit * settings.max_embed_images}
    app.add_middleware(BodyLimit, default=settings.max_body_bytes, limits=limits)
    if settings.rate_limit_per_s > 0:
        app.add_middleware(RateLimit, limiter=RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst))
    if settings.cors_origins:  # none configured: no CORS headers, browsers keep other sites' pages out
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-request-id"], expose_headers=["x-request-id", "retry-after", "server-timing"],
            max_age=600,
        )  # fmt: skip
    app.add_middleware(RequestMetrics)
    app.add_middleware(RequestContext)


def openapi_document(app: FastAPI) -> dict:
    """FastAPI's document plus the schemas that only ``openapi_extra`` refers to (cached)."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        extra = ImageJSONRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(extra.pop("$defs", {}))
        schemas["ImageJSONRequest"] = extra
        app.openapi_schema = doc
    return app.openapi_schema


def server_options(settings: Settings) -> dict:
    """The uvicorn options the settings give (``lexvla serve`` passes them; the tests' servers too).

    The keep-alive timeout is set rather than left at uvicorn's 5 s, which is also httpx's idle
    expiry: a client then reused a connection in the instant the server closed it.
    """
    return {"timeout_keep_alive": settings.keep_alive_s, "access_log": settings.access_log}


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory service.app:app_from_env`` (settings from ``LEXVLA_*``)."""
    return create_app(get_settings())
