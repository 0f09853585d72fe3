"""Liveness, readiness and Prometheus metrics.

Liveness and readiness are ``async`` and do no blocking work: they run on the event loop, never
wait for a thread of the pool that search and image work use, and are exempt from the rate limit.
"""
from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service import metrics as prom
from service.api import convert
from service.api.common import errors
from service.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses=errors(rate_limited=False))
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={**errors(rate_limited=False), 503: {"model": Readiness}})
async def readyz(request: Request, response: Response) -> Readiness:
    """Model and index loaded and built for each other (503 otherwise)."""
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        body = Readiness(ready=False, bundle_version=None, index_version=None, index_bundle_version=None,
                         doc_count=None, providers={}, cache=False, detail="not loaded")  # fmt: skip
    else:
        body = convert.readiness(engine.index.readiness())
    if not body.ready:
        response.status_code = 503
    return body


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **errors(rate_limited=False)})
def metrics() -> Response:
    """Prometheus exposition: request and stage latencies, cache outcomes, errors, reloads, build
    and index facts (every worker's, summed, when the service runs several)."""
    return Response(prom.exposition(), media_type=CONTENT_TYPE_LATEST)
