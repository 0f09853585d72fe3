"""The report's experiments: which models are trained, on what, and how each is scored.

A *run* is one training: config, overrides, data and training code give its key
(``lexvla.pipeline.training_key``), its weights live in ``<workspace>/runs/<key>``, and a killed
training resumes from its checkpoint. A *result* is one model scored on one evaluation: the run's
weights (or one part of them undone, or the untrained heads) from cached frozen features
(``models.scoring.FeatureScorer``: the backbone and the language model run once per image and
caption, whatever the number of models). Each result is written to
``<workspace>/report/results/`` the moment it is computed and reused by a later report whose run
key and evaluation key (evaluation code, evaluation data, limits) are the same; the ``Ledger``
says which results were reused and how long each new one took. Nothing here writes the document:
``lexvla.report`` does.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lexvla.pipeline import (
    REPO,
    SOURCES,
    STYLES,
    TrainedRun,
    Workspace,
    ensure_data,
    ensure_trained,
    style_records,
)

log = logging.getLogger(__name__)
STYLE_LIMIT = 600  # images of each held-out style evaluated (a seeded sample)
SEEDS = (0, 1, 2)
DEFAULT = "lexvla-mini (overuse penalty)"
# Trained variants: name -> training-config overrides. Each is trained with every seed.
TRAINED: dict[str, dict] = {
    DEFAULT: {},
    "FLOPs regulariser": {"regularizer": "flops"},
    # The penalty weights are inert without a regulariser; pinned so a weight change reuses this run.
    "no penalty": {"regularizer": "none", "reg_weight_image": 0.0, "reg_weight_text": 0.0},
    # The image -> caption-word loss makes an image's strongest words its captions' words.
    "no caption-word loss": {"word_loss_weight": 0.0},
}


def _no_familiarity(model) -> None:
    model.image.prototypes = model.image.prototypes[:0]


# Variants of inference alone: the default's own trained weights of each seed with one part undone
# (no retraining). The word-rate calibration runs after training (``word_scale`` = 1 undoes it);
# the typed-word floor and the relatedness gate have no weights (0 undoes them).
DERIVED: dict[str, Callable[[Any], None]] = {
    "no word-rate calibration": lambda m: m.image.word_scale.fill_(1.0),
    "no typed-word floor": lambda m: setattr(m.text, "exact_floor", 0.0),
    "no relatedness gate": lambda m: setattr(m.text, "min_relatedness", 0.0),
    "no familiarity": _no_familiarity,
}
NO_FAMILIARITY = "no familiarity"  # also scored in every leave-one-style-out row
TRAINED_WITHOUT = "trained without this style"
UNTRAINED = "untrained heads (priors only)"
BASELINES = {
    "random": "uniform random scores",
    "ImageNet labels, MiniLM cosine": "MobileNetV2's top-5 ImageNet class names embedded with MiniLM, cosine with the caption's embedding",
    "ImageNet labels, exact words": "the same class names as words, matched exactly against the caption's words",
}
# What a result depends on besides the model: the code that scores it.
EVALUATION_CODE = ("models/evaluate.py", "models/scoring.py", "models/baselines.py", "models/colours.py", "lexvla/experiments.py")


@dataclass
class Ledger:
    """Which results a report computed and which it reused, with the seconds each new one took."""

    entries: list[dict] = field(default_factory=list)

    def add(self, name: str, reused: bool, seconds: float) -> None:
        self.entries.append({"name": name, "reused": reused, "seconds": round(seconds, 1)})

    @property
    def reused(self) -> list[str]:
        return [e["name"] for e in self.entries if e["reused"]]


class Results:
    """Finished results on disk, one JSON file each, written atomically when computed."""

    def __init__(self, ws: Workspace, evaluation_key: str, ledger: Ledger | None = None):
        self.dir = ws.root / "report" / "results"
        self.evaluation_key = evaluation_key
        self.ledger = ledger or Ledger()

    def get(self, name: str, model_key: str, compute: Callable[[], dict]) -> dict:
        """The result ``name`` of the model ``model_key``: read when this evaluation of this model
        was computed before, else computed now and written."""
        slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
        path = self.dir / f"{slug}-{model_key}-{self.evaluation_key}.json"
        if path.is_file():
            self.ledger.add(name, True, 0.0)
            return json.loads(path.read_text())
        started = time.monotonic()
        result = compute()
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, default=_jsonable))
        os.replace(tmp, path)  # a kill leaves no half-written result
        self.ledger.add(name, False, time.monotonic() - started)
        return json.loads(path.read_text())  # what a reuse would read: tuples as lists, the same either way


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value)}")


def evaluation_key(ws: Workspace, style_limit: int, patchdis_limit: int) -> str:
    """Hash of the evaluation code (``EVALUATION_CODE``), the evaluation sets' manifests and limits."""
    digest = hashlib.sha256(f"{style_limit}/{patchdis_limit}/{ws.data_limit}".encode())
    for name in EVALUATION_CODE:
        path = REPO / name
        digest.update(name.encode() + (path.read_bytes() if path.is_file() else b""))
    for source in SOURCES:
        digest.update(ws.manifest(source.name).read_bytes())
    return digest.hexdigest()[:12]


# ---- models -----------------------------------------------------------------------------------------
def feature_cache(ws: Workspace) -> Path:
    return ws.root / "cache" / "features"


@functools.lru_cache(maxsize=4)
def _model(card: str, weights: str | None):
    from models.train import load_trained

    return load_trained(card, weights)


def scorer(ws: Workspace, card: str, run: TrainedRun | None, undo: str | None = None):
    """A ``FeatureScorer`` of a run's weights (the untrained heads for ``run=None``), with the part
    ``DERIVED[undo]`` undone when given."""
    import copy

    from models.scoring import FeatureScorer

    model = _model(card, str(run.weights) if run else None)
    if undo:
        model = copy.deepcopy(model)
        DERIVED[undo](model)
    return FeatureScorer(model, feature_cache(ws), version=(run.key if run else "untrained") + (f"-{undo}" if undo else ""))


# ---- evaluations ------------------------------------------------------------------------------------
@functools.cache
def training_annotations(ws: Workspace, known: frozenset[str]) -> dict:
    """Which words people wrote together on the training images (``models.evaluate.cooccurring_words``)."""
    from models.data.manifest import read_manifest
    from models.evaluate import cooccurring_words

    records = [r for manifest in ensure_data(ws) for r in read_manifest(manifest, split="train")]
    return cooccurring_words(records, set(known))


def evaluate_variant(model, ws: Workspace, patchdis_limit: int) -> dict:
    """Everything the report says about one model: retrieval in and out of domain, words, PatchDis."""
    from models.data.manifest import read_manifest
    from models.evaluate import (
        encode_records,
        evaluate_patchdis,
        evaluate_retrieval,
        expansion_support,
        flatten_captions,
        image_word_accuracy,
        image_word_precision,
        word_retention,
    )

    test, heldout = read_manifest(ws.openclipart, split="test"), read_manifest(ws.heldout, split="test")
    # Each set is encoded once; retrieval, retention and precision all read the same vectors.
    enc_test, enc_held = encode_records(model, test), encode_records(model, heldout)
    records = test + heldout
    captions = flatten_captions(records)[0]
    return {
        "in_domain": evaluate_retrieval(model, test, encoded=enc_test),
        "heldout": evaluate_retrieval(model, heldout, encoded=enc_held),
        "retention": word_retention(model, captions, vectors=enc_test[1] + enc_held[1]),
        "precision": image_word_precision(model, records, vectors=enc_test[0] + enc_held[0]),
        "accuracy": image_word_accuracy(model, test, vectors=enc_test[0]),
        "expansion": expansion_support(model, captions, enc_test[1] + enc_held[1],
                                       training_annotations(ws, frozenset(model.words))),
        "patchdis": evaluate_patchdis(model, read_manifest(ws.scenes, split="test")[:patchdis_limit]),
        "model": model.version,
        "top_k": {"image": model.config.image_top_k, "text": model.config.text_top_k},
    }


def evaluate_style(model, records: list) -> dict:
    """Retrieval (t2i and i2t R@K), image word accuracy and word precision of one model on one style's records."""
    from models.evaluate import (
        encode_records,
        image_word_accuracy,
        retrieval_metrics,
        to_csr,
        top_word_precision,
    )

    images, texts, text_image, _ = encode_records(model, records)
    dim = len(model.words)
    return {"images": len(images), "captions": len(texts),
            **retrieval_metrics(to_csr(images, dim), to_csr(texts, dim), text_image),
            **image_word_accuracy(model, records, vectors=images),
            "word_precision": top_word_precision(model, records, images), "model": model.version}


def imagenet_classes_from_features(ws: Workspace, model, records: list, top: int = 5):
    """MobileNetV2's top ImageNet classes of ``records`` from the cached patch features (its own
    classifier on their mean, as ``models.baselines.imagenet_top_classes`` computes from pixels)."""
    import numpy as np
    import torch

    from models.baselines import top_classes
    from models.features import image_features

    feats, _ = image_features(model, [r.image for r in records], feature_cache(ws))
    pooled = (torch.from_numpy(np.asarray(feats[s : s + 256], np.float32)).mean(dim=1) for s in range(0, len(records), 256))
    return top_classes(model.image.backbone.classifier, pooled, top)


def baselines_on(ws: Workspace, model, records: list) -> dict[str, dict]:
    """The zero-training baselines on ``records`` (one classifier pass serves both label baselines)."""
    from models.baselines import imagenet_labels_dense, imagenet_labels_lexical, random_baseline

    classes = imagenet_classes_from_features(ws, model, records)
    return {"random": random_baseline(records, seed=0),
            "ImageNet labels, MiniLM cosine": imagenet_labels_dense(records, classes=classes),
            "ImageNet labels, exact words": imagenet_labels_lexical(records, classes=classes)}


# ---- the plan -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """What one report trains and scores."""

    config: Path
    seeds: tuple[int, ...] = SEEDS
    ablations: bool = False
    overrides: dict = field(default_factory=dict)
    style_limit: int = STYLE_LIMIT
    patchdis_limit: int = 200
    jobs: int = 1  # trainings run side by side, each in its own process with its share of the cores

    def trainings(self) -> list[tuple[str | None, dict]]:
        """Every training the plan needs, as ``(style left out or None, overrides)``."""
        variants = TRAINED if self.ablations else {DEFAULT: TRAINED[DEFAULT]}
        out: list[tuple[str | None, dict]] = []
        for seed in self.seeds:
            out += [(None, self.overrides | variant | {"seed": seed}) for variant in variants.values()]
            out += [(style, self.overrides | {"seed": seed}) for style in STYLES if _trained_on(style)]
        return out


def _trained_on(style: str) -> bool:
    return any(s.train for s in SOURCES if s.style == style)


def _train_one(root: str, data_limit: int | None, config: str, without_style: str | None, overrides: dict,
               threads: int) -> TrainedRun:  # fmt: skip
    """One training in a worker process with ``threads`` torch threads."""
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return ensure_trained(Workspace(Path(root), data_limit), Path(config), without_style, **overrides)


def train_all(ws: Workspace, plan: Plan) -> dict[tuple[str | None, str], TrainedRun]:
    """Train (or find) every run of the plan: ``{(style left out, overrides as JSON): run}``.
    With ``plan.jobs`` > 1, that many trainings run at once, the cores shared among them."""
    todo = plan.trainings()
    keyed = {(style, json.dumps(o, sort_keys=True)): (style, o) for style, o in todo}
    if plan.jobs <= 1:
        return {k: ensure_trained(ws, plan.config, style, **o) for k, (style, o) in keyed.items()}
    threads = max(1, (os.cpu_count() or 1) // plan.jobs)
    import multiprocessing

    with ProcessPoolExecutor(plan.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {k: pool.submit(_train_one, str(ws.root), ws.data_limit, str(plan.config), style, o, threads)
                   for k, (style, o) in keyed.items()}
        return {k: f.result() for k, f in futures.items()}


def run_plan(ws: Workspace, plan: Plan, ledger: Ledger) -> dict:
    """Train every run of the plan and score every model on every evaluation, reusing finished
    results; returns what the report writes (``trained``, ``untrained``, ``leave_one_style_out``,
    ``baselines``) and the runs of the default (``default_runs``, seed order)."""
    card = json.loads(plan.config.read_text())["card"]
    started = time.monotonic()
    runs = train_all(ws, plan)
    ledger.add("training (all runs)", False, time.monotonic() - started)
    results = Results(ws, evaluation_key(ws, plan.style_limit, plan.patchdis_limit), ledger)
    key = lambda style, overrides: runs[(style, json.dumps(overrides, sort_keys=True))]  # noqa: E731
    variants = TRAINED if plan.ablations else {DEFAULT: TRAINED[DEFAULT]}
    trained: dict[str, list[dict]] = {}
    default_runs = []
    for name, variant in variants.items():
        trained[name] = []
        for seed in plan.seeds:
            run = key(None, plan.overrides | variant | {"seed": seed})
            if name == DEFAULT:
                default_runs.append(run)
            trained[name].append(results.get(f"{name} seed {seed}", run.key,
                                             functools.partial(_variant_result, ws, card, run, plan.patchdis_limit)))
            if name == DEFAULT and plan.ablations:
                for derived in DERIVED:
                    trained.setdefault(derived, []).append(results.get(
                        f"{derived} seed {seed}", run.key,
                        functools.partial(_variant_result, ws, card, run, plan.patchdis_limit, derived)))
    untrained = results.get(UNTRAINED, f"untrained-{card}",
                            functools.partial(_variant_result, ws, card, None, plan.patchdis_limit))
    loso = {}
    for style in STYLES:
        held = _trained_on(style)
        records = style_records(ws, style, held_out=True, limit=plan.style_limit)
        rows: dict[str, list[dict]] = {TRAINED_WITHOUT: [], NO_FAMILIARITY: []}
        for seed in plan.seeds:
            run = key(style if held else None, plan.overrides | {"seed": seed})
            rows[TRAINED_WITHOUT].append(results.get(f"without {style} seed {seed}", run.key,
                                                     functools.partial(_style_result, ws, card, run, records)))
            rows[NO_FAMILIARITY].append(results.get(f"without {style} seed {seed}, {NO_FAMILIARITY}", run.key,
                                                    functools.partial(_style_result, ws, card, run, records, NO_FAMILIARITY)))
        base = results.get(f"{style}: untrained and baselines", f"untrained-{card}",
                           functools.partial(_untrained_and_baselines, ws, card, records))
        loso[style] = {"images": len(records), "sources": sorted({s.name for s in SOURCES if s.style == style}),
                       "left_out_of_training": held, **rows, **base}
    baselines = results.get("baselines in domain and held out", f"untrained-{card}", lambda: _baselines(ws, card))
    return {"trained": trained, "untrained": untrained, "leave_one_style_out": loso, "baselines": baselines,
            "default_runs": default_runs,
            "runs": [{"key": r.key, "seconds": r.seconds, "reused": r.reused} for r in runs.values()]}


def _variant_result(ws: Workspace, card: str, run: TrainedRun | None, patchdis_limit: int, undo: str | None = None) -> dict:
    return evaluate_variant(scorer(ws, card, run, undo), ws, patchdis_limit)


def _style_result(ws: Workspace, card: str, run: TrainedRun | None, records: list, undo: str | None = None) -> dict:
    return evaluate_style(scorer(ws, card, run, undo), records)


def _untrained_and_baselines(ws: Workspace, card: str, records: list) -> dict:
    return {UNTRAINED: _style_result(ws, card, None, records), **baselines_on(ws, _model(card, None), records)}


def _baselines(ws: Workspace, card: str) -> dict[str, dict]:
    from models.data.manifest import read_manifest

    out: dict[str, dict] = {name: {} for name in BASELINES}
    for where, manifest in (("in_domain", ws.openclipart), ("heldout", ws.heldout)):
        for name, result in baselines_on(ws, _model(card, None), read_manifest(manifest, split="test")).items():
            out[name][where] = result
    return out
