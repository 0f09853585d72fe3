"""The arithmetic of docs/scaling.md: cores for 1,000 queries a second over 100M images, from the
rows ``bench/ann_bench.py`` measured (``docs/data/ann-<docs>-s<shards>.json``; the bench writes them
under ``var/bench/``, and the runs docs/scaling.md quotes are copied there).

Not a test: prints Markdown. For each measured collection and query mode it takes the exact path's
row (with the service's slicing or on one thread, whichever costs less) and the cheapest approximate
row with recall@10 >= ``--recall``: the CPU time one search of the
whole collection costs, Lucene's JVM threads included, and divided by the collection's shards, what
one shard of its size costs. It fits the growth between the two largest shard sizes (cost ~
docs**e) and prices a collection of ``--collection`` documents in shards of each measured size (the
per-shard cost measured; only the shard count is arithmetic) and of ``--shard-docs`` (extrapolated
with the fitted growth when larger than measured). A query costs every shard's search: 1,000 q/s
needs 1,000 x shards x cost cores. The query's own encoding and the merge are left out
(docs/benchmarks.md measures them: the text encoder about 5 ms a query on one core, the query table
about 0.3 ms).

Usage::

    .venv/bin/python bench/scaling.py     # after bench/ann_bench.py --docs 100000, 1000000, 10000000 --shards 4
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data"


def best_rows(rows: dict, mode: str, recall: float) -> tuple[tuple[dict, str], tuple[dict, str] | None]:
    """The exact path's cheapest row (any slicing; every exact row has recall 1) and the approximate
    path's cheapest row reaching ``recall``, each with its setting (``None``: no approximate row reached it)."""

    def exact(key: str) -> bool:
        return key == f"{mode}|exact" or key.startswith(f"{mode}|exact|")

    exacts = [(v["cpu_ms"], k, v) for k, v in rows.items() if exact(k)]
    found = [(v["cpu_ms"], k, v) for k, v in rows.items()
             if k.startswith(f"{mode}|") and not exact(k) and v["recall"] >= recall and "cpu_ms" in v]  # fmt: skip
    _, key, row = min(exacts)
    best_exact = (row, "Lucene" + (f", {key.split('|')[2]}" if key.count("|") == 2 else ""))
    if not found:
        return best_exact, None
    _, key, row = min(found)
    return best_exact, (row, key.split("|", 1)[1].replace("|", " "))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collection", type=float, default=100e6)
    ap.add_argument("--rate", type=float, default=1000.0, help="queries a second")
    ap.add_argument("--recall", type=float, default=0.99)
    ap.add_argument("--shard-docs", type=float, nargs="*", default=[10e6])
    ap.add_argument("--data", type=Path, default=DATA, help="where the ann-<docs>-s<shards>.json files are")
    args = ap.parse_args()
    sizes: dict[int, tuple[int, dict]] = {}  # shard size -> (shards of the measured collection, its rows)
    for f in sorted(args.data.glob("ann-*-s*.json")):
        docs, shards = int(f.stem.split("-")[1]), int(f.stem.split("-s")[-1])
        sizes[docs // shards] = (shards, json.loads(f.read_text()))
    if len(sizes) < 2:
        raise SystemExit("run bench/ann_bench.py at two sizes first (--docs 100000, --docs 1000000)")
    measured = sorted(sizes)
    best: dict[str, float] = {}
    for mode in ("encoder", "table"):
        cost: dict[str, dict[int, float]] = {"exact": {}, "approximate": {}}
        print(f"\n**{mode} queries**, measured (one caller, recall@10 >= {args.recall} for the approximate path):\n")
        print("| documents | shards | path | setting | recall@10 | CPU ms a search | CPU ms a shard | q/s, one caller | p50 ms | p99 ms |")
        print("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|")
        for n in measured:
            shards, rows = sizes[n]
            exact, approx = best_rows(rows, mode, args.recall)
            for path, found in (("exact", exact), ("approximate", approx)):
                if found is None:
                    print(f"| {n * shards:,} | {shards} | approximate | none reached {args.recall} | | | | | | |")
                    continue
                row, setting = found
                cost[path][n] = row["cpu_ms"] / shards / 1000
                print(f"| {n * shards:,} | {shards} | {path} | {setting} | {row['recall']:.3f} | {row['cpu_ms']:.2f} | "
                      f"{row['cpu_ms'] / shards:.2f} | {row['qps']:.0f} | {row['p50']:.2f} | {row['p99']:.2f} |")  # fmt: skip
        print(f"\n**{mode} queries**, {args.collection / 1e6:.0f}M documents at {args.rate:,.0f} q/s:\n")
        print("| path | growth e (cost ~ docs^e) | shard size | shards | core-ms a query | cores | |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for path, by_size in cost.items():
            if len(by_size) < 2:
                print(f"| {path} | | | | | | not measured at two sizes |")
                continue
            a, b = sorted(by_size)[-2:]
            e = math.log(by_size[b] / by_size[a]) / math.log(b / a)
            for shard in sorted({*by_size, *args.shard_docs}):
                per = by_size[shard] if shard in by_size else by_size[b] * (shard / b) ** e
                shards = math.ceil(args.collection / shard)
                cores = args.rate * shards * per
                how = "shard cost measured" if shard in by_size else f"shard cost extrapolated from {b:,} with e"
                print(f"| {path} | {e:.2f} | {shard:,.0f} | {shards:,} | {shards * per * 1000:,.0f} | {cores:,.0f} | {how} |")
                if shard in by_size:  # either path: the exact one reaches any recall
                    best[mode] = min(best.get(mode, math.inf), cores)
    print()
    if "encoder" in best:  # the service's default query mode; the cheaper path; shards of a measured size
        print(f"cores for 1,000 q/s over 100M images at recall@10 >= 0.99: {math.ceil(best['encoder']):,}")
    if "table" in best:
        print(f"\n(with LEXVLA_QUERY_MODE=table queries: {math.ceil(best['table']):,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
