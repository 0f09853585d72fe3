"""``/admin/reload``: switch to a newly published index generation now."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from service.deps import EngineDep
from service.schemas import ReloadResponse

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post("/reload", response_model=ReloadResponse)
async def reload(engine: EngineDep) -> dict:
    """Open the published generation if it is newer and built with the served bundle."""
    switched, detail = await run_in_threadpool(engine.reload)
    return {"switched": switched, "index_version": engine.versions()["index"], "detail": detail}
