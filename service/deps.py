"""Shared dependencies as ``Annotated`` aliases."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from service.config import Settings, get_settings
from service.engine import Engine


async def get_engine(request: Request) -> Engine:
    """The engine opened at start-up (503 while it is not there).

    ``async`` only so that FastAPI calls it on the event loop: a plain ``def`` dependency is run
    in the thread pool, one thread hop per request for an attribute lookup.
    """
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise HTTPException(503, "the service is starting or failed to load its model/index")
    return engine


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
