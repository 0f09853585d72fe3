"""Liveness, readiness and Prometheus metrics."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(request: Request):
    """Model and index loaded and built for each other (503 otherwise)."""
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        body = Readiness(ready=False, bundle_version=None, index_version=None, index_bundle_version=None,
                         doc_count=None, providers={}, cache=False, detail="not loaded")  # fmt: skip
        return JSONResponse(body.model_dump(), status_code=503)
    body = engine.readiness()
    return body if body["ready"] else JSONResponse(body, status_code=503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics() -> Response:
    """Prometheus exposition: stage latencies, cache outcomes, errors, reloads."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
