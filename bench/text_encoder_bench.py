"""The int8 text tower against the fp32 one: query encoding speed and retrieval quality.

Not a test: prints two tables. Quantises a copy of the bundle's text encoder (``quantize_text_encoder``,
onnxruntime's dynamic int8), then

* times ``encode_texts_dense`` per query at batch 1 and at batch 32 (what the micro-batcher sends
  under load), onnxruntime on the CPU with its default threads;
* evaluates R@1/5/10 both ways on the evaluation sets (in-domain: the openclipart test split;
  held-out: the openmoji test split), image vectors from the same bundle either way.

The int8 tower is worth serving (``LEXVLA_TEXT_PRECISION=int8``) if no R@10 drops by more than
``--bar`` points (0.5).

Usage::

    .venv/bin/python bench/text_encoder_bench.py --bundle var/bundles/lexvla-mini [--root var]
    .venv/bin/python bench/text_encoder_bench.py --bundle var/bundles/lexvla-mini --profile   # time by op type
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.search_bench import QUERIES  # noqa: E402


def per_query_ms(bundle, batch: int, seconds: float = 2.0) -> float:
    texts = (QUERIES * (batch // len(QUERIES) + 1))[:batch]
    bundle.encode_texts_dense(texts)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        bundle.encode_texts_dense(texts)
        n += 1
    return (time.perf_counter() - t) / n / batch * 1000


def op_profile(bundle, path: Path, runs: int = 300) -> list[tuple[str, int, float]]:
    """``(op type, nodes, mean us per query)`` of the text graph at ``path`` for one query, from
    onnxruntime's own profiler (graph optimisation as the service sets it), slowest first."""
    import json
    from collections import Counter

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(path.parent / "ort-profile")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    ids, mask = bundle.text_preprocessor.batch([QUERIES[0]])
    for _ in range(runs):
        session.run(None, {"input_ids": ids, "attention_mask": mask})
    events = json.loads(Path(session.end_profiling()).read_text())
    spent: Counter = Counter()
    nodes: dict[str, set[str]] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"]["op_name"]
            spent[op] += e["dur"]
            nodes.setdefault(op, set()).add(e["name"])
    return [(op, len(nodes[op]), us / runs) for op, us in spent.most_common()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "var" / "bundles" / "lexvla-mini")
    ap.add_argument("--root", type=Path, default=ROOT / "var", help="workspace holding data/<source>/manifest.jsonl")
    ap.add_argument("--limit", type=int, default=0, help="records per evaluation set (0: all)")
    ap.add_argument("--bar", type=float, default=0.5, help="largest R@10 drop (points) that keeps int8")
    ap.add_argument("--profile", action="store_true", help="only print where the fp32 graph spends a one-query run, by op type")
    args = ap.parse_args()

    from lexvla.pipeline import Workspace
    from models.bundle import Bundle, quantize_text_encoder
    from models.data.manifest import read_manifest
    from models.evaluate import encode_records, evaluate_retrieval

    work = Path(tempfile.mkdtemp(prefix="text-int8-"))
    try:
        copy = work / "bundle"
        shutil.copytree(args.bundle, copy)  # the given bundle is left as it is
        if args.profile:
            rows = op_profile(Bundle(copy, device="cpu"), copy / "text_encoder.onnx")
            total = sum(us for _, _, us in rows)
            print(f"\nText encoder of {args.bundle.name}, one query ({QUERIES[0]!r}), onnxruntime profiler, CPU: "
                  f"{total / 1000:.2f} ms in {sum(n for _, n, _ in rows)} nodes")
            print("| op type | nodes | us per query | share |\n|---|---:|---:|---:|")
            for op, n, us in rows[:15]:
                print(f"| {op} | {n} | {us:.0f} | {100 * us / total:.0f}% |")
            return 0
        t = time.perf_counter()
        quantize_text_encoder(copy)
        made = time.perf_counter() - t
        bundles = {p: Bundle(copy, device="cpu", spinning=False, text_precision=p) for p in ("fp32", "int8")}
        sizes = {"fp32": (copy / "text_encoder.onnx").stat().st_size, "int8": (copy / "text_encoder.int8.onnx").stat().st_size}

        print(f"\nText encoder of {args.bundle.name} ({bundles['fp32'].version}), CPU; int8 made in {made:.0f} s")
        print("| precision | file MB | ms/query, batch 1 | ms/query, batch 32 |\n|---|---:|---:|---:|")
        for p, b in bundles.items():
            print(f"| {p} | {sizes[p] / 1e6:.0f} | {per_query_ms(b, 1):.2f} | {per_query_ms(b, 32):.2f} |")

        ws = Workspace(args.root)
        sets = {"in-domain (openclipart test)": ws.openclipart, "held-out (openmoji test)": ws.heldout}
        print(f"\nRetrieval, fp32 -> int8 text tower (bar: R@10 drop <= {args.bar} points)")
        print("| set | metric | fp32 | int8 | change |\n|---|---|---:|---:|---:|")
        worst = 0.0
        for name, manifest in sets.items():
            records = read_manifest(manifest, split="test")
            records = records[: args.limit] if args.limit else records
            images = None
            result = {}
            for p, b in bundles.items():
                enc = encode_records(b, records)
                images = images or enc[0]  # the image tower is the same: reuse fp32's image vectors
                result[p] = evaluate_retrieval(b, records, encoded=(images, *enc[1:]))
            for metric in ("t2i_R@1", "t2i_R@5", "t2i_R@10", "i2t_R@1", "i2t_R@5", "i2t_R@10"):
                a, b = result["fp32"][metric], result["int8"][metric]
                if metric.endswith("@10"):
                    worst = max(worst, a - b)
                print(f"| {name}, {len(records)} images | {metric} | {a:.1f} | {b:.1f} | {b - a:+.1f} |")
        verdict = "within" if worst <= args.bar else "outside"
        print(f"\nlargest R@10 drop: {worst:.2f} points: {verdict} the {args.bar}-point bar")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
