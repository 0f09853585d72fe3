"""Indexing benchmark (not a test): real images end to end, ``--engine local`` against ``--engine ray``.

    LD_PRELOAD=$(.venv/bin/python -c 'from indexer.jvm import jsig_library; print(jsig_library())') \\
        .venv/bin/python bench/ray_index_bench.py --images 1000 --engine local ray --shards 2

Draws ``--images`` pictures (``lexvla.testing.shape_images``: 160-208 px PNGs), exports the
untrained ``lexvla-mini`` bundle unless ``--bundle`` is given, and runs the real index job once per
engine into a fresh root, printing one Markdown row each: documents per second from the start of
the job to the published generation, and the job's own stage times. Ray runs on a local cluster of
``--cpus`` CPUs started before the clock starts (its start time is printed apart).
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from indexer.job import run_index_job
from indexer.job_config import IndexEngine, IndexJobConfig
from lexvla.testing import SHAPE_COLORS, SHAPE_NAMES, shape_images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--engine", nargs="+", type=IndexEngine, choices=list(IndexEngine), default=list(IndexEngine))
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bundle", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ray-index-bench-") as tmp_name:
        tmp = Path(tmp_name)
        bundle = args.bundle or _export_mini(tmp / "bundle")
        folder = tmp / "imgs"
        paths = shape_images(folder, math.ceil(args.images / (len(SHAPE_COLORS) * len(SHAPE_NAMES))))
        for extra in paths[args.images :]:
            extra.unlink()
        print("| engine | images | shards | docs/s end to end | encode s | shards (fill or seal) s | Lucene s | assemble s | total s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for engine in args.engine:
            if engine is IndexEngine.RAY:
                import ray

                t0 = time.perf_counter()
                ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
                print(f"<!-- ray.init: {time.perf_counter() - t0:.1f} s -->")
            cfg = IndexJobConfig(bundle=bundle, input=folder, root=tmp / f"ix-{engine}", batch_size=args.batch_size,
                                 shards=args.shards, engine=engine, progress=False, device="cpu")  # fmt: skip
            t0 = time.perf_counter()
            rep = run_index_job(cfg)
            total = time.perf_counter() - t0
            s = {k: round(v, 1) for k, v in rep.seconds.items()}
            print(f"| {engine} | {rep.doc_count} | {rep.shards} | {rep.doc_count / total:.1f} | {s.get('encode')} | "
                  f"{s.get('shards')} | {s.get('lucene')} | {s.get('assemble')} | {total:.1f} |", flush=True)  # fmt: skip
            if engine is IndexEngine.RAY:
                ray.shutdown()
        print(json.dumps({"images": args.images, "bundle": str(bundle)}))


def _export_mini(out: Path) -> Path:
    from models.export import export_bundle
    from models.model import LexVLA
    from models.registry import load_card

    export_bundle(LexVLA(load_card("lexvla-mini")), out)
    return out


if __name__ == "__main__":
    main()
