"""Indexer benchmark (not a test): encode rate, Lucene indexing rate, index size, search latency.

    .venv/bin/python bench/index_bench.py [--bundle var/bundles/lexvla-mini-untrained] [--sizes 10000 100000]
        [--builders lexvla anserini]

Prints a Markdown table. Synthetic documents have ~64 terms drawn (Zipf-like) from the bundle's
vocabulary with impacts in 1..300; queries are ~32-term vectors drawn the same way. Each builder
(``indexer.lucene.build_impact_index``) indexes the same files, one row each, side by side.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from indexer import layout
from indexer.encode import encode_local, scan_inputs
from indexer.lucene import BUILDERS, build_impact_index, write_shards
from indexer.metadata import DocRow


def _peak_rss_mb() -> tuple[float, float]:
    """Peak RSS of this process and of its largest finished child (the java indexer), in MB."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def bench_encode(bundle_path: Path, n: int, tmp: Path) -> float:
    from models.bundle import Bundle

    rng = np.random.default_rng(0)
    folder = tmp / "imgs"
    folder.mkdir()
    for i in range(n):
        img = Image.new("RGB", (320, 240), tuple(int(c) for c in rng.integers(0, 255, 3)))
        ImageDraw.Draw(img).ellipse((20, 20, 200, 180), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        img.save(folder / f"{i:05d}.jpg", quality=90)
    bundle = Bundle(bundle_path)
    items = scan_inputs(folder)
    list(encode_local(bundle, items[:8], batch_size=8))  # warm-up: session creation
    t0 = time.perf_counter()
    done = sum(len(rows) for rows, _ in encode_local(bundle, items, batch_size=32, workers=2))
    return done / (time.perf_counter() - t0)


def synthetic_rows(words: list[str], n: int, terms: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, len(words) + 1) ** 0.8
    p /= p.sum()
    for i in range(n):
        ids = np.unique(rng.choice(len(words), size=terms, p=p))
        yield DocRow(f"doc{i:07d}", "", 0, 0, {words[j]: int(v) for j, v in zip(ids, rng.integers(1, 300, ids.size), strict=True)}, {})


def bench_index(shards: Path, n: int, tmp: Path, builder: str) -> dict:
    index = tmp / f"ix{n}-{builder}"
    t0 = time.perf_counter()
    build_impact_index(shards, index / layout.LUCENE_DIR, threads=2, heap="2g", builder=builder)
    secs = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in (index / layout.LUCENE_DIR).iterdir())
    return {"docs_per_s": n / secs, "secs": secs, "bytes_per_doc": size / n, "index": index}


def bench_search(index: Path, words: list[str], queries: int = 300) -> tuple[float, float]:
    """p50/p99 ms of the Java search path the service uses (quantised query in, ids + scores out)."""
    from indexer.jvm import call_in_jvm
    from indexer.searcher import lucene_top, open_lucene

    reader, searcher = call_in_jvm(open_lucene, index / layout.LUCENE_DIR)
    qs = [r.impacts for r in synthetic_rows(words, queries, terms=32, seed=1)]
    for q in qs[:20]:
        lucene_top(searcher, q, 10)
    lat = []
    for q in qs:
        t0 = time.perf_counter()
        lucene_top(searcher, q, 10)
        lat.append((time.perf_counter() - t0) * 1000)
    call_in_jvm(reader.close)
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bundle", type=Path, default=Path("var/bundles/lexvla-mini-untrained"))
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--builders", nargs="+", default=list(BUILDERS), choices=BUILDERS)
    args = ap.parse_args()
    from models.bundle import Bundle

    words = Bundle(args.bundle, verify=False).words
    tmp = Path(tempfile.mkdtemp(prefix="index_bench_"))
    try:
        rate = bench_encode(args.bundle, args.images, tmp)
        print(f"| stage | value |\n|---|---|\n| decode+encode ({args.images} imgs 320x240 -> 224 px, batch 32, 2 threads) | {rate:.1f} img/s |")
        for n in args.sizes:
            shards = tmp / f"shards{n}"
            write_shards(synthetic_rows(words, n), shards)
            for builder in args.builders:
                r = bench_index(shards, n, tmp, builder)
                p50, p99 = bench_search(r["index"], words)
                print(f"| Lucene impact indexing ({builder}), {n:,} docs x ~64 terms | {r['docs_per_s']:,.0f} docs/s ({r['secs']:.1f} s) |")
                print(f"| index size ({builder}), {n:,} docs | {r['bytes_per_doc']:.0f} bytes/doc |")
                print(f"| search k=10, 32-term query, {n:,} docs ({builder}): p50 / p99 | {p50:.2f} / {p99:.2f} ms |")
                shutil.rmtree(r["index"])
            shutil.rmtree(shards)
        own, child = _peak_rss_mb()
        print(f"| peak RSS: python (encode + JVM searcher) / java indexer | {own:.0f} MB / {child:.0f} MB |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
