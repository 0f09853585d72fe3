"""``lexvla report``: the quality report of the default model, written into ``docs/``.

Trains (or reuses) the default bundle and its baselines on the same data and steps, evaluates
every one on the held-out test split, and writes ``docs/quality-report.md`` with its figures and
``docs/quality-report.json`` with the raw numbers. Every number in the report comes from the run
that wrote it.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

from lexvla.pipeline import DEFAULT_CONFIG, Workspace, ensure_data, ensure_default_bundle

log = logging.getLogger(__name__)
EXAMPLE_QUERIES = ["a red apple", "a penguin", "a car", "a flag", "a yellow star and a blue circle"]

# name -> (description, training-config overrides; None means untrained heads)
VARIANTS: dict[str, tuple[str, dict | None]] = {
    "lexvla-mini (overuse penalty)": ("the default: contrastive + overuse penalty", {}),
    # The penalty weights are inert without a regulariser; pinned so a weight change reuses this run.
    "no penalty": ("contrastive loss only", {"regularizer": "none", "reg_weight_image": 0.0002, "reg_weight_text": 0.001}),
    "FLOPs regulariser": ("contrastive + FLOPs instead of the overuse penalty", {"regularizer": "flops"}),
    "untrained heads": ("the same architecture before training", None),
}


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


def evaluate_variant(bundle_dir: Path, ws: Workspace, patchdis_limit: int) -> dict:
    from models.bundle import Bundle
    from models.data.manifest import read_manifest
    from models.evaluate import evaluate_patchdis, evaluate_retrieval

    bundle = Bundle(bundle_dir)
    result = evaluate_retrieval(bundle, read_manifest(ws.openclipart, split="test"))
    val = evaluate_retrieval(bundle, read_manifest(ws.openclipart, split="val"))
    result["val"] = {k: v for k, v in val.items() if "R@" in k}
    result["patchdis"] = evaluate_patchdis(bundle, read_manifest(ws.scenes, split="test")[:patchdis_limit])
    result["bundle_version"] = bundle.version
    result["top_k"] = {"image": bundle.config.image_top_k, "text": bundle.config.text_top_k}
    return result


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
    from models.preprocess import load_image

    test = read_manifest(ws.openclipart, split="test")
    manifest = ws.root / "report" / "test-images.jsonl"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("".join(json.dumps({"id": r.id, "path": r.image, "caption": r.captions[0]}) + "\n" for r in test))
    root = ws.root / "report" / "index"
    run_index_job(IndexJobConfig(bundle=bundle_dir, input=manifest, root=root, rebuild=True, progress=False))
    bundle = Bundle(bundle_dir)
    examples = []
    with LexicalSearcher(root) as searcher:
        fig, axes = plt.subplots(len(queries), 4, figsize=(12, 3.2 * len(queries)))
        for row, query in enumerate(queries):
            qvec = bundle.encode_texts([query])[0].words(bundle.words)
            hits = searcher.search(qvec, k=4)
            examples.append({"query": query, "query_words": dict(list(qvec.items())[:8]), "hits": [
                {"id": h.doc_id, "caption": searcher.document(h.doc_id).meta.get("caption", ""), "score": h.score,
                 "matched": [(m.word, round(m.contribution / h.score, 3)) for m in h.matches[:5]]} for h in hits]})
            for col in range(4):
                ax = axes[row, col]
                ax.axis("off")
                if col < len(hits):
                    ax.imshow(load_image(searcher.document(hits[col].doc_id).path))
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
        words, freq = zip(*res["image_overuse"][:20], strict=True) if res["image_overuse"] else ((), ())
        ax.barh(range(len(words)), freq)
        ax.set_yticks(range(len(words)), words, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("fraction of test images")
    fig.tight_layout()
    fig.savefig(out / "overuse.png", dpi=70)
    plt.close(fig)


# ---- markdown ----------------------------------------------------------------------------------------
def _table(results: dict[str, dict], keys: list[str]) -> str:
    lines = ["| model | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for name, res in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{res[k]:.1f}" for k in keys) + " |")
    return "\n".join(lines)


def write_markdown(out: Path, meta: dict, results: dict[str, dict], examples: list[dict]) -> None:
    retrieval = ["t2i_R@1", "t2i_R@5", "t2i_R@10", "i2t_R@1", "i2t_R@5", "i2t_R@10"]
    first = next(iter(results.values()))
    md = [
        "# Quality report: the embedded default model",
        "",
        f"Generated by `{meta['command']}` on {meta['date']} ({meta['machine']}), in {meta['minutes']:.1f} minutes.",
        f"Test split: {first['images']} openclipart drawings with {first['captions']} captions, never seen in training. "
        f"Every model below was trained with the same config (`{meta['config']}`), data and number of steps; "
        "only the regulariser differs. Vectors are evaluated exactly as indexed (top-k words, L2-normalised).",
        "",
        "## Retrieval (R@K, %)",
        "",
        _table(results, retrieval),
        "",
        "A bag-of-words baseline (caption words against image titles) is left out: the captions of this corpus "
        "*are* cleaned titles and keywords, so it would match them to themselves.",
        "",
        "Validation split (260 drawings), t2i R@10: "
        + ", ".join(f"{n} {r['val']['t2i_R@10']:.1f}" for n, r in results.items()) + ".",
        "",
        "## Sparsity (active words per vector)",
        "",
        f"The index keeps the top {first['top_k']['image']} image / {first['top_k']['text']} query words; "
        "before that cut the vectors are wider.",
        "",
        "| model | per image, before top-k | per text, before top-k | per image, indexed | per text, query |",
        "|---|---|---|---|---|",
        *[f"| {n} | {r['image_active_before_top_k']:.0f} | {r['text_active_before_top_k']:.0f} | "
          f"{r['image_active']['mean_active']:.1f} | {r['text_active']['mean_active']:.1f} |" for n, r in results.items()],
        "",
        "## Overuse: the 20 words active in the most test images",
        "",
        "![overuse](overuse.png)",
        "",
        "| model | most used image words (fraction of images) |",
        "|---|---|",
        *[f"| {n} | " + ", ".join(f"{w} {f:.2f}" for w, f in r["image_overuse"][:12]) + " |" for n, r in results.items()],
        "",
        "## PatchDis on generated scenes (mIoU, %)",
        "",
        "Each object patch is assigned the shape word with the highest lexical weight on it; random assigns a shape uniformly.",
        "",
        "| model | mIoU | random |",
        "|---|---|---|",
        *[f"| {n} | {r['patchdis']['mIoU']:.1f} | {r['patchdis']['random_mIoU']:.1f} |" for n, r in results.items()],
        "",
        "![heatmaps](heatmaps.png)",
        "",
        "## Example queries (default model, index of the test split)",
        "",
        "![examples](examples.png)",
        "",
    ]
    for ex in examples:
        md.append(f"**{ex['query']}** -> query words: " + ", ".join(f"{w} {v:.2f}" for w, v in ex["query_words"].items()))
        md.append("")
        for h in ex["hits"]:
            md.append(f"- `{h['id']}` ({h['caption']}): " + ", ".join(f"{w} {s:.0%}" for w, s in h["matched"]))
        md.append("")
    (out / "quality-report.md").write_text("\n".join(md))


def cmd_report(args: argparse.Namespace) -> int:
    started = time.monotonic()
    ws = Workspace(Path(args.workdir))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ensure_data(ws)
    overrides = {"max_steps": args.max_steps} if args.max_steps else {}
    card = json.loads(Path(args.config).read_text())["card"]
    results, bundles = {}, {}
    for name, (_, variant) in VARIANTS.items():
        bundle = untrained_bundle(ws, card) if variant is None else ensure_default_bundle(ws, Path(args.config), **(overrides | variant))
        bundles[name] = bundle
        results[name] = evaluate_variant(bundle, ws, args.patchdis_limit)
        log.info("%s: t2i R@10 %.1f", name, results[name]["t2i_R@10"])
    default = next(iter(bundles.values()))
    examples = example_figure(default, ws, out, EXAMPLE_QUERIES)
    heatmap_figure(default, ws, out)
    overuse_figure(results, out)
    meta = {"command": "lexvla report" + (f" --max-steps {args.max_steps}" if args.max_steps else ""),
            "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "config": Path(args.config).name, "minutes": (time.monotonic() - started) / 60}
    write_markdown(out, meta, results, examples)
    (out / "quality-report.json").write_text(json.dumps({"meta": meta, "results": results, "examples": examples}, indent=1))
    print(f"report: {out / 'quality-report.md'}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("report", help="train/evaluate the default model and its baselines; write docs/quality-report.md")
    p.add_argument("--out", default="docs")
    p.add_argument("--workdir", default="var")
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--max-steps", type=int)
    p.add_argument("--patchdis-limit", type=int, default=200)
    p.set_defaults(func=cmd_report)
