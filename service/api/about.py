"""``/model-card``: the served bundle's model card (``models.model_card``), as Markdown."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from models.bundle import MODEL_CARD_FILE
from service.api.common import errors
from service.deps import EngineDep
from service.exceptions import NotFound

router = APIRouter(tags=["about"])


@router.get("/model-card", response_class=Response,
            responses={**errors(404, 503), 200: {"content": {"text/markdown": {}}}})  # fmt: skip
async def model_card(engine: EngineDep) -> Response:
    """The bundle's model card: training data with licences and required attributions, metrics, limitations."""
    card = engine.bundle.path / MODEL_CARD_FILE
    try:
        text = card.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"bundle {engine.bundle.version} has no model card ({MODEL_CARD_FILE}): "
                       "`lexvla export` and the default pipeline write one") from None
    return Response(text, media_type="text/markdown; charset=utf-8", headers={"X-Bundle-Version": engine.bundle.version})
