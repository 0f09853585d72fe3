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

from lexvla.pipeline import DEFAULT_CONFIG, Workspace, ensure_data, ensure_default_bundle

log = logging.getLogger(__name__)
EXAMPLE_QUERIES = ["a red apple", "a dog", "a man riding a horse", "a blue bird", "a car", "a yellow star and a blue circle"]
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
}
REGULARIZER_VARIANTS = ("FLOPs regulariser", "no penalty")  # what the overuse penalty is compared with
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
    (("expansion", "support_at_10"), "query expansion support %"), (("expansion", "added"), "expansion words per query"),
    (("in_domain", "image_top10_max_share"), "most-used top-10 image word, % of images"),
    (("in_domain", "image_top10_max_share_beyond_captions"), "most-used beyond its captions, % of images"),
    (("patchdis", "mIoU"), "PatchDis mIoU"),
]
PREVIOUS_IN_DOMAIN_T2I_R10 = 36.8  # the first release's default, for the "not worse" target


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
        "expansion": expansion_support(bundle, captions, enc_test[1] + enc_held[1],
                                       training_annotations(ws, frozenset(bundle.words))),
        "patchdis": evaluate_patchdis(bundle, read_manifest(ws.scenes, split="test")[:patchdis_limit]),
        "bundle_version": bundle.version,
        "top_k": {"image": bundle.config.image_top_k, "text": bundle.config.text_top_k},
    }


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


def targets(trained: dict[str, list[dict]], untrained: dict, baselines: dict[str, dict]) -> list[tuple[str, str, bool]]:
    """The issue's targets, each as (target, measured, met)."""
    default = aggregate(trained[DEFAULT], METRICS + WORD_METRICS)
    best = {k: max(baselines[b]["heldout"][k] for b in BASELINES if b != "random") for k in ("t2i_R@1", "t2i_R@10")}
    rows = []
    for k in ("t2i_R@1", "t2i_R@10"):
        mean, std = default[f"held-out {k.replace('_', ' ')}"]
        rows.append((f"held-out {k} >= 2x the better zero-training baseline ({best[k]:.1f})",
                     f"{mean:.1f} +- {std:.1f}", mean >= 2 * best[k]))
    mean, _ = default["word retention %"]
    rows.append(("word retention >= 95%", f"{mean:.1f}", mean >= 95.0))
    share = max(r["in_domain"]["image_top10_max_share_beyond_captions"] for r in trained[DEFAULT])
    seed0 = trained[DEFAULT][0]["in_domain"]
    word = seed0["image_top10_overuse"][0]
    beyond = seed0["image_top10_beyond_captions"][:1]
    rows.append(("no top-10 image word on more than 10% of test images whose own captions and keywords lack it",
                 f"max {share:.1f}% of images (seed 0: most used '{word[0]}' on {100 * word[1]:.1f}%"
                 + (f"; beyond its captions '{beyond[0][0]}' on {100 * beyond[0][1]:.1f}%, {100 * beyond[0][3]:.1f}% without it "
                    f"in their captions)" if beyond else ")"),
                 share <= 10.0))
    mean, std = default["in-domain t2i R@10"]
    rows.append((f"in-domain t2i R@10 not worse than the first release ({PREVIOUS_IN_DOMAIN_T2I_R10})",
                 f"{mean:.1f} +- {std:.1f}", mean >= PREVIOUS_IN_DOMAIN_T2I_R10))
    label = "held-out t2i R@10"
    others = {n: aggregate(trained[n], METRICS)[label] for n in REGULARIZER_VARIANTS if n in trained}
    d_mean, d_std = default[label]
    margin = min(d_mean - m for m, _ in others.values())
    spread = max([d_std] + [s for _, s in others.values()])
    rows.append(("overuse penalty beats FLOPs and no penalty on the held-out source by more than the seeds' spread",
                 f"margin {margin:+.1f} vs spread {spread:.1f} (" + ", ".join(f"{n} {m:.1f}" for n, (m, _) in others.items()) + ")",
                 margin > spread))
    return rows


# ---- figures ---------------------------------------------------------------------------------------
def example_figure(bundle_dir: Path, ws: Workspace, out: Path, queries: list[str]) -> list[dict]:
    """Search an index of the test split with each query; one PNG of the top images per query."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from indexer.job import IndexJobConfig, run_index_job
    from indexer.searcher import LexicalSearcher
    from models.bundle import Bundle
    from models.data.manifest import read_manifest
    from models.evaluate import content_words, record_words
    from models.preprocess import load_image
    from models.vocab import singular

    test = read_manifest(ws.openclipart, split="test")
    manifest = ws.root / "report" / "test-images.jsonl"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("".join(json.dumps({"id": r.id, "path": r.image, "caption": r.captions[0]}) + "\n" for r in test))
    root = ws.root / "report" / "index"
    run_index_job(IndexJobConfig(bundle=bundle_dir, input=manifest, root=root, rebuild=True, progress=False))
    bundle = Bundle(bundle_dir)
    known = set(bundle.words)
    test_words = [record_words(r, known) for r in test]  # each test caption's words, parsed once
    examples = []
    with LexicalSearcher(root) as searcher:
        fig, axes = plt.subplots(len(queries), 4, figsize=(12, 3.2 * len(queries)))
        for row, query in enumerate(queries):
            qvec = bundle.encode_texts([query])[0].words(bundle.words)
            hits = searcher.search(qvec, k=4)
            typed = content_words(query, bundle.vocab)
            # how many test images a perfect answer could show: captions that hold every typed word
            relevant = sum(all((singular(w, known) or w) in words for w in typed) for words in test_words)
            examples.append({"query": query, "query_words": dict(list(qvec.items())[:8]), "typed": typed, "relevant": relevant, "hits": [
                {"id": h.doc_id, "caption": searcher.document(h.doc_id).meta.get("caption", ""), "score": h.score,
                 "matched": [(m.word, round(h.share(m), 3)) for m in h.matches[:5]]} for h in hits]})
            for col in range(4):
                ax = axes[row, col]
                ax.axis("off")
                if col < len(hits):
                    ax.imshow(load_image(searcher.image_file(searcher.document(hits[col].doc_id))))
                    words = ", ".join(w for w, _ in examples[-1]["hits"][col]["matched"][:3])
                    ax.set_title(f"{query!r}\n{words}" if col == 0 else words, fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "examples.png", dpi=70)
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
                heat = bundle.word_heatmaps(patches[0], [bundle.vocab.index(word)])[0]
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


def write_markdown(out: Path, meta: dict, trained: dict[str, list[dict]], untrained: dict, baselines: dict,
                   examples: list[dict]) -> None:
    first = trained[DEFAULT][0]
    seed0 = {UNTRAINED: untrained} | {name: runs[0] for name, runs in trained.items()}
    md = [
        "# Quality report: the embedded default model",
        "",
        f"Generated by `{meta['command']}` at commit {meta.get('commit', 'unknown')} on {meta['date']} ({meta['machine']}), "
        f"in {meta['minutes']:.1f} minutes.",
        "",
        f"- **Training data**: {meta['train_data']}. Every trained model uses the same config (`{meta['config']}`), "
        "data and number of steps; only the regulariser, the caption-word loss, the word-rate calibration, the typed-word "
        "floor, the relatedness gate and the seed differ.",
        f"- **In-domain test**: {first['in_domain']['images']} openclipart drawings ({first['in_domain']['captions']} captions: "
        "cleaned titles and keywords, the style of the training captions), never trained on.",
        f"- **Held-out source**: {first['heldout']['images']} OpenMoji drawings with one short caption each (the emoji's "
        "name, e.g. \"crocodile\", \"adhesive bandage\", \"large blue circle\"). No OpenMoji image is ever trained on, and "
        "a quarter of the emoji concepts (chosen by a hash) are removed from the Google training emoji and kept only here: "
        "other artists' drawings of concepts the training data never shows.",
        "- Vectors are evaluated exactly as indexed (top-k words, L2-normalised); R@K in %. Trained variants: mean ± std over "
        f"seeds {', '.join(map(str, SEEDS))}.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        *[f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in targets(trained, untrained, baselines)],
        "",
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
        "## Example queries (default model, seed 0, index of the in-domain test split)",
        "",
        "![examples](examples.png)",
        "",
    ]
    for ex in examples:
        md.append(f"**{ex['query']}** -> query words: " + ", ".join(f"{w} {v:.2f}" for w, v in ex["query_words"].items())
                  + f". Test images whose captions hold {' and '.join(ex['typed'])}: {ex['relevant']}.")
        md.append("")
        for h in ex["hits"]:
            md.append(f"- `{h['id']}` ({h['caption']}): " + ", ".join(f"{w} {s:.0%}" for w, s in h["matched"]))
        md.append("")
    (out / "quality-report.md").write_text("\n".join(md))


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
    from models.data.emoji import DATASOURCE_SETS
    from models.data.manifest import read_manifest

    emoji = {f"{s.capitalize()} emoji": ws.emoji_set(s) for s in DATASOURCE_SETS}
    names = {"openclipart": ws.openclipart, **emoji, "generated scenes": ws.scenes}
    return ", ".join(f"{len(read_manifest(m, split='train'))} {n}" for n, m in names.items())


def cmd_report(args: argparse.Namespace) -> int:
    started = time.monotonic()
    commit = _commit()  # before the report rewrites its own tracked files under docs/
    ws = Workspace(Path(args.workdir))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ensure_data(ws)
    overrides = {"max_steps": args.max_steps} if args.max_steps else {}
    card = json.loads(Path(args.config).read_text())["card"]
    seeds = SEEDS[: args.seeds]
    trained: dict[str, list[dict]] = {}
    default_bundle = None
    for name, variant in TRAINED.items():
        trained[name] = []
        for seed in seeds:
            bundle = ensure_default_bundle(ws, Path(args.config), **(overrides | variant | {"seed": seed}))
            default_bundle = default_bundle or bundle
            trained[name].append(evaluate_variant(bundle, ws, args.patchdis_limit))
            log.info("%s seed %d: held-out t2i R@10 %.1f", name, seed, trained[name][-1]["heldout"]["t2i_R@10"])
            if name == DEFAULT:
                for derived in DERIVED:
                    trained.setdefault(derived, []).append(
                        evaluate_variant(derived_bundle(ws, bundle, derived), ws, args.patchdis_limit))  # fmt: skip
    untrained = evaluate_variant(untrained_bundle(ws, card), ws, args.patchdis_limit)
    baselines = evaluate_baselines(ws)
    examples = example_figure(default_bundle, ws, out, EXAMPLE_QUERIES)
    heatmap_figure(default_bundle, ws, out)
    overuse_figure({UNTRAINED: untrained} | {n: runs[0] for n, runs in trained.items()}, out)
    command = "lexvla report" + (f" --max-steps {args.max_steps}" if args.max_steps else "")
    command += f" --seeds {args.seeds}" if args.seeds != len(SEEDS) else ""
    meta = {"command": command, "date": time.strftime("%Y-%m-%d"), "machine": _machine(), "commit": commit,
            "config": Path(args.config).name, "minutes": (time.monotonic() - started) / 60, "train_data": _train_data(ws)}
    write_markdown(out, meta, trained, untrained, baselines, examples)
    (out / "quality-report.json").write_text(json.dumps({"meta": meta, "trained": trained, "untrained": untrained,
                                                         "baselines": baselines, "examples": examples}, indent=1))
    print(f"report: {out / 'quality-report.md'}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("report", help="train/evaluate the default model, its variants and baselines; write docs/quality-report.md")
    p.add_argument("--out", default="docs")
    p.add_argument("--workdir", default="var")
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--max-steps", type=int)
    p.add_argument("--seeds", type=int, default=len(SEEDS), help=f"seeds per trained variant (at most {len(SEEDS)})")
    p.add_argument("--patchdis-limit", type=int, default=200)
    p.set_defaults(func=cmd_report)
