"""Text-to-image quality on the approximate path against the exact one, on a real index.

Not a test: prints a table. Every test-split caption of ``--manifest`` whose image the index holds
is a query (its first caption, as the quality report's in-domain test uses it), searched through
the service's own search (``service.search.Search.search_text``: the encoder or ``--query-mode
table``, the query cuts, the edits) on the exact path and on the approximate path with the
service's ``LEXVLA_ANN_*`` settings (or ``--query-cut`` / ``--heap-factor``). R@1 and R@10: the
share of captions whose image is among the top 1 / 10. Recall@10 against exact: the share of the
exact top-10 the approximate top-10 holds.

Usage::

    .venv/bin/lexvla index --bundle var/bundles/lexvla-mini --input var/data/openclipart/manifest.jsonl \\
        --index var/bench/demo-ann --rebuild --no-progress        # the demo's images, today's structure
    .venv/bin/python bench/ann_quality.py --index var/bench/demo-ann
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "var" / "bundles" / "lexvla-mini")
    ap.add_argument("--index", type=Path, default=ROOT / "var" / "index")
    ap.add_argument("--manifest", type=Path, default=ROOT / "var" / "data" / "openclipart" / "manifest.jsonl")
    ap.add_argument("--query-mode", choices=["encoder", "table"], default="encoder")
    ap.add_argument("--query-cut", type=int, default=None)
    ap.add_argument("--heap-factor", type=float, default=None)
    args = ap.parse_args()

    from indexer.info import read_info
    from indexer.layout import require_generation
    from models.data.manifest import read_manifest
    from service.config import Settings
    from service.engine import Engine
    from service.exceptions import InputError

    overrides = {"bundle": args.bundle, "index": args.index, "redis_url": "", "device": "cpu", "query_mode": args.query_mode,
                 "reload_interval_s": 0}  # fmt: skip
    if args.query_cut is not None:
        overrides["ann_query_cut"] = args.query_cut
    if args.heap_factor is not None:
        overrides["ann_heap_factor"] = args.heap_factor
    settings = Settings(_env_file=None, **overrides)
    info = read_info(require_generation(args.index))
    engine = Engine.load(settings)
    try:
        with engine.searcher.snapshot() as snap:
            held = [r for r in read_manifest(args.manifest, split="test") if snap.document(r.id) is not None]
        found: dict[str, list[list[str]]] = {"exact": [], "approximate": []}
        for record in held:
            for path in found:
                try:
                    hits = engine.search.search_text(record.captions[0], 10, path=path).hits
                except InputError:
                    hits = []
                found[path].append([h.doc_id for h in hits])
    finally:
        engine.close()
    print(f"\n{len(held)} test captions of {args.manifest.parent.name} (first caption each) against {args.index} "
          f"({info.doc_count:,} documents, structure {info.ann}), query mode {args.query_mode}, "
          f"approximate search query_cut {settings.ann_query_cut}, heap_factor {settings.ann_heap_factor}")  # fmt: skip
    print("| path | R@1 | R@10 | recall@10 against exact |")
    print("|---|---:|---:|---:|")
    for path, lists in found.items():
        r1 = 100 * statistics.mean(rec.id in ids[:1] for rec, ids in zip(held, lists, strict=True))
        r10 = 100 * statistics.mean(rec.id in ids for rec, ids in zip(held, lists, strict=True))
        agree = statistics.mean(len(set(a) & set(e)) / len(e) if e else 1.0
                                for a, e in zip(lists, found["exact"], strict=True))  # fmt: skip
        print(f"| {path} | {r1:.1f} | {r10:.1f} | {agree:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
