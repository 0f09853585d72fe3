"""The embedded default: data built here, a ``lexvla-mini`` trained on it, exported once and cached.

The cache key covers the training config, the model card and the manifests' contents, so editing
any of them (or rebuilding data that comes out different) trains a new bundle; an unchanged
set-up reuses the bundle it built before.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "configs" / "lexvla-mini-openclipart.json"


@dataclass(frozen=True)
class Workspace:
    """Where the default pipeline keeps its data, runs, bundles and index (``var/`` by default)."""

    root: Path
    data_limit: int | None = None  # a small corpus for quick looks and tests; None: all of it

    @property
    def _tag(self) -> str:
        return "" if self.data_limit is None else f"-first{self.data_limit}"

    @property
    def openclipart(self) -> Path:
        return self.root / "data" / f"openclipart{self._tag}" / "manifest.jsonl"

    @property
    def scenes(self) -> Path:
        return self.root / "data" / f"scenes{self._tag}" / "manifest.jsonl"

    def emoji_set(self, image_set: str) -> Path:
        """One ``emoji-datasource`` set's drawings (``google``, ``twitter``), captioned by their names: training data."""
        return self.root / "data" / f"emoji-{image_set}{self._tag}" / "manifest.jsonl"

    @property
    def heldout(self) -> Path:
        """OpenMoji drawings of concepts the training sources never show: never trained on."""
        return self.root / "data" / f"openmoji{self._tag}" / "manifest.jsonl"

    @property
    def npm_cache(self) -> Path:
        return self.root / "cache" / "npm"

    @property
    def index(self) -> Path:
        return self.root / "index"

    def bundle(self, key: str) -> Path:
        return self.root / "bundles" / f"lexvla-mini-{key}"

    @property
    def default_bundle(self) -> Path:
        """A stable name (``bundles/lexvla-mini``) for the newest default bundle, e.g. for docker-compose."""
        return self.root / "bundles" / "lexvla-mini"

    def point_default_to(self, bundle_dir: Path) -> None:
        link = self.default_bundle
        tmp = link.with_name(f".{link.name}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(bundle_dir.name)  # relative: valid wherever the bundles folder is mounted
        os.replace(tmp, link)

    def run(self, key: str) -> Path:
        return self.root / "runs" / key


def ensure_data(ws: Workspace, scenes: int = 2000) -> list[Path]:
    """Build the training manifests (openclipart, Google and Twitter emoji, generated scenes) and the held-out
    OpenMoji manifest unless they exist (seconds, plus a one-off npm download).

    With ``ws.data_limit`` only that many drawings, emoji and scenes are used. Returns the
    training manifests; the held-out one is ``ws.heldout``.
    """
    from models.data.emoji import DATASOURCE_SETS, build_emoji_manifest
    from models.data.openclipart import build_openclipart_manifest
    from models.data.scenes import write_scene_set

    if not ws.openclipart.is_file():
        stats = build_openclipart_manifest(ws.openclipart.parent, limit=ws.data_limit)
        log.info("openclipart manifest: %s", {k: stats[k] for k in list(stats)[:4]})
    emoji = [(ws.emoji_set(s), s) for s in DATASOURCE_SETS]
    for manifest, source in (*emoji, (ws.heldout, "openmoji")):
        if not manifest.is_file():
            build_emoji_manifest(manifest.parent, source, cache_dir=ws.npm_cache, limit=ws.data_limit)
    if not ws.scenes.is_file():
        write_scene_set(ws.scenes.parent, n=ws.data_limit or scenes, seed=0)
    return [ws.openclipart, *(m for m, _ in emoji), ws.scenes]


def training_key(config: dict, manifests: list[Path]) -> str:
    """Content hash of what the default bundle depends on: the whole training config, defaults
    included (a changed default retrains), the card and the data."""
    from dataclasses import asdict

    from models.registry import CARDS_DIR
    from models.train import TrainConfig

    resolved = asdict(TrainConfig(**({"out_dir": ""} | config))) | {"out_dir": None, "cache_dir": None}
    digest = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode())
    digest.update((CARDS_DIR / f"{config['card']}.json").read_bytes())
    for manifest in manifests:
        digest.update(manifest.read_bytes())
    return digest.hexdigest()[:12]


def load_config(path: Path, manifests: list[Path], **overrides) -> dict:
    config = json.loads(Path(path).read_text()) | overrides
    config["manifests"] = [str(m) for m in manifests]
    return config


def ensure_default_bundle(ws: Workspace, config_path: Path = DEFAULT_CONFIG, **overrides) -> Path:
    """The default bundle for ``config_path`` on this workspace's data, training it if needed."""
    from models.bundle import Bundle, BundleError

    manifests = ensure_data(ws)
    config = load_config(config_path, manifests, **overrides)
    key = training_key(config, manifests)
    bundle_dir = ws.bundle(key)
    try:
        Bundle(bundle_dir, device="cpu")
        log.info("default bundle %s is up to date", bundle_dir)
        return bundle_dir
    except BundleError:
        pass  # not built yet for this config and data
    from models.export import export_bundle
    from models.train import TrainConfig, Trainer, load_trained

    config |= {"out_dir": str(ws.run(key)), "cache_dir": str(ws.root / "cache" / "features")}
    cfg = TrainConfig(**config)
    log.info("training the default bundle (key %s); this runs once per config and data", key)
    weights = Trainer(cfg).fit()
    export_bundle(load_trained(cfg.card, weights), bundle_dir, extra={"training_key": key, "config": os.fspath(config_path)})
    return bundle_dir
