"""``/admin/reload``: switch to a newly published index generation now.

Disabled (403) unless an admin token is configured; then every call needs it (401 otherwise).
"""
from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from service.api.common import errors
from service.deps import EngineDep, require_admin
from service.schemas import ReloadResponse

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.post("/reload", response_model=ReloadResponse, responses=errors(401, 403, 503))
async def reload(engine: EngineDep) -> ReloadResponse:
    """Open the published generation if it is newer and built with the served bundle."""
    switched, detail = await run_in_threadpool(engine.index.reload)
    return ReloadResponse(switched=switched, index_version=engine.index.versions()["index"], detail=detail)
