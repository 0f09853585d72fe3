"""Sharded build and search at a size this machine can run (not a test: prints tables).

For each shard count, publishes the same synthetic documents (``search_bench.synthetic_rows``: ~64
words a document drawn Zipf-like over the lexvla-mini vocabulary, impacts 1..300) with
:func:`indexer.publish.publish_rows`, then measures:

* build: seconds to fill the parts (JSON + metadata), to build the Lucene shards, to assemble and
  publish; Lucene docs/s per indexing core (docs / Lucene seconds / cores the build used);
* size: bytes per document on disk (Lucene, metadata);
* search (k=10, 32-word quantised queries, 1 thread): p50/p99 of one shard's Lucene search, of
  the merged search over every shard (bare and with explanations), and on how many queries the
  merged top-10 equals the first shard count's (ids and scores);
* memory: RSS of a fresh process serving one shard (a replica) and one serving every shard,
  after opening and answering the queries.

Usage::

    .venv/bin/python bench/shard_bench.py [--docs 100000] [--shards 1 4] [--engine local|ray] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from search_bench import DEFAULT_BUNDLE, export_mini, synthetic_rows  # noqa: E402

from indexer.job_config import IndexEngine  # noqa: E402

MEMORY_PROBE = r"""
import json, sys, time
from indexer.sharded import ShardSearcher, ShardedSearcher
root, shard, queries = sys.argv[1], int(sys.argv[2]), json.load(open(sys.argv[3]))
searcher = ShardedSearcher(root) if shard < 0 else ShardSearcher(root, shard)
with searcher.snapshot() as snap:
    for q in queries:
        snap.search_vector(q, 10)
rss = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")][0]
print(json.dumps({"rss_mb": rss / 1024}))
"""


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p))


def timed(fn, queries) -> tuple[list[float], list]:
    for q in queries[:20]:
        fn(q)
    lat, out = [], []
    for q in queries:
        t0 = time.perf_counter()
        out.append(fn(q))
        lat.append((time.perf_counter() - t0) * 1000)
    return lat, out


def folder_bytes(path: Path, name: str) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and name in f.parts + (f.name,))


def memory(root: Path, shard: int, queries_file: Path) -> float:
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(root), str(shard), str(queries_file)],
                         capture_output=True, text=True, cwd=ROOT, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])["rss_mb"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--shards", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--engine", type=IndexEngine, choices=list(IndexEngine), default=IndexEngine.LOCAL)
    ap.add_argument("--threads", type=int, default=2, help="indexing cores (Anserini threads in all)")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--work", type=Path, default=None, help="where the indexes go (a temporary folder by default)")
    args = ap.parse_args()
    from indexer import layout
    from indexer.info import read_info
    from indexer.publish import publish_rows
    from indexer.sharded import ShardedSearcher
    from models.bundle import Bundle

    bundle_dir = DEFAULT_BUNDLE
    if not (bundle_dir / "bundle.json").exists():
        export_mini(bundle_dir)
    bundle = Bundle(bundle_dir, verify=False)
    images = [("", 0, 0)]
    queries = [r.impacts for r in synthetic_rows(bundle.words, args.queries, images, terms=32, seed=1)]
    work = args.work or Path(tempfile.mkdtemp(prefix="shard_bench_"))
    queries_file = work / "queries.json"
    work.mkdir(parents=True, exist_ok=True)
    queries_file.write_text(json.dumps(queries))
    if args.engine is IndexEngine.RAY:
        import ray

        ray.init(num_cpus=args.threads, include_dashboard=False, log_to_driver=False)
    cores = min(args.threads, os.cpu_count() or 1)
    build_rows, search_rows, reference = [], [], None
    try:
        for n in args.shards:
            root = work / f"shards{n}"
            shutil.rmtree(root, ignore_errors=True)
            t0 = time.perf_counter()
            rep = publish_rows(root, bundle, synthetic_rows(bundle.words, args.docs, images), shards=n, engine=args.engine,
                               index_threads=args.threads, java_heap="1g", check_vocabulary=False)  # fmt: skip
            total = time.perf_counter() - t0
            gen = layout.require_generation(root)
            info = read_info(gen)
            sec = rep.seconds
            build_rows.append(
                f"| {n} | {args.engine} | {sec['shards']:.1f} | {sec['lucene']:.1f} | {sec['assemble']:.1f} | {total:.1f} | "
                f"{args.docs / sec['lucene'] / cores:,.0f} | {args.docs / total:,.0f} | "
                f"{folder_bytes(gen, layout.LUCENE_DIR) / args.docs:.0f} | {folder_bytes(gen, 'meta.sqlite') / args.docs:.0f} | "
                f"{min(info.shard_docs):,}-{max(info.shard_docs):,} |"
            )
            with ShardedSearcher(root) as searcher, searcher.snapshot() as snap:
                shard_lat, _ = timed(lambda q: snap.shards[0].top(q, 10), queries)
                merged_lat, merged = timed(lambda q: snap.top(q, 10), queries)
                explained_lat, _ = timed(lambda q: snap.search_vector(q, 10), queries)
            if reference is None:  # the first shard count given is what the others must equal
                reference, same = merged, "reference"
            else:
                same = f"{sum(a == b for a, b in zip(merged, reference, strict=True))}/{len(queries)}"
            replica = memory(root, 0, queries_file)
            whole = memory(root, -1, queries_file) if n > 1 else replica
            search_rows.append(
                f"| {n} | {pct(shard_lat, 50):.2f} / {pct(shard_lat, 99):.2f} | {pct(merged_lat, 50):.2f} / "
                f"{pct(merged_lat, 99):.2f} | {pct(explained_lat, 50):.2f} / {pct(explained_lat, 99):.2f} | "
                f"{same} | {replica:.0f} | {whole:.0f} |"
            )
            print(f"done: {n} shards", file=sys.stderr, flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.docs:,} synthetic documents (~64 words, impacts 1..300), {cores} indexing cores, engine {args.engine}")
    print("| shards | engine | fill s | Lucene s | assemble + publish s | total s | Lucene docs/s per core | "
          "docs/s end to end | Lucene bytes/doc | metadata bytes/doc | docs per shard |")  # fmt: skip
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print("\n".join(build_rows))
    print(f"\nSearch, k=10, {len(queries)} queries of 32 words, one thread, in-process shards (p50 / p99 ms):")
    print("| shards | one shard (Lucene) | merged, bare | merged, explained | top-10 = the first row's top-10 | "
          "RSS serving 1 shard MB | RSS serving all MB |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(search_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
