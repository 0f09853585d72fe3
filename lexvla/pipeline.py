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
import time
from collections.abc import Callable
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

    def manifest(self, source: str) -> Path:
        """The manifest of one of ``SOURCES`` (built by ``ensure_source``)."""
        return self.root / "data" / f"{source}{self._tag}" / "manifest.jsonl"

    @property
    def openclipart(self) -> Path:
        return self.manifest("openclipart")

    @property
    def scenes(self) -> Path:
        return self.manifest("scenes")

    def emoji_set(self, image_set: str) -> Path:
        """One ``emoji-datasource`` set's drawings (``google``, ``twitter``), captioned by their names: training data."""
        return self.manifest(f"emoji-{image_set}")

    @property
    def heldout(self) -> Path:
        """OpenMoji drawings of concepts the training sources never show: never trained on."""
        return self.manifest("openmoji")

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


@dataclass(frozen=True)
class Source:
    """One corpus the default pipeline builds under ``<workspace>/data/<name>``.

    ``style`` groups sources drawn alike (the report leaves one style out of training and tests on
    it); ``train``: whether the default trains on it (the others are evaluation only);
    ``cap``: at most this many images (a seeded sample) with the full corpus, so the first run's
    feature pass stays short.
    """

    name: str
    style: str
    train: bool
    build: Callable[[Workspace, Path], object]
    cap: int | None = None


def _openclipart(ws: Workspace, out: Path):
    from models.data.openclipart import build_openclipart_manifest

    return build_openclipart_manifest(out, limit=ws.data_limit)


def _emoji(source: str) -> Callable[[Workspace, Path], object]:
    def build(ws: Workspace, out: Path):
        from models.data.emoji import build_emoji_manifest

        return build_emoji_manifest(out, source, cache_dir=ws.npm_cache, limit=ws.data_limit)
    return build


def _fluent3d(ws: Workspace, out: Path):
    from models.data.fluent3d import build_fluent3d_manifest

    return build_fluent3d_manifest(out, cache_dir=ws.npm_cache, limit=ws.data_limit)


def _icons(source: str) -> Callable[[Workspace, Path], object]:
    def build(ws: Workspace, out: Path):
        from models.data.icons import build_icon_manifest

        return build_icon_manifest(out, source, cache_dir=ws.npm_cache, limit=ws.data_limit)
    return build


def _pysiogame(ws: Workspace, out: Path):
    from models.data.pysiogame import build_pysiogame_manifest

    return build_pysiogame_manifest(out, limit=ws.data_limit)


def _fashion(ws: Workspace, out: Path):
    from models.data.photos import build_fashion_manifest

    # 50 of each of the 10 classes: beside the named photos, all of the style fits the report's sample
    return build_fashion_manifest(out, per_class=max(1, ws.data_limit // 10) if ws.data_limit else 50)


def _named_photos(ws: Workspace, out: Path):
    from models.data.photos import build_named_photos_manifest

    return build_named_photos_manifest(out, limit=ws.data_limit)


def _scenes(ws: Workspace, out: Path):
    from models.data.scenes import write_scene_set

    return write_scene_set(out, n=ws.data_limit or 2000, seed=0)


# Every corpus the default pipeline knows, in training order. OpenMoji draws emoji concepts held
# out of the Google and Twitter sets; the photos are never trained on.
SOURCES = (
    Source("openclipart", "clipart", True, _openclipart),
    Source("emoji-google", "flat emoji", True, _emoji("google")),
    Source("emoji-twitter", "flat emoji", True, _emoji("twitter")),
    Source("scenes", "generated scenes", True, _scenes),
    Source("fluent3d", "3D renders", True, _fluent3d, cap=1500),
    Source("tabler", "line icons and silhouettes", True, _icons("tabler"), cap=1500),
    Source("game-icons", "line icons and silhouettes", True, _icons("game-icons"), cap=1500),
    Source("pysiogame", "cartoon drawings", True, _pysiogame),
    Source("openmoji", "flat emoji", False, _emoji("openmoji")),
    Source("fashion", "photos", False, _fashion),
    Source("named-photos", "photos", False, _named_photos),
)
SOURCE = {s.name: s for s in SOURCES}
# The styles the report leaves out of training one at a time; generated scenes stay (they are no
# style people search, and PatchDis needs them).
STYLES = tuple(dict.fromkeys(s.style for s in SOURCES if s.style != "generated scenes"))


def ensure_source(ws: Workspace, name: str) -> Path:
    """``name``'s manifest, built unless it exists (seconds to minutes, plus a one-off npm download)."""
    source, manifest = SOURCE[name], ws.manifest(name)
    if not manifest.is_file():
        source.build(ws, manifest.parent)
        if source.cap and ws.data_limit is None:
            cap_manifest(manifest, source.cap)
    return manifest


def cap_manifest(manifest: Path, cap: int) -> None:
    """Keep a seeded-hash sample of ``cap`` records (in file order); the others go to ``capped.jsonl``."""
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    if len(lines) <= cap:
        return
    rank = sorted(range(len(lines)), key=lambda i: hashlib.sha1(json.loads(lines[i])["id"].encode()).hexdigest())
    keep = set(rank[:cap])
    (manifest.parent / "capped.jsonl").write_text("".join(lines[i] for i in range(len(lines)) if i not in keep), encoding="utf-8")
    manifest.write_text("".join(lines[i] for i in range(len(lines)) if i in keep), encoding="utf-8")


def ensure_data(ws: Workspace, without_style: str | None = None) -> list[Path]:
    """Build every corpus of ``SOURCES`` that is missing and return the training manifests, less
    those of ``without_style`` when given (the report's leave-one-style-out runs).

    With ``ws.data_limit`` only that many drawings, emoji and scenes are used.
    """
    for source in SOURCES:
        ensure_source(ws, source.name)
    return [ws.manifest(s.name) for s in SOURCES if s.train and s.style != without_style]


def style_records(ws: Workspace, style: str, held_out: bool, limit: int | None = None) -> list:
    """Evaluation records of one style: its sources' test splits, or, when the style was held out
    of training (``held_out``), every record of it (none was trained on), in a seeded-hash sample of
    at most ``limit``."""
    from models.data.manifest import read_manifest

    records = [r for s in SOURCES if s.style == style
               for r in read_manifest(ensure_source(ws, s.name), split=None if held_out else "test")]
    records.sort(key=lambda r: hashlib.sha1(r.id.encode()).hexdigest())
    return records[:limit] if limit else records


CAPTION_FIELDS = ("captions", "caption", "text", "title")


def user_manifest(ws: Workspace, source: str | Path, seed: int = 0) -> Path:
    """A user's captioned images (a ``.jsonl``, ``.csv`` or ``.parquet`` manifest as ``lexvla index`` reads
    it, with a ``caption`` or ``captions`` field) as a training manifest under ``<workspace>/data/``,
    split train/val/test by a seeded hash of each id. Entries without a caption are left out and counted."""
    from indexer.manifest import iter_inputs
    from models.data.manifest import ManifestRecord, assign_split, write_manifest

    records, uncaptioned = [], 0
    for chunk in iter_inputs(source):
        for item in chunk:
            field_name = next((f for f in CAPTION_FIELDS if item.meta.get(f)), None)
            value = item.meta.get(field_name) if field_name else None
            captions = [str(c) for c in (value if isinstance(value, list) else [value]) if str(c or "").strip()]
            if not captions:
                uncaptioned += 1
                continue
            meta = {k: v for k, v in item.meta.items() if k != field_name}
            records.append(ManifestRecord(item.doc_id, item.path, captions, assign_split(item.doc_id, seed), meta))
    if not records:
        raise ValueError(f"{source}: no entry has a caption (fields tried: {', '.join(CAPTION_FIELDS)})")
    digest = hashlib.sha256(json.dumps([(r.id, r.image, r.captions) for r in records]).encode()).hexdigest()[:12]
    manifest = ws.root / "data" / f"user-{digest}" / "manifest.jsonl"
    if not manifest.is_file():
        write_manifest(manifest, records)
    if uncaptioned:
        log.warning("%s: %d entries without a caption left out", source, uncaptioned)
    return manifest


# The code a trained model depends on: what builds the towers, computes a word's weight, trains and
# calibrates them, and the class prior's words. An edit to any of these trains anew.
TRAINING_CODE = ("models/model.py", "models/towers.py", "models/train.py", "models/losses.py", "models/features.py",
                 "models/backbones.py", "models/vocab.py", "models/preprocess.py", "models/registry.py",
                 "models/priors/imagenet.py", "models/priors/imagenet.json")


def source_commit() -> str:
    """The checkout's commit, marked when tracked files differ from it; "unknown" outside git."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=REPO).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes" if dirty else "")


def code_digest(files: tuple[str, ...] = TRAINING_CODE, root: Path = REPO) -> str:
    """Hash of the training code's files (``TRAINING_CODE`` under ``root``), by content."""
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes())
    return digest.hexdigest()[:12]


def training_key(config: dict, manifests: list[Path]) -> str:
    """Content hash of what a trained model depends on: the whole training config, defaults
    included (a changed default retrains), the card, the data and the training code
    (``code_digest``: weights trained by older code are never reused as this code's)."""
    from dataclasses import asdict

    from models.registry import CARDS_DIR
    from models.train import TrainConfig

    resolved = asdict(TrainConfig(**({"out_dir": ""} | config))) | {"out_dir": None, "cache_dir": None}
    digest = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode())
    digest.update((CARDS_DIR / f"{config['card']}.json").read_bytes())
    for manifest in manifests:
        digest.update(manifest.read_bytes())
    digest.update(code_digest().encode())
    return digest.hexdigest()[:12]


def load_config(path: Path, manifests: list[Path], **overrides) -> dict:
    config = json.loads(Path(path).read_text()) | overrides
    config["manifests"] = [str(m) for m in manifests]
    return config


def ensure_default_bundle(ws: Workspace, config_path: Path = DEFAULT_CONFIG, without_style: str | None = None,
                          extra_manifests: tuple[Path, ...] = (), query_table: bool = False, command: str = "lexvla demo",
                          **overrides) -> Path:
    """The default bundle for ``config_path`` on this workspace's data (less one style's sources when
    ``without_style`` is given, plus ``extra_manifests``), training it if needed, with its model card
    (:func:`write_card`; ``command``: what reproduces it); with ``query_table``, with its query table
    for inference-free queries too (:func:`ensure_query_table`)."""
    from models.bundle import Bundle, BundleError

    manifests = ensure_data(ws, without_style) + list(extra_manifests)
    key = training_key(load_config(config_path, manifests, **overrides), manifests)
    bundle_dir = ws.bundle(key)
    try:
        Bundle(bundle_dir, device="cpu")
        log.info("default bundle %s is up to date", bundle_dir)
    except BundleError:  # not built yet for this config, data and code
        from models.export import export_bundle
        from models.train import load_trained

        run = ensure_trained(ws, config_path, without_style, extra_manifests, **overrides)
        export_bundle(load_trained(run.card, run.weights), bundle_dir, extra={"training_key": key, "config": os.fspath(config_path)})
    write_card(ws, bundle_dir, manifests, key, command)
    if query_table:
        ensure_query_table(bundle_dir, manifests)
    return bundle_dir


QUALITY_REPORT = REPO / "docs" / "quality-report.json"


def write_card(ws: Workspace, bundle_dir: Path, manifests: list[Path], key: str, command: str,
               report: Path = QUALITY_REPORT) -> Path:  # fmt: skip
    """(Re)write the bundle's model card (``models.model_card``): its training sources, the metrics of
    ``report`` when that report measured this config, and the command at this commit. Cheap, so a
    bundle that is up to date gets it too (after a report, the card quotes the report's numbers)."""
    from models.model_card import training_config, write_model_card

    return write_model_card(bundle_dir, manifests, f"# at commit {source_commit()}\nbash scripts/setup.sh && .venv/bin/{command}",
                            report=report, training=training_config(ws.run(key)))


@dataclass(frozen=True)
class TrainedRun:
    """One finished training: its key (``training_key``), card and weights file, the seconds it took
    when it ran, and whether this call found it done (``reused``) instead of training it."""

    key: str
    card: str
    weights: Path
    seconds: float = 0.0
    reused: bool = False


def ensure_trained(ws: Workspace, config_path: Path = DEFAULT_CONFIG, without_style: str | None = None,
                   extra_manifests: tuple[Path, ...] = (), **overrides) -> TrainedRun:
    """The weights of ``config_path`` trained on this workspace's data (as ``ensure_default_bundle``
    chooses it), trained unless a finished run with the same key exists; a killed training resumes
    from its checkpoint. No export: the report scores such runs from cached features."""
    from models.train import WEIGHTS, TrainConfig, Trainer

    manifests = ensure_data(ws, without_style) + list(extra_manifests)
    config = load_config(config_path, manifests, **overrides)
    key = training_key(config, manifests)
    run_dir = ws.run(key)
    done = run_dir / "done.json"
    if done.is_file() and (run_dir / WEIGHTS).is_file():
        return TrainedRun(key, config["card"], run_dir / WEIGHTS, json.loads(done.read_text()).get("seconds", 0.0), reused=True)
    config |= {"out_dir": str(run_dir), "cache_dir": str(ws.root / "cache" / "features")}
    log.info("training %s (key %s)%s", config["card"], key, f" without {without_style}" if without_style else "")
    started = time.monotonic()
    weights = Trainer(TrainConfig(**config)).fit()
    seconds = round(time.monotonic() - started, 1)
    done.write_text(json.dumps({"key": key, "without_style": without_style, "overrides": overrides, "seconds": seconds},
                               default=str))
    return TrainedRun(key, config["card"], weights, seconds)


def ensure_query_table(bundle_dir: Path, manifests: list[Path]) -> Path:
    """``bundle_dir``'s query table (``models.query_table``: queries without the text tower), built
    unless a current one with all these rows is there (about two minutes on 2 cores, 15 MB): a row
    for every vocabulary word, and for every word of the ``manifests``' training captions and every
    one-word WordNet noun, verb and adjective that the tokenizer splits into pieces."""
    from models.bundle import Bundle, BundleError
    from models.data.manifest import read_manifest
    from models.query_table import QUERY_TABLE_FILE, build_query_table, split_words, with_wordnet

    captions = [c for m in manifests for r in read_manifest(m, split="train") for c in r.captions]
    bundle = Bundle(bundle_dir, device="cpu")
    extra = split_words(bundle, captions)
    # and WordNet's words: without a row, a word people type that no training caption had gets no
    # weight (34 of 300 held-out captions lost a word that way, 28 of the 39 words were WordNet's)
    try:
        extra = with_wordnet(bundle, extra)
    except FileNotFoundError as exc:
        log.warning("no WordNet (Debian's wordnet-base, %s): the query table has rows for caption words only", exc)
    try:
        table = Bundle(bundle_dir, device="cpu", query_mode="table").query_table
        if table is not None and table.covers(bundle.text_preprocessor, extra):
            return bundle_dir / QUERY_TABLE_FILE
    except BundleError:
        pass
    log.info("building the query table of %s", bundle_dir)
    return build_query_table(bundle_dir, extra_words=extra)
