"""The approximate path against the exact one: recall@10, latency per core, memory, build time and size.

Not a test: prints a table and keeps every measured row in ``var/bench/ann-<docs>.json``, so a run
stopped part-way goes on where it stopped (``--fresh`` measures again).

The collection is :mod:`bench.search_bench`'s synthetic one (``--docs`` documents of 64 words,
words and impacts drawn from the postings of the demo index, built once under ``var/bench/``;
``--shards`` per generation). The queries are the 300 held-out captions of ``search_bench``,
encoded and quantised exactly as ``/search`` sends them, in each ``--query-modes`` mode (the text
encoder, the query table), with the service's query cuts.

Per query mode, two rows for the exact path (Lucene through ``Snapshot.top``: every match scored;
with the service's slicing, and with each search on one thread, ``LEXVLA_SEARCH_SLICE_DOCS=0``)
and one per approximate build (``--builds``) and search setting (``--searches``): the same
``Snapshot.top`` with ``ann=``, on a structure built with that setting for every shard. Recall@10
is against the exact path's top-10 (a tie at the 10th score counts as found). One caller; p50 and
p99 in ms; CPU ms is the process's CPU time per search (Lucene's JVM threads included: a search of a
large Lucene index scores its segments on several threads, so its wall time understates what it
costs), the figure ``bench/scaling.py`` prices cores with. Build seconds and bytes on disk (Seismic reads them into memory
when a shard opens) are per build.

Usage::

    .venv/bin/lexvla demo --exit     # once: the trained default bundle and the demo index
    .venv/bin/python bench/ann_bench.py --docs 100000
    .venv/bin/python bench/ann_bench.py --docs 1000000 --shards 4
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.search_bench import (  # noqa: E402
    BENCH_DIR,
    DEFAULT_BUNDLE,
    SOURCE_INDEX,
    IndexDocs,
    build_record,
    caption_queries,
    closed_loop,
    prepare_synthetic,
    recall,
    service_queries,
    table_answers,
)  # fmt: skip

BUILDS = {
    "default": {},
    "exhaustive": {"keep": 1.0, "summary_energy": 1.0},  # AnnBuild.exhaustive()
    "e1.0": {"summary_energy": 1.0},
    "all-e0.4": {"keep": 1.0, "summary_energy": 0.4},
    "all-e0.6": {"keep": 1.0, "summary_energy": 0.6},
    "keep0.3-e0.6": {"keep": 0.3, "summary_energy": 0.6},
    "keep0.5-e0.4": {"keep": 0.5, "summary_energy": 0.4},
    "keep0.5-e0.6": {"keep": 0.5, "summary_energy": 0.6},
    "keep0.7-e0.4": {"keep": 0.7, "summary_energy": 0.4},
    "keep0.7-e0.6": {"keep": 0.7, "summary_energy": 0.6},
    "keep0.5-e0.8": {"keep": 0.5, "summary_energy": 0.8},
    "keep0.7-e0.8": {"keep": 0.7, "summary_energy": 0.8},
    "keep0.3-e0.8": {"keep": 0.3, "summary_energy": 0.8},
    "cap3k-e0.8": {"keep": 0.5, "max_postings": 3000, "summary_energy": 0.8},
    "cap6k-e0.8": {"keep": 0.5, "max_postings": 6000, "summary_energy": 0.8},
    "cap6k-e0.9": {"keep": 0.5, "max_postings": 6000, "summary_energy": 0.9},
    "cap6k-e1.0": {"keep": 0.5, "max_postings": 6000, "summary_energy": 1.0},
    "cap3k-e1.0": {"keep": 0.5, "max_postings": 3000, "summary_energy": 1.0},
}
SEARCHES = ["16:0.9", "16:0.8", "16:0.7", "32:0.9", "32:0.7", "32:0.5"]


def build_variant(gen: Path, name: str, params) -> tuple[list[Path], float, int]:
    """Every shard's structure built with ``params`` in folders of its own (the shard's metadata
    linked in); returns the folders, the build seconds (0 when built by an earlier run) and bytes.
    A shard whose own structure (built with the generation) has these settings serves as it is."""
    from indexer.ann import ANN_DIR, ensure_ann
    from indexer.generation import ann_current
    from indexer.layout import shard_dirs
    from indexer.metadata import META_FILE

    folders, seconds = [], 0.0
    for shard in shard_dirs(gen):
        if ann_current(shard, params):
            folders.append(shard)
            continue
        folder = BENCH_DIR / "ann" / gen.parent.parent.name / gen.name / name / shard.name
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / META_FILE).exists():
            (folder / META_FILE).symlink_to(shard / META_FILE)
        t = time.perf_counter()
        if not ensure_ann(folder, params, {"generation": gen.name}):
            seconds += time.perf_counter() - t
        folders.append(folder)
    size = sum(f.stat().st_size for folder in folders for f in (folder / ANN_DIR).iterdir())
    return folders, seconds, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--query-modes", nargs="+", default=["encoder", "table"], choices=["encoder", "table"])
    ap.add_argument("--builds", nargs="+", default=list(BUILDS), choices=list(BUILDS))
    ap.add_argument("--searches", nargs="+", default=SEARCHES, help="QUERY_CUT:HEAP_FACTOR settings of the approximate search")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--requests", type=int, default=600, help="timed searches per row (the queries, round robin)")
    ap.add_argument("--fresh", action="store_true", help="measure again rows an earlier run kept")
    args = ap.parse_args()

    from indexer.ann import AnnBuild, AnnIndex, AnnSearch
    from indexer.layout import require_generation
    from indexer.lucene_search import set_slice_docs
    from indexer.sharded import ShardedSearcher
    from models.bundle import Bundle

    bundle = Bundle(DEFAULT_BUNDLE, verify=False)
    out = BENCH_DIR / f"ann-{args.docs}-s{args.shards}.json"
    earlier = json.loads(out.read_text()) if out.is_file() else {}
    kept = {k: v for k, v in earlier.items() if k.startswith("_build|")} if args.fresh else earlier  # build times stay
    t0 = time.perf_counter()
    root = prepare_synthetic(DEFAULT_BUNDLE, args.docs, IndexDocs(bundle.words, SOURCE_INDEX), 64, shards=args.shards)
    gen = require_generation(root)
    kept.setdefault("_index", {"root": str(root), "generation": gen.name, "prepared_s": round(time.perf_counter() - t0, 1)})
    if build_record(root).is_file() and "build" not in kept["_index"]:
        kept["_index"]["build"] = json.loads(build_record(root).read_text())
    texts, _ = table_answers(DEFAULT_BUNDLE, caption_queries(args.queries))
    queries = {mode: service_queries(DEFAULT_BUNDLE, bundle.config.quant_scale, texts, mode) for mode in args.query_modes}

    def measure(search, qs) -> dict:
        """closed_loop's row of one caller plus the CPU time a search costs (warm-up calls counted)."""
        cpu = time.process_time()
        row = closed_loop(search, qs, 1, args.requests)
        return row | {"cpu_ms": (time.process_time() - cpu) * 1000 / (len(qs) + args.requests)}

    def save(key: str, row: dict) -> None:
        kept[key] = row
        out.write_text(json.dumps(kept, indent=1, sort_keys=True))

    with ShardedSearcher(root) as searcher, searcher.snapshot() as snap:
        shards = [s._gen for s in snap.shards]  # the opened shards, whose structure each build replaces
        truth = {mode: [snap.top(q, 10) for q in qs] for mode, qs in queries.items()}
        for mode, qs in queries.items():
            key = f"{mode}|exact"
            if key not in kept:
                save(key, measure(lambda q: snap.top(q, 10), qs) | {"recall": 1.0})
        for name in args.builds:
            params = AnnBuild(**BUILDS[name])
            folders, build_s, size = build_variant(gen, name, params)
            for g, folder in zip(shards, folders, strict=True):
                g.ann = AnnIndex(folder)
            info = kept.get(f"_build|{name}", {})
            save(f"_build|{name}", {"params": params.to_json(), "build_s": build_s or info.get("build_s", 0.0), "bytes": size})
            for setting in args.searches:
                cut, factor = setting.split(":")
                ann = AnnSearch(query_cut=int(cut), heap_factor=float(factor))
                for mode, qs in queries.items():
                    key = f"{mode}|{name}|{setting}"
                    if key in kept:
                        continue
                    found = [snap.top(q, 10, ann=ann) for q in qs]
                    rec = statistics.mean(recall(a, e) for a, e in zip(found, truth[mode], strict=True))
                    save(key, measure(lambda q, ann=ann: snap.top(q, 10, ann=ann), qs) | {"recall": rec})
            for g in shards:
                g.ann = None
    # the exact path with each search on one thread (LEXVLA_SEARCH_SLICE_DOCS=0): slower for a lone
    # query, cheaper in CPU, which is what a loaded server pays
    todo = [mode for mode in queries if f"{mode}|exact|one thread" not in kept]
    if todo:
        set_slice_docs(0)
        try:
            with ShardedSearcher(root) as searcher, searcher.snapshot() as snap:
                for mode in todo:
                    save(f"{mode}|exact|one thread", measure(lambda q: snap.top(q, 10), queries[mode]) | {"recall": 1.0})
        finally:
            set_slice_docs(None)
    print_table(kept, args.docs, args.shards, len(texts))
    return 0


def print_table(kept: dict, docs: int, shards: int, queries: int) -> None:
    index = kept["_index"]
    print(f"\n{docs:,} synthetic documents in {shards} shard(s) ({index['generation']}), {queries} held-out captions, "
          f"k=10, one caller (CPU ms: the process's CPU time a search costs)")  # fmt: skip
    print("| query mode | path | build | query cut : heap factor | recall@10 | q/s | p50 ms | p99 ms | CPU ms |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for key, row in sorted(kept.items()):
        if key.startswith("_"):
            continue
        mode, *rest = key.split("|")
        path, build, setting = ("exact", "", rest[1] if len(rest) > 1 else "") if rest[0] == "exact" else ("approximate", rest[0], rest[1])
        print(f"| {mode} | {path} | {build} | {setting} | {row['recall']:.3f} | {row['qps']:.0f} | {row['p50']:.2f} | "
              f"{row['p99']:.2f} | {row.get('cpu_ms', float('nan')):.2f} |")  # fmt: skip
    print("\n| build | settings | build s | MB on disk |")
    print("|---|---|---:|---:|")
    for key, row in sorted(kept.items()):
        if key.startswith("_build|"):
            print(f"| {key.split('|')[1]} | {row['params']} | {row['build_s']:.1f} | {row['bytes'] / 1e6:.1f} |")
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
