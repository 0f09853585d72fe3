"""A generation's index-level facts: written and read here only, with a format version checked on open.

``gen-N/index.json`` holds :class:`IndexInfo` as JSON, written once when the generation is
complete (before ``CURRENT`` points at it). Format 1 generations, made before this file existed,
kept the same facts in the ``info`` table of ``meta.sqlite``; they are still read, as one shard.
A generation written by a newer format than this code knows is refused with a clear message
rather than misread.
"""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

INFO_FILE = "index.json"
INDEX_FORMAT = 2  # 1: facts in meta.sqlite, one Lucene index; 2: index.json, 1..N shards
SHARDING = "blake2b-64 of the id, mod shards"  # how ``indexer.generation.shard_of`` assigns documents


class IndexFormatError(RuntimeError):
    """A generation whose info is missing, unreadable or of a format this version cannot read."""


@dataclass(frozen=True)
class IndexInfo:
    """What every reader of a generation needs to know about it."""

    index_version: str
    bundle_version: str
    bundle_name: str
    quant_scale: float
    doc_count: int
    patch_grid: tuple[int, int]
    vocab_size: int
    created_at: str
    image_size: int = 0
    shards: int = 1
    shard_docs: tuple[int, ...] = ()  # documents per shard, in shard order
    index_format: int = INDEX_FORMAT
    image_root: str | None = None  # relative image paths lie under it (indexer.metadata.resolve_path)
    model_card: str | None = None  # the bundle's model card (models.model_card), where it was when indexed
    ann: dict | None = None  # how every shard's approximate structure was built (indexer.ann.AnnBuild), None: none

    def to_json(self) -> dict:
        return asdict(self) | {"patch_grid": list(self.patch_grid), "shard_docs": list(self.shard_docs), "sharding": SHARDING}


BUNDLE_KEYS = ("bundle_version", "bundle_name", "quant_scale", "vocab_size", "patch_grid", "image_size", "model_card")


def bundle_facts(bundle) -> dict:
    """The facts a generation records about the bundle its vectors belong to."""
    from models.bundle import MODEL_CARD_FILE

    cfg, card = bundle.config, Path(bundle.path).resolve() / MODEL_CARD_FILE
    return {
        "bundle_version": bundle.version, "bundle_name": cfg.name, "quant_scale": float(cfg.quant_scale),
        "vocab_size": int(cfg.vocab_size), "patch_grid": list(cfg.patch_grid), "image_size": int(cfg.image_size),
        "model_card": str(card) if card.is_file() else None,
    }  # fmt: skip


def carried_facts(info: IndexInfo) -> dict:
    """The bundle facts (and image root) of a published generation, for a new generation made from it without a bundle."""
    return {k: getattr(info, k) for k in BUNDLE_KEYS} | {"patch_grid": list(info.patch_grid), "image_root": info.image_root}


def write_generation_info(gen: Path, facts: dict, shard_docs: list[int]) -> IndexInfo:
    """Write ``gen/index.json`` from bundle ``facts`` and the per-shard document counts; returns it."""
    info = _from_dict(facts | {
        "index_version": f"{gen.name}-{uuid.uuid4().hex[:8]}", "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "doc_count": sum(shard_docs), "shards": len(shard_docs), "shard_docs": shard_docs, "index_format": INDEX_FORMAT,
    })  # fmt: skip
    tmp = gen / f".{INFO_FILE}.tmp"
    with open(tmp, "w") as fh:
        json.dump(info.to_json(), fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, gen / INFO_FILE)
    return info


def read_info(gen: Path) -> IndexInfo:
    """The facts of generation ``gen``; :class:`IndexFormatError` when they cannot be read."""
    path = Path(gen) / INFO_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raw = _format1_info(Path(gen))
    except ValueError as exc:
        raise IndexFormatError(f"{path} is not valid JSON: {exc}") from exc
    fmt = int(raw.get("index_format", 1))
    if fmt > INDEX_FORMAT:
        raise IndexFormatError(
            f"{gen} was written in index format {fmt}; this version reads formats up to {INDEX_FORMAT}: upgrade lexvla"
        )
    try:
        return _from_dict(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexFormatError(f"{gen}: incomplete index info ({exc})") from exc


def _format1_info(gen: Path) -> dict:
    from indexer.metadata import META_FILE, MetadataReader

    try:
        reader = MetadataReader(gen / META_FILE)
    except FileNotFoundError as exc:
        raise IndexFormatError(f"{gen} has neither {INFO_FILE} nor {META_FILE}") from exc
    try:
        raw = reader.info()
    finally:
        reader.close()
    return raw | {"index_format": int(raw.get("index_format", 1)), "shards": 1, "shard_docs": [raw.get("doc_count", 0)]}


def _patch_grid(value) -> tuple[int, int]:
    """``(rows, cols)`` from a stored ``patch_grid`` (a list in JSON); not two numbers: a ValueError."""
    rows, cols = value
    return int(rows), int(cols)


def _from_dict(raw: dict) -> IndexInfo:
    return IndexInfo(
        index_version=str(raw["index_version"]), bundle_version=str(raw["bundle_version"]),
        bundle_name=str(raw["bundle_name"]), quant_scale=float(raw["quant_scale"]), doc_count=int(raw["doc_count"]),
        patch_grid=_patch_grid(raw["patch_grid"]), vocab_size=int(raw["vocab_size"]),
        created_at=str(raw["created_at"]), image_size=int(raw.get("image_size", 0)), shards=int(raw.get("shards", 1)),
        shard_docs=tuple(int(x) for x in raw.get("shard_docs", ())), index_format=int(raw.get("index_format", 1)),
        image_root=raw.get("image_root"), model_card=raw.get("model_card"), ann=raw.get("ann"),
    )  # fmt: skip
