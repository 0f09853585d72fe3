"""``lexvla report``: the quality report of the default model, written into ``docs/``.

Trains (or reuses) the default bundle and its baselines on the same data and steps, evaluates
every one on the held-out test split, and writes ``docs/quality-report.md`` with its figures and
``docs/quality-report.json`` with the raw numbers. Every number in the report comes from the run
that wrote it.
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lexvla.pipeline import (
    DEFAULT_CONFIG,
    SOURCES,
    STYLES,
    Workspace,
    ensure_data,
    ensure_default_bundle,
    style_records,
)

log = logging.getLogger(__name__)
# The demo index's questions whose top hits a reader checks by eye (ids and dominant words in the report).
DEMO_QUERIES = ["a dog", "a red apple", "a dog playing with a ball", "a car", "a house", "a tree", "a cat", "a bird"]
STYLE_LIMIT = 600  # images of each held-out style evaluated (a seeded sample)
DEFAULT = "lexvla-mini (overuse penalty)"
# Trained variants: name -> training-config overrides. Each is trained with every seed in SEEDS.
TRAINED: dict[str, dict] = {
    DEFAULT: {},
    "FLOPs regulariser": {"regularizer": "flops"},
    # The penalty weights are inert without a regulariser; pinned so a weight change reuses this run.
    "no penalty": {"regularizer": "none", "reg_weight_image": 0.0, "reg_weight_text": 0.0},
    # The image -> caption-word loss makes an image's strongest words its captions' words.
    "no caption-word loss": {"word_loss_weight": 0.0},
}
# Variants of inference alone: the default's own trained weights of each seed, exported again with
# one part undone (no retraining). name -> (bundle suffix, what is undone, the bundle's extra note).
# The word-rate calibration runs after training (``word_scale`` = 1 undoes it); the typed-word floor
# (``text.exact_floor``) and the relatedness gate (``text.expansion_min_relatedness``) have no weights (0 undoes them).
DERIVED: dict[str, tuple[str, Callable[[Any], None], dict]] = {
    "no word-rate calibration": ("uncalibrated", lambda m: m.image.word_scale.fill_(1.0), {"word_rate_calibration": False}),
    "no typed-word floor": ("unfloored", lambda m: setattr(m.text, "exact_floor", 0.0), {"exact_floor": 0.0}),
    "no relatedness gate": ("ungated", lambda m: setattr(m.text, "min_relatedness", 0.0), {"expansion_min_relatedness": 0.0}),
    "no familiarity": ("unfamiliar", lambda m: setattr(m.image, "prototypes", m.image.prototypes[:0]), {"familiarity": False}),
}
NO_FAMILIARITY = "no familiarity"  # also scored in every leave-one-style-out row: the same weights, learned words never faded
REGULARIZER_VARIANTS = ("FLOPs regulariser", "no penalty")  # what the overuse penalty is compared with
TRAINED_WITHOUT = "trained without this style"  # what the overuse penalty is compared with
SEEDS = (0, 1, 2)
UNTRAINED = "untrained heads (priors only)"
BASELINES = {
    "random": "uniform random scores",
    "ImageNet labels, MiniLM cosine": "MobileNetV2's top-5 ImageNet class names embedded with MiniLM, cosine with the caption's embedding",
    "ImageNet labels, exact words": "the same class names as words, matched exactly against the caption's words",
}
# Metrics shown as mean +- std over seeds: (result path, label).
METRICS = [
    (("heldout", "t2i_R@1"), "held-out t2i R@1"), (("heldout", "t2i_R@5"), "held-out t2i R@5"),
    (("heldout", "t2i_R@10"), "held-out t2i R@10"), (("heldout", "i2t_R@10"), "held-out i2t R@10"),
    (("in_domain", "t2i_R@1"), "in-domain t2i R@1"), (("in_domain", "t2i_R@10"), "in-domain t2i R@10"),
    (("in_domain", "i2t_R@10"), "in-domain i2t R@10"),
]
WORD_METRICS = [
    (("retention", "retention"), "word retention %"), (("precision", "precision_at_10"), "image top-10 precision %"),
    (("accuracy", "accuracy_at_5"), "image word accuracy (top 5) %"),
    (("expansion", "support_at_10"), "query expansion support %"), (("expansion", "added"), "expansion words per query"),
    (("in_domain", "image_top10_max_share"), "most-used top-10 image word, % of images"),
    (("in_domain", "image_top10_max_share_beyond_captions"), "most-used beyond its captions, % of images"),
    (("patchdis", "mIoU"), "PatchDis mIoU"),
]
IN_DOMAIN_T2I_R10_TARGET = 39.0


def untrained_bundle(ws: Workspace, card: str) -> Path:
    from models.bundle import Bundle, BundleError
    from models.export import export_bundle
    from models.train import load_trained

    out = ws.root / "bundles" / f"{card}-untrained"
    try:
        Bundle(out, device="cpu")
    except BundleError:
        export_bundle(load_trained(card, None), out)
    return out


def derived_bundle(ws: Workspace, bundle_dir: Path, name: str) -> Path:
    """The trained bundle ``bundle_dir`` exported again with the part of ``DERIVED[name]`` undone."""
    from models.bundle import Bundle, BundleError
    from models.export import export_bundle
    from models.train import WEIGHTS, load_trained

    suffix, undo, note = DERIVED[name]
    out = bundle_dir.with_name(f"{bundle_dir.name}-{suffix}")
    try:
        Bundle(out, device="cpu")
        return out
    except BundleError:
        pass
    config = Bundle(bundle_dir, device="cpu").config
    extra = config.extra
    model = load_trained(config.card, ws.run(extra["training_key"]) / WEIGHTS)
    undo(model)
    export_bundle(model, out, extra=extra | note)
    return out


@functools.cache
def training_annotations(ws: Workspace, known: frozenset[str]) -> dict:
    """Which words people wrote together on the training images (``models.evaluate.cooccurring_words``)."""
    from models.data.manifest import read_manifest
    from models.evaluate import cooccurring_words

    records = [r for manifest in ensure_data(ws) for r in read_manifest(manifest, split="train")]
    return cooccurring_words(records, set(known))


def evaluate_variant(bundle_dir: Path, ws: Workspace, patchdis_limit: int) -> dict:
    """Everything the report says about one bundle: retrieval in and out of domain, words, PatchDis."""
    from models.bundle import Bundle
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

    bundle = Bundle(bundle_dir)
    test, heldout = read_manifest(ws.openclipart, split="test"), read_manifest(ws.heldout, split="test")
    # Each set is encoded once; retrieval, retention and precision all read the same vectors.
    enc_test, enc_held = encode_records(bundle, test), encode_records(bundle, heldout)
    records = test + heldout
    captions = flatten_captions(records)[0]
    return {
        "in_domain": evaluate_retrieval(bundle, test, encoded=enc_test),
        "heldout": evaluate_retrieval(bundle, heldout, encoded=enc_held),
        "retention": word_retention(bundle, captions, vectors=enc_test[1] + enc_held[1]),
        "precision": image_word_precision(bundle, records, vectors=enc_test[0] + enc_held[0]),
        "accuracy": image_word_accuracy(bundle, test, vectors=enc_test[0]),
        "expansion": expansion_support(bundle, captions, enc_test[1] + enc_held[1],
                                       training_annotations(ws, frozenset(bundle.words))),
        "patchdis": evaluate_patchdis(bundle, read_manifest(ws.scenes, split="test")[:patchdis_limit]),
        "bundle_version": bundle.version,
        "top_k": {"image": bundle.config.image_top_k, "text": bundle.config.text_top_k},
    }


def evaluate_style(bundle_dir: Path, records: list) -> dict:
    """Retrieval (t2i and i2t R@K) and image word accuracy of one bundle on one style's records."""
    from models.bundle import Bundle
    from models.evaluate import encode_records, image_word_accuracy, retrieval_metrics, to_csr

    bundle = Bundle(bundle_dir)
    images, texts, text_image, _ = encode_records(bundle, records)
    dim = len(bundle.words)
    return {"images": len(images), "captions": len(texts),
            **retrieval_metrics(to_csr(images, dim), to_csr(texts, dim), text_image),
            **image_word_accuracy(bundle, records, vectors=images), "bundle_version": bundle.version}


QUERY_MODES = {"text tower": ("encoder", None), "query table, max": ("table", "max"), "query table, sum": ("table", "sum")}
LATENCY_QUERIES = 200


def query_modes(bundle_dir: Path, ws: Workspace, style_limit: int = STYLE_LIMIT) -> dict:
    """The inference-free query mode (``models.query_table``) against the text tower, on one trained
    bundle (no training: the table is made from the bundle itself, ``ensure_query_table``). The same
    image vectors are searched with each mode's caption vectors: t2i R@K in domain, on the held-out
    source and on each style's test images (all of a style never trained on, a seeded sample of at
    most ``style_limit``), word retention and expansion support as for the default, the share of
    captions with a word that gets no weight (no row), and the encoding time of one query (one thread)."""
    import dataclasses
    import statistics

    from lexvla.pipeline import ensure_query_table
    from models.bundle import Bundle
    from models.data.manifest import read_manifest
    from models.evaluate import encode_records, expansion_support, retrieval_metrics, to_csr, word_retention

    ensure_query_table(bundle_dir, ensure_data(ws))
    encoder = Bundle(bundle_dir, device="cpu")
    bundles = {}
    for name, (mode, combine) in QUERY_MODES.items():
        bundle = Bundle(bundle_dir, device="cpu", query_mode=mode)
        if combine and bundle.query_table is not None:
            bundle.query_table = dataclasses.replace(bundle.query_table, meta=bundle.query_table.meta | {"combine": combine})
        bundles[name] = bundle
    sets = {"in-domain": read_manifest(ws.openclipart, split="test"), "held-out": read_manifest(ws.heldout, split="test")}
    for style in STYLES:
        sources = [src for src in SOURCES if src.style == style]
        if [src.name for src in sources] == ["openclipart"]:
            continue  # its test images are the in-domain test
        sets[style] = style_records(ws, style, held_out=not any(src.train for src in sources), limit=style_limit)
    table = bundles["query table, max"].query_table
    assert table is not None
    out: dict = {"table": table.meta, "sets": {}, "modes": {name: {} for name in QUERY_MODES}}
    words_captions: list[str] = []
    words_vectors: dict[str, list] = {name: [] for name in QUERY_MODES}
    for set_name, records in sets.items():
        images, _, text_image, _ = encode_records(encoder, records)
        captions = [c for r in records for c in r.captions]
        out["sets"][set_name] = {"images": len(images), "captions": len(captions)}
        unknown = sum(bool(bundles["query table, max"].unknown_words(c)) for c in captions)
        for name, bundle in bundles.items():
            texts = [v for start in range(0, len(captions), 256)
                     for v in bundle.text_vectors(*bundle.encode_texts_typed(captions[start : start + 256]))]
            result = retrieval_metrics(to_csr(images, len(encoder.words)), to_csr(texts, len(encoder.words)), text_image)
            result |= {"empty_queries": 100.0 * sum(len(v) == 0 for v in texts) / max(1, len(texts)),
                       "unknown_word_captions": 100.0 * unknown / max(1, len(captions)) if name != "text tower" else 0.0}
            out["modes"][name][set_name] = result
            if set_name in ("in-domain", "held-out"):
                words_vectors[name] += texts
        if set_name in ("in-domain", "held-out"):
            words_captions += captions
    together = training_annotations(ws, frozenset(encoder.words))
    for name, bundle in bundles.items():
        out["modes"][name]["retention"] = word_retention(bundle, words_captions, vectors=words_vectors[name])
        out["modes"][name]["expansion"] = expansion_support(bundle, words_captions, words_vectors[name], together)
    queries = [c for r in sets["in-domain"] for c in r.captions][:LATENCY_QUERIES]
    out["latency_ms"] = {}
    for mode in ("encoder", "table"):
        bundle = Bundle(bundle_dir, device="cpu", threads=1, spinning=False, query_mode=mode).warm()
        for text in queries[:10]:
            bundle.encode_texts([text])
        times = []
        for text in queries:
            start = time.perf_counter()
            bundle.encode_texts([text])
            times.append(1000.0 * (time.perf_counter() - start))
        times.sort()
        out["latency_ms"][mode] = {"median": statistics.median(times), "mean": statistics.fmean(times),
                                   "p90": times[int(0.9 * (len(times) - 1))], "queries": len(times)}
    return out


def _query_mode_lines(modes: dict) -> list[str]:
    sets = list(modes["sets"])
    lines = ["| queries | " + " | ".join(f"{s} t2i R@1 / 5 / 10" for s in sets) + " | word retention % | expansion support % "
             "| expansion words per query |", "|---|" + "---|" * (len(sets) + 3)]
    for name, res in modes["modes"].items():
        cells = [" / ".join(f"{res[s][f't2i_R@{k}']:.1f}" for k in (1, 5, 10)) for s in sets]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {res['retention']['retention']:.1f} | "
                     f"{res['expansion']['support_at_10']:.1f} | {res['expansion']['added']:.1f} |")
    return lines


def style_baselines(records: list) -> dict[str, dict]:
    """The zero-training baselines on ``records`` (one CNN pass serves both label baselines)."""
    from models.baselines import (
        imagenet_labels_dense,
        imagenet_labels_lexical,
        imagenet_top_classes,
        random_baseline,
    )

    classes = imagenet_top_classes([r.image for r in records])
    return {"random": random_baseline(records, seed=0),
            "ImageNet labels, MiniLM cosine": imagenet_labels_dense(records, classes=classes),
            "ImageNet labels, exact words": imagenet_labels_lexical(records, classes=classes)}


def leave_one_style_out(ws: Workspace, config: Path, seeds: tuple[int, ...], overrides: dict, untrained: Path,
                        limit: int = STYLE_LIMIT) -> dict[str, dict]:
    """For each style: the default config trained without that style's sources (one bundle per
    seed; a style never trained on, such as photos, uses the default bundle), evaluated on every
    record of the style, beside the untrained priors and the zero-training baselines."""
    out = {}
    for style in STYLES:
        trained_on = any(s.train for s in SOURCES if s.style == style)
        records = style_records(ws, style, held_out=True, limit=limit)
        runs, unfaded = [], []
        for seed in seeds:
            bundle = ensure_default_bundle(ws, config, without_style=style if trained_on else None, **(overrides | {"seed": seed}))
            runs.append(evaluate_style(bundle, records))
            unfaded.append(evaluate_style(derived_bundle(ws, bundle, NO_FAMILIARITY), records))
            log.info("without %s, seed %d: word accuracy %.1f, t2i R@10 %.1f", style, seed, runs[-1]["accuracy_at_5"], runs[-1]["t2i_R@10"])
        out[style] = {"images": len(records), "sources": sorted({s.name for s in SOURCES if s.style == style}),
                      "left_out_of_training": trained_on, TRAINED_WITHOUT: runs, NO_FAMILIARITY: unfaded,
                      UNTRAINED: evaluate_style(untrained, records), **style_baselines(records)}
    return out


def evaluate_baselines(ws: Workspace) -> dict[str, dict]:
    from models.baselines import (
        imagenet_labels_dense,
        imagenet_labels_lexical,
        imagenet_top_classes,
        random_baseline,
    )
    from models.data.manifest import read_manifest

    out: dict[str, dict] = {name: {} for name in BASELINES}
    for where, manifest in (("in_domain", ws.openclipart), ("heldout", ws.heldout)):
        records = read_manifest(manifest, split="test")
        classes = imagenet_top_classes([r.image for r in records])  # one CNN pass serves both label baselines
        out["random"][where] = random_baseline(records, seed=0)
        out["ImageNet labels, MiniLM cosine"][where] = imagenet_labels_dense(records, classes=classes)
        out["ImageNet labels, exact words"][where] = imagenet_labels_lexical(records, classes=classes)
    return out


def _get(result: dict, path: tuple[str, str]) -> float:
    return float(result[path[0]][path[1]])


def aggregate(per_seed: list[dict], paths) -> dict[str, tuple[float, float]]:
    """``label -> (mean, std)`` over seeds (population std; 0 for a single seed)."""
    out = {}
    for path, label in paths:
        values = np.array([_get(r, path) for r in per_seed])
        out[label] = (float(values.mean()), float(values.std()))
    return out


def loso_cell(style: dict, metric: str, model: str = TRAINED_WITHOUT) -> tuple[float, float]:
    """Mean and std over seeds of the models trained without a style (or their ``NO_FAMILIARITY`` exports), on that style."""
    values = np.array([run[metric] for run in style[model]])
    return float(values.mean()), float(values.std())


def targets(trained: dict[str, list[dict]], loso: dict[str, dict], demo: list[dict]) -> list[tuple[str, str, bool]]:
    """The quality targets, each as (target, measured, met)."""
    default = aggregate(trained[DEFAULT], METRICS + WORD_METRICS)
    rows = []
    for style, res in loso.items():
        mean, std = loso_cell(res, "accuracy_at_5")
        prior = res[UNTRAINED]["accuracy_at_5"]
        rows.append((f"{style}: image word accuracy (top 5) >= 50% and >= untrained priors + 20 ({prior:.1f} + 20)",
                     f"{mean:.1f} ± {std:.1f}", mean >= 50.0 and mean >= prior + 20.0))
        for k in ("t2i_R@1", "t2i_R@10"):
            best = max(res[b][k] for b in BASELINES if b != "random")
            mean, std = loso_cell(res, k)
            rows.append((f"{style}: {k} >= 1.25x the better zero-training baseline ({best:.1f})",
                         f"{mean:.1f} ± {std:.1f}", mean >= 1.25 * best))
    mean, std = default["in-domain t2i R@10"]
    rows.append((f"in-domain t2i R@10 >= {IN_DOMAIN_T2I_R10_TARGET:.0f}", f"{mean:.1f} ± {std:.1f}", mean >= IN_DOMAIN_T2I_R10_TARGET))
    mean, _ = default["word retention %"]
    rows.append(("word retention >= 95%", f"{mean:.1f}", mean >= 95.0))
    mean, std = default["query expansion support %"]
    rows.append(("query expansion support >= 30%", f"{mean:.1f} ± {std:.1f}", mean >= 30.0))
    for ex in demo:
        if ex["query"] in DEMO_QUERIES[:3]:
            true = sum(h["dominant_in_caption"] for h in ex["hits"][:5])
            rows.append((f"demo index, '{ex['query']}': each of the top 5 hits' captions name its dominant matched word",
                         f"{true} of 5", true == 5))
    return rows


# ---- figures ---------------------------------------------------------------------------------------
def demo_queries(bundle_dir: Path, ws: Workspace, out: Path, queries: list[str], k: int = 10, shown: int = 5) -> list[dict]:
    """Search the demo's index (every openclipart drawing, as ``lexvla demo`` builds it) with each
    query: its top ``k`` hits with their dominant matched word and whether the hit's own captions and
    keywords hold that word; one figure of the first ``shown`` hits per query."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from indexer.searcher import LexicalSearcher
    from lexvla.demo import build_index
    from models.bundle import Bundle
    from models.data.manifest import read_manifest
    from models.evaluate import record_words
    from models.preprocess import load_image
    from models.vocab import singular

    root = ws.root / "report" / "demo-index"
    build_index(bundle_dir, ws.openclipart, root, None)
    bundle = Bundle(bundle_dir)
    known = set(bundle.words)
    records = {r.id: r for r in read_manifest(ws.openclipart)}
    examples = []
    with LexicalSearcher(root) as searcher:
        fig, axes = plt.subplots(len(queries), shown, figsize=(2.6 * shown, 2.9 * len(queries)))
        for row, query in enumerate(queries):
            qvec = bundle.encode_texts([query])[0].words(bundle.words)
            hits = []
            for h in searcher.search(qvec, k=k):
                top = h.matches[0].word if h.matches else ""
                rec = records.get(h.doc_id)
                words = record_words(rec, known) if rec else set()
                hits.append({"id": h.doc_id, "caption": rec.captions[0] if rec else "", "score": h.score, "dominant": top,
                             "dominant_share": round(h.share(h.matches[0]), 3) if h.matches else 0.0,
                             "dominant_in_caption": bool(top) and (singular(top, known) or top) in words,
                             "matched": [(m.word, round(h.share(m), 3)) for m in h.matches[:5]]})
            examples.append({"query": query, "query_words": dict(list(qvec.items())[:8]), "hits": hits})
            for col in range(shown):
                ax = axes[row, col]
                ax.axis("off")
                record = searcher.document(str(hits[col]["id"])) if col < len(hits) else None
                if record is not None:
                    ax.imshow(load_image(searcher.image_file(record)))
                    label = f"{hits[col]['dominant']} {hits[col]['dominant_share']:.0%}"
                    ax.set_title(f"{query!r}\n{label}" if col == 0 else label, fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "examples.png", dpi=60)
        plt.close(fig)
    return examples


def heatmap_figure(bundle_dir: Path, ws: Workspace, out: Path, n: int = 4) -> None:
    """Where each object's shape word fires in generated scenes (patch maps over the image)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.bundle import Bundle
    from models.data.manifest import read_manifest
    from models.preprocess import load_image

    bundle = Bundle(bundle_dir)
    records = read_manifest(ws.scenes, split="test")[:n]
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n))
    for row, rec in enumerate(records):
        img = load_image(rec.image)
        square, _ = bundle.image_spec.letterbox(img)
        _, patches = bundle.encode_images_dense([img], patches=True)
        words = [o["shape"] for o in rec.meta["objects"]][:2]
        axes[row, 0].imshow(square)
        axes[row, 0].set_title(rec.captions[0], fontsize=8)
        for col in (1, 2):
            ax = axes[row, col]
            ax.axis("off")
            if col - 1 < len(words):
                word = words[col - 1]
                dim = bundle.vocab.index(word)
                assert dim is not None, word  # an image's own words are vocabulary words
                heat = bundle.word_heatmaps(patches[0], [dim])[0]
                ax.imshow(square)
                ax.imshow(heat, cmap="inferno", alpha=0.6, extent=(0, square.width, square.height, 0), interpolation="nearest")
                ax.set_title(f"'{word}'", fontsize=9)
        axes[row, 0].axis("off")
    fig.tight_layout()
    fig.savefig(out / "heatmaps.png", dpi=70)
    plt.close(fig)


def overuse_figure(results: dict[str, dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 5))
    for ax, (name, res) in zip(np.atleast_1d(axes), results.items(), strict=True):
        top = res["in_domain"]["image_top10_overuse"][:20]
        words, freq = zip(*top, strict=True) if top else ((), ())
        ax.barh(range(len(words)), freq)
        ax.set_yticks(range(len(words)), words, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("fraction of test images (top-10 words)")
    fig.tight_layout()
    fig.savefig(out / "overuse.png", dpi=70)
    plt.close(fig)


# ---- markdown ----------------------------------------------------------------------------------------
def _cell(values: tuple[float, float], seeds: int) -> str:
    mean, std = values
    return f"{mean:.1f} ± {std:.1f}" if seeds > 1 else f"{mean:.1f}"


def _rows(trained: dict[str, list[dict]], untrained: dict, baselines: dict | None, paths) -> list[str]:
    labels = [label for _, label in paths]
    lines = ["| model | seeds | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for name, runs in (baselines or {}).items():
        cells = []
        for path, _ in paths:
            cells.append(f"{_get(runs, path):.1f}" if path[0] in runs and path[1] in runs[path[0]] else "–")
        lines.append(f"| {name} | – | " + " | ".join(cells) + " |")
    lines.append(f"| {UNTRAINED} | – | " + " | ".join(f"{_get(untrained, p):.1f}" for p, _ in paths) + " |")
    for name, runs in trained.items():
        agg = aggregate(runs, paths)
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(_cell(agg[label], len(runs)) for label in labels) + " |")
    return lines


def _loso_lines(loso: dict[str, dict]) -> list[str]:
    """The leave-one-style-out table: each style's images, scored by the models trained without it."""
    cols = [("accuracy_at_5", "word accuracy top 5"), ("accuracy_at_10", "top 10"), ("t2i_R@1", "t2i R@1"),
            ("t2i_R@5", "R@5"), ("t2i_R@10", "R@10")]
    lines = ["| style (sources, images) | model | " + " | ".join(c for _, c in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for style, res in loso.items():
        where = f"{style} ({', '.join(res['sources'])}; {res['images']})"
        runs = res[TRAINED_WITHOUT]
        name = TRAINED_WITHOUT if res["left_out_of_training"] else "default (never trained on this style)"
        lines.append(f"| {where} | {name} | " + " | ".join(_cell(loso_cell(res, m), len(runs)) for m, _ in cols) + " |")
        lines.append(f"| | the same, {NO_FAMILIARITY} | " + " | ".join(_cell(loso_cell(res, m, NO_FAMILIARITY), len(runs)) for m, _ in cols) + " |")
        for model in (UNTRAINED, *(b for b in BASELINES if b != "random")):
            lines.append(f"| | {model} | " + " | ".join(f"{res[model][m]:.1f}" if m in res[model] else "–" for m, _ in cols) + " |")
    return lines


def _loso_examples(loso: dict[str, dict]) -> list[str]:
    lines = []
    for style, res in loso.items():
        ex = res[TRAINED_WITHOUT][0]["examples"][:4]
        prior = {e[0]: e[2] for e in res[UNTRAINED]["examples"]}
        lines.append(f"- **{style}**: " + "; ".join(
            f"`{i}` \"{cap}\" -> {', '.join(f'**{w}**' if w in hits else w for w in top)} (priors: {', '.join(prior.get(i, []))})"
            for i, cap, top, hits in ex))
    return lines


def write_markdown(out: Path, meta: dict, trained: dict[str, list[dict]], untrained: dict, baselines: dict,
                   examples: list[dict], loso: dict[str, dict], modes: dict | None = None) -> None:
    first = trained[DEFAULT][0]
    seed0 = {UNTRAINED: untrained} | {name: runs[0] for name, runs in trained.items()}
    md = [
        "# Quality report: the embedded default model",
        "",
        f"Generated by `{meta['command']}` at commit {meta.get('commit', 'unknown')} on {meta['date']} ({meta['machine']}), "
        f"in {meta['minutes']:.1f} minutes.",
        "",
        f"- **Training data**: {meta['train_data']}. Every trained model uses the same config (`{meta['config']}`) "
        "and number of steps; the leave-one-style-out models train without one style's sources, the ablations "
        f"({'run' if meta['ablations'] else 'not run: `lexvla report --ablations`'}) differ in one part each.",
        f"- **In-domain test**: {first['in_domain']['images']} openclipart drawings ({first['in_domain']['captions']} captions: "
        "cleaned titles and keywords, the style of the training captions), never trained on.",
        f"- **Held-out source**: {first['heldout']['images']} OpenMoji drawings with one short caption each (the emoji's "
        "name, e.g. \"crocodile\", \"adhesive bandage\", \"large blue circle\"). No OpenMoji image is ever trained on, and "
        "a quarter of the emoji concepts (chosen by a hash) are removed from the Google training emoji and kept only here: "
        "other artists' drawings of concepts the training data never shows.",
        "- Vectors are evaluated exactly as indexed (top-k words, L2-normalised); R@K in %. Trained models: "
        + (f"mean ± std over seeds {', '.join(map(str, meta['seeds']))}." if len(meta["seeds"]) > 1 else
           f"one seed ({meta['seeds'][0]}): no difference between two rows is shown to be more than seed noise."),
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        *[f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in targets(trained, loso, examples)],
        "",
        "## Pictures of a style never trained on (leave one style out)",
        "",
        "For each style, the default config is trained without that style's sources (seeds "
        f"{', '.join(map(str, meta['seeds']))}) and evaluated on a seeded sample of all of that style's images, none of "
        "which it saw; a style the default never trains on (photos) is scored with the default itself. **Image word accuracy**: "
        "the share of images whose 5 (10) strongest indexed words include a word of their captions or keywords (singular "
        "and plural count as one). Baselines use no training: MobileNetV2's top-5 ImageNet classes, embedded with MiniLM or "
        "matched as words.",
        "",
        *_loso_lines(loso),
        "",
        "Each style's first images, seed 0 of the model trained without it (in bold the words its captions hold), with "
        "the untrained priors' words:",
        "",
        *_loso_examples(loso),
        "",
        "## Demo queries (default model, seed 0, the demo's index of every openclipart drawing)",
        "",
        "Each hit: id, caption, its dominant matched word with that word's share of the score, and whether the hit's own "
        "captions or keywords hold that word.",
        "",
        "![examples](examples.png)",
        "",
        *[line for ex in examples for line in (
            f"**{ex['query']}** -> query words: " + ", ".join(f"{w} {v:.2f}" for w, v in ex["query_words"].items()), "",
            *[f"{n}. `{h['id']}` ({h['caption']}): {h['dominant']} {h['dominant_share']:.0%} "
              f"{'(in its caption)' if h['dominant_in_caption'] else '(**not in its caption**)'}"
              for n, h in enumerate(ex["hits"], start=1)], "")],
        "## Retrieval",
        "",
        *_rows(trained, untrained, baselines, METRICS),
        "",
        "The baselines use no training at all: they are made of the default model's two pretrained parts (MobileNetV2 "
        "with its ImageNet classifier, MiniLM). *Untrained heads* is the default architecture before training: "
        "the caption's own words on the text side and the ImageNet classifier's words on the image side.",
        "",
        "## Words a person sees",
        "",
        *_rows(trained, untrained, None, WORD_METRICS),
        "",
        "- **word retention**: of a caption's words that are vocabulary dimensions, the share that are in its own "
        "query vector (in-domain and held-out captions).",
        "- **image top-10 precision**: of an image's 10 strongest words, the share that are words of its captions or keywords "
        "(singular and plural count as one).",
        "- **most-used top-10 image word**: the largest share of in-domain test images that have one word among their 10 strongest; "
        "**beyond its captions**: the largest share of in-domain test images that have one word among their 10 strongest while "
        "their own captions and keywords lack it (\"icon\" is in the captions of 27% of the test drawings: on those it is no overuse).",
        "- **class prior** (`vision.class_prior_top_k` of the card, 5): the untrained image words are the words of "
        "MobileNetV2's 5 most probable ImageNet classes, weighted by their probabilities (`models.towers.ClassPrior`); "
        "summing all 1000 classes let a symbol the classifier does not know collect \"dog\" from 118 breeds.",
        "- **familiarity** (`familiarity_prototypes` 64, `familiarity_quantiles` [0.05, 0.25] of the training config): "
        "after training, the learned image words are scaled by how close a picture's pooled backbone features lie to "
        "64 centroids of the training images', fully on above the training images' 25th percentile of that cosine and off "
        "below their 5th (`models.train.fit_familiarity`, `models.towers.ImageTower.familiarity`); on a picture unlike "
        "any it learned from, the tower says its prior's words. *no familiarity* is the same weights exported without it.",
        "- **word-rate calibration** (`max_word_rate`, default 0.05): after training, each image word that is among the 10 "
        "strongest words of more than 5% of one training source's images whose captions lack it is scaled down until it no "
        "longer is (`models.train.fit_word_scale`). Every variant but *no word-rate "
        "calibration* has it; that variant is the default's own trained weights of each seed with the calibration undone.",
        "- **caption-word loss** (`word_loss_weight`, default 1.0): during training, an image's softmax over its words must "
        "put its mass on its captions' words (`models.losses.caption_word_loss`); the contrastive loss alone is satisfied by "
        "any code of words two matching vectors share. *no caption-word loss* trains without it.",
        "- **typed-word floor** (`text.exact_floor` of the card, default 0.3): each of the caption's own words weighs at "
        "least 0.3x its query vector's strongest word, and the query keeps it beside its top-k words "
        "(`models.towers.TextTower`, `models.sparse.sparsify`); the learned importance and expansion can rank a typed "
        "word low but not drop it. It holds in training and at search. *no typed-word floor* is the default's own "
        "trained weights of each seed exported with the floor at 0 (top-k alone).",
        "- **relatedness gate** (`text.expansion_min_relatedness` of the card): a word the caption did not type is "
        "added to its query only as far as the frozen MiniLM finds it related to the whole caption: its expansion weight "
        "is scaled by how far the cosine between the caption's pooled state and the word's own (the word read alone) lies "
        "above the threshold (`models.towers.TextTower.relatedness_gate`). It holds in training and at search. "
        "*no relatedness gate* is the default's own trained weights of each seed exported with the gate open.",
        "- **query expansion support**: of a query's 10 strongest words that it did not type (impact >= 1), the share "
        "that people wrote beside one of its typed words on at least two training images' captions or keywords "
        "(\"fruit\" beside \"apple\", not \"shoes\"); a judge independent of MiniLM. **expansion words per query**: how "
        "many such words a query holds (in-domain and held-out captions; `models.evaluate.expansion_support`).",
        f"- PatchDis (random {first['patchdis']['random_mIoU']:.1f}): each object patch of a generated scene gets the shape "
        "word with the highest weight on it.",
        "",
        "Captions whose words were dropped (default, seed 0): "
        + "; ".join(f"\"{c}\" lost {', '.join(w)}" for c, w in first["retention"]["dropped_examples"][:6]) + ".",
        "",
        "Words queries added (default, seed 0, the first in-domain test captions; in bold the words people wrote beside "
        "a typed word on the training images): " + "; ".join(
            f"\"{c}\" -> " + ", ".join(f"**{w}**" if w in hits else w for w in top)
            for c, top, hits in first["expansion"]["examples"]) + ".",
        "",
        *(_query_mode_section(modes) if modes else []),
        "## The 20 words most often among an image's top 10 (in-domain test, seed 0)",
        "",
        "![overuse](overuse.png)",
        "",
        "| model | word (fraction of images) |",
        "|---|---|",
        *[f"| {n} | " + ", ".join(f"{w} {f:.2f}" for w, f in r["in_domain"]["image_top10_overuse"][:20]) + " |"
          for n, r in seed0.items()],
        "",
        "![heatmaps](heatmaps.png)",
        "",
    ]
    (out / "quality-report.md").write_text("\n".join(md))


def _query_mode_section(modes: dict) -> list[str]:
    table, latency, sets = modes["table"], modes["latency_ms"], modes["sets"]
    tower = modes["modes"]["text tower"]
    unknown = modes["modes"]["query table, max"]
    return [
        "## Inference-free queries (query table; default model, seed 0)",
        "",
        f"The same trained bundle with its query vectors looked up instead of computed (`LEXVLA_QUERY_MODE=table`, "
        f"`models.query_table`): {table['word_rows']} vocabulary words and {table['extra_rows']} words that the tokenizer "
        "splits into pieces (of the training captions and WordNet's one-word nouns, verbs and adjectives) each have a row, "
        "the text tower's own output for the word alone "
        f"(its {table['row_k']} strongest words); a query's rows are combined (element-wise max or sum), the typed-word "
        f"floor ({table['exact_floor']}) applies, and the query keeps its top-k and typed words as the text tower's "
        "does. A one-word query gets the text tower's vector; a longer one loses what its words say to each other. "
        f"The service combines by {table['combine']}. "
        "The image vectors are the same in every row. Sets: "
        + ", ".join(f"{name} ({v['images']} images, {v['captions']} captions)" for name, v in sets.items()) + ".",
        "",
        *_query_mode_lines(modes),
        "",
        "Captions with a word that has no row (it gets no weight): "
        + ", ".join(f"{name} {unknown[name]['unknown_word_captions']:.1f}%" for name in sets)
        + "; captions left with an empty vector: " + ", ".join(f"{name} {unknown[name]['empty_queries']:.1f}%" for name in sets)
        + f" (text tower: {max(tower[name]['empty_queries'] for name in sets):.1f}% at most).",
        "",
        f"Encoding one query on this machine (one thread, {latency['encoder']['queries']} in-domain test captions one at a time): "
        f"text tower median {latency['encoder']['median']:.2f} ms (p90 {latency['encoder']['p90']:.2f}), query table median "
        f"{latency['table']['median']:.3f} ms (p90 {latency['table']['p90']:.3f}).",
        "",
    ]


def _machine() -> str:
    """The machine in words: the same config and data train other weights on another machine, so a
    report's numbers belong to the machine that produced them."""
    import torch

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()  # fmt: skip
    return f"{platform.machine()}, {os.cpu_count()} cores, {model}, torch CPU kernels {torch.backends.cpu.get_cpu_capability()}"


def _commit() -> str:
    """The checkout's commit, marked when tracked files differ from it; "unknown" outside git."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=root).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes" if dirty else "")


def _train_data(ws: Workspace) -> str:
    from models.data.manifest import read_manifest

    return ", ".join(f"{len(read_manifest(ws.manifest(s.name), split='train'))} {s.name} ({s.style})" for s in SOURCES if s.train)


def cmd_report(args: argparse.Namespace) -> int:
    started = time.monotonic()
    commit = _commit()  # before the report rewrites its own tracked files under docs/
    ws = Workspace(Path(args.workdir), data_limit=args.data_limit)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ensure_data(ws)
    overrides = {"max_steps": args.max_steps} if args.max_steps else {}
    if args.query_modes_only:
        return query_modes_report(ws, Path(args.config), overrides, out, args.style_limit, commit, started)
    card = json.loads(Path(args.config).read_text())["card"]
    seeds = SEEDS[: args.seeds]
    variants = TRAINED if args.ablations else {DEFAULT: TRAINED[DEFAULT]}
    trained: dict[str, list[dict]] = {}
    default_bundle = None
    for name, variant in variants.items():
        trained[name] = []
        for seed in seeds:
            bundle = ensure_default_bundle(ws, Path(args.config), **(overrides | variant | {"seed": seed}))
            default_bundle = default_bundle or bundle
            trained[name].append(evaluate_variant(bundle, ws, args.patchdis_limit))
            log.info("%s seed %d: held-out t2i R@10 %.1f", name, seed, trained[name][-1]["heldout"]["t2i_R@10"])
            if name == DEFAULT and args.ablations:
                for derived in DERIVED:
                    trained.setdefault(derived, []).append(
                        evaluate_variant(derived_bundle(ws, bundle, derived), ws, args.patchdis_limit))  # fmt: skip
    untrained_dir = untrained_bundle(ws, card)
    untrained = evaluate_variant(untrained_dir, ws, args.patchdis_limit)
    loso = leave_one_style_out(ws, Path(args.config), seeds, overrides, untrained_dir, args.style_limit)
    baselines = evaluate_baselines(ws)
    assert default_bundle is not None  # SEEDS and TRAINED are never empty
    examples = demo_queries(default_bundle, ws, out, DEMO_QUERIES)
    heatmap_figure(default_bundle, ws, out)
    modes = query_modes(default_bundle, ws, args.style_limit)
    overuse_figure({UNTRAINED: untrained} | {n: runs[0] for n, runs in trained.items()}, out)
    command = "lexvla report" + (f" --max-steps {args.max_steps}" if args.max_steps else "")
    command += f" --seeds {args.seeds}" if args.seeds != len(SEEDS) else ""
    command += " --ablations" if args.ablations else ""
    meta = {"command": command, "date": time.strftime("%Y-%m-%d"), "machine": _machine(), "commit": commit,
            "config": Path(args.config).name, "minutes": (time.monotonic() - started) / 60, "train_data": _train_data(ws),
            "seeds": list(seeds), "ablations": bool(args.ablations)}
    write_markdown(out, meta, trained, untrained, baselines, examples, loso, modes)
    (out / "quality-report.json").write_text(json.dumps({"meta": meta, "trained": trained, "untrained": untrained,
                                                         "baselines": baselines, "leave_one_style_out": loso,
                                                         "demo_queries": examples, "query_modes": modes}, indent=1))
    print(f"report: {out / 'quality-report.md'}")
    return 0


def query_modes_report(ws: Workspace, config: Path, overrides: dict, out: Path, style_limit: int, commit: str,
                       started: float) -> int:  # fmt: skip
    """Only the inference-free query section, for the default model (seed 0): ``out/query-modes.md``
    and ``.json`` (minutes, where the whole report takes hours)."""
    bundle = ensure_default_bundle(ws, config, **overrides)
    modes = query_modes(bundle, ws, style_limit)
    meta = {"command": "lexvla report --query-modes-only", "date": time.strftime("%Y-%m-%d"), "machine": _machine(),
            "commit": commit, "bundle": bundle.name, "minutes": (time.monotonic() - started) / 60}
    md = ["# Inference-free queries against the text tower", "",
          f"Generated by `{meta['command']}` on {meta['date']} ({meta['machine']}; commit {meta['commit']}; bundle "
          f"{meta['bundle']}; {meta['minutes']:.0f} minutes). One trained bundle, one run: compare its rows with each other.",
          "", *_query_mode_section(modes)[2:]]  # fmt: skip
    (out / "query-modes.md").write_text("\n".join(md))
    (out / "query-modes.json").write_text(json.dumps({"meta": meta, "query_modes": modes}, indent=1, default=str))
    print(f"report: {out / 'query-modes.md'}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("report", help="train/evaluate the default model, its variants and baselines; write docs/quality-report.md")
    p.add_argument("--out", default="docs")
    p.add_argument("--workdir", default="var")
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--max-steps", type=int)
    p.add_argument("--seeds", type=int, default=len(SEEDS), help=f"seeds per trained variant (at most {len(SEEDS)})")
    p.add_argument("--patchdis-limit", type=int, default=200)
    p.add_argument("--data-limit", type=int, help="a small corpus of each source, for a quick look (not a report)")
    p.add_argument("--style-limit", type=int, default=STYLE_LIMIT, help="images of each held-out style evaluated")
    p.add_argument("--query-modes-only", action="store_true",
                   help="only the query table against the text tower, for the default model: docs/query-modes.md")
    p.add_argument("--ablations", action="store_true",
                   help="also train and evaluate the regulariser, caption-word loss, calibration, floor and gate variants")
    p.set_defaults(func=cmd_report)
