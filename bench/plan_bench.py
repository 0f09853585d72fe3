"""The index job's planning stage at scale: the driver's memory while it splits a manifest of N
inputs into shards, then the process's with the shards planned by the local engine's threads.

Not a test: prints a table. The manifest (``--inputs`` JSONL lines, every path one real image, ids
``img/NNNNNNNNN``) is written once under ``var/bench/plan-N/``. Nothing is published and nothing is
encoded: this measures what :func:`indexer.job.run_index_job` does before its first image
(``indexer.planner``), for a new index.

Usage::

    .venv/bin/python bench/plan_bench.py --inputs 10000000 --shards 16
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def peak_mb() -> float:
    """This process's peak resident memory so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=1_000_000)
    ap.add_argument("--shards", type=int, default=16)
    args = ap.parse_args()

    from indexer.job_engine import LocalEngine
    from indexer.manifest import CHUNK, iter_inputs
    from indexer.planner import plan_args, split_inputs, todo_chunks

    folder = ROOT / "var" / "bench" / f"plan-{args.inputs}"
    manifest = folder / "manifest.jsonl"
    image = ROOT / "docs" / "examples.png"
    if not manifest.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = manifest.with_suffix(".tmp")
        with tmp.open("w") as fh:
            for i in range(args.inputs):
                fh.write(json.dumps({"id": f"img/{i:09d}", "path": str(image), "n": i}) + "\n")
        tmp.replace(manifest)
    work = folder / "work"
    shutil.rmtree(work, ignore_errors=True)
    start_mb = peak_mb()
    t0 = time.perf_counter()
    split = split_inputs(iter_inputs(manifest), work, args.shards)
    split_s, split_mb = time.perf_counter() - t0, peak_mb()
    t1 = time.perf_counter()
    plans = LocalEngine.plan_shards(plan_args(work, args.shards, None))
    plan_s, plan_mb = time.perf_counter() - t1, peak_mb()
    t2 = time.perf_counter()
    queued = sum(len(chunk) for chunk in todo_chunks(work, args.shards, CHUNK))
    read_s, read_mb = time.perf_counter() - t2, peak_mb()
    assert queued == split.scanned == sum(p.queued for p in plans) == args.inputs
    shutil.rmtree(work)
    print(f"\n{args.inputs:,} inputs in a JSONL manifest, {args.shards} shards, a new index (nothing published), "
          f"planning threads: the local engine's ({len(plans)} shards, at most as many at once as cores)")  # fmt: skip
    print("| stage | runs on | s | inputs/s | peak RSS of the process after it, MB |")
    print("|---|---|---:|---:|---:|")
    print(f"| (before) | | | | {start_mb:,.0f} |")
    print(f"| split the manifest into per-shard files | driver | {split_s:.1f} | {args.inputs / split_s:,.0f} | {split_mb:,.0f} |")
    print(f"| plan every shard | planner threads | {plan_s:.1f} | {args.inputs / plan_s:,.0f} | {plan_mb:,.0f} |")
    print(f"| read the to-do lists, chunk by chunk | engine | {read_s:.1f} | {args.inputs / read_s:,.0f} | {read_mb:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
