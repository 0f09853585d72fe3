"""Shared dependencies as ``Annotated`` aliases."""
from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.config import Settings
from service.engine import Engine
from service.limits import WorkQueue


async def get_engine(request: Request) -> Engine:
    """The engine opened at start-up (503 while it is not there).

    ``async`` only so that FastAPI calls it on the event loop: a plain ``def`` dependency is run
    in the thread pool, one thread hop per request for an attribute lookup.
    """
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise HTTPException(503, "the service is starting or failed to load its model/index", headers={"Retry-After": "5"})
    return engine


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was made with (``create_app``). Read from the app's state rather than
    installed as a dependency override: with any override, FastAPI re-derives every dependency's
    signature on every request (``inspect.signature``, about 0.1 ms a request)."""
    return request.app.state.settings


async def get_image_work(request: Request) -> WorkQueue:
    """The queue of image work (decoding, encoding, heatmaps, thumbnails)."""
    return request.app.state.image_work


_bearer = HTTPBearer(auto_error=False, description="the service's admin token (LEXVLA_ADMIN_TOKEN)")


async def require_admin(
    settings: Annotated[Settings, Depends(get_app_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Admin routes: 403 while no admin token is configured, 401 without the right one."""
    if settings.admin_token is None:
        raise HTTPException(403, "admin routes are disabled: configure LEXVLA_ADMIN_TOKEN to enable them")
    expected = settings.admin_token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials is not None else b""
    if not hmac.compare_digest(given, expected):
        raise HTTPException(401, "admin routes need `Authorization: Bearer <admin token>`", headers={"WWW-Authenticate": "Bearer"})


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ImageWorkDep = Annotated[WorkQueue, Depends(get_image_work)]
