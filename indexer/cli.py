"""``lexvla index``, ``lexvla index-remove`` and ``lexvla index-info``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models.preprocess import DEFAULT_MAX_PIXELS


def register(subparsers) -> None:
    """Add the indexer's subcommands to the ``lexvla`` parser."""
    p = subparsers.add_parser("index", help="encode images with a bundle and publish a Lucene impact index")
    p.add_argument("--bundle", type=Path, required=True, help="exported model bundle directory")
    p.add_argument("--input", required=True,
                   help="image folder (recursive), or a .jsonl/.csv/.parquet manifest: a path or an fsspec URL (s3://, gs://, file://)")
    p.add_argument("--index", type=Path, required=True, help="index root (created if missing)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--part-rows", type=int, default=256,
                   help="with --engine ray: documents each encode worker writes per part batch")
    p.add_argument("--workers", type=int, default=2, help="image decoding threads")
    p.add_argument("--threads", type=int, default=2, help="Lucene indexing threads")
    p.add_argument("--java-heap", default="1g")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    p.add_argument("--rebuild", action="store_true", help="re-index every input into a fresh generation")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="where encoding and the shard builds run: local threads or the Ray cluster")
    p.add_argument("--shards", type=int, default=None,
                   help="split the index into N shards by a hash of the id (default: the published index's count, 1 for a new one)")
    p.add_argument("--device", default="auto", help="onnxruntime device: auto, cpu or cuda")
    p.add_argument("--image-root", type=Path,
                   help="store image paths relative to this folder (default: the index's recorded root, else the "
                        "deepest folder holding every input); the service resolves them against LEXVLA_IMAGE_ROOT")
    p.add_argument("--ann", choices=["default", "exhaustive", "none"],
                   help="each shard's structure for approximate search (indexer/ann.py): default settings, exhaustive "
                        "(every posting, whole summaries: slower, for checks) or none (default: the published index's, "
                        "else default; changing it needs --rebuild)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_index)

    r = subparsers.add_parser("index-remove", help="delete documents by id and publish a new generation")
    r.add_argument("--index", type=Path, required=True)
    r.add_argument("ids", nargs="+", metavar="ID")
    r.set_defaults(func=_remove)

    e = subparsers.add_parser(
        "encode", help="export an index's (or a folder's) sparse vectors for other engines: JsonVectorCollection, _bulk NDJSON"
    )
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--index", type=Path, help="index root: export the published generation's stored vectors")
    src.add_argument("--input", help="image folder (recursive) or .jsonl/.csv/.parquet manifest (path or fsspec URL) to encode (needs --bundle)")
    e.add_argument("--bundle", type=Path, help="model bundle that encodes --input")
    e.add_argument("--output", type=Path, required=True, help="a new or empty folder")
    e.add_argument("--weights", choices=["impact", "float"], default="impact",
                   help="integer impacts as the index stores them (Anserini -impact), or impact / quant_scale")  # fmt: skip
    e.add_argument("--bulk-index", metavar="NAME", help="also write bulk.ndjson for Elasticsearch/OpenSearch index NAME")
    e.add_argument("--bulk-field", default="vector", help="the document field of the vectors in bulk.ndjson")
    e.add_argument("--field-type", choices=["rank_features", "sparse_vector"], default="rank_features",
                   help="the field's type in mapping.json: rank_features (OpenSearch, Elasticsearch), sparse_vector (Elasticsearch 8.11+)")  # fmt: skip
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--workers", type=int, default=2, help="image decoding threads")
    e.add_argument("--device", default="auto", help="onnxruntime device: auto, cpu or cuda")
    e.set_defaults(func=_encode)

    i = subparsers.add_parser("index-info", help="print the published generation's facts as JSON")
    i.add_argument("--index", type=Path, required=True)
    i.set_defaults(func=_info)


def _index(args: argparse.Namespace) -> int:
    from indexer.job import run_index_job
    from indexer.job_config import IndexEngine, IndexJobConfig

    cfg = IndexJobConfig(
        bundle=args.bundle, input=args.input, root=args.index, batch_size=args.batch_size, part_rows=args.part_rows,
        decode_workers=args.workers, index_threads=args.threads, java_heap=args.java_heap,
        max_pixels=args.max_pixels, rebuild=args.rebuild, engine=IndexEngine(args.engine), device=args.device,
        progress=not args.no_progress, shards=args.shards, image_root=args.image_root, ann=_ann_build(args.ann),
    )  # fmt: skip
    rep = run_index_job(cfg)
    print(
        f"scanned {rep.scanned}, already indexed {rep.skipped_existing}, encoded {rep.encoded} "
        f"({rep.replaced} of them changed files), rejected {len(rep.rejected)} "
        f"({sum(r.known for r in rep.rejected)} known, not decoded again), "
        f"published {rep.generation or 'nothing new'}, documents {rep.doc_count}"
        + (f" in {rep.shards} shards ({len(rep.reused_shards)} already built)" if rep.shards > 1 else "")
    )
    return 0


def _ann_build(choice: str | None):
    """``--ann`` as an ``IndexJobConfig.ann``."""
    from indexer.ann import AnnBuild

    return {None: "base", "default": AnnBuild(), "exhaustive": AnnBuild.exhaustive(), "none": None}[choice]


def _remove(args: argparse.Namespace) -> int:
    from indexer.publish import remove_documents

    rep = remove_documents(args.index, args.ids)
    print(f"removed {rep.removed}, published {rep.generation or 'nothing'}, documents {rep.doc_count}")
    return 0


def _encode(args: argparse.Namespace) -> int:
    from indexer.export import BulkTarget, export_vectors, folder_rows, index_rows
    from indexer.info import bundle_facts

    bulk = BulkTarget(args.bulk_index, args.bulk_field, args.field_type) if args.bulk_index else None
    rejected: list = []
    if args.index is not None:
        if args.bundle is not None:
            raise ValueError("--bundle is for --input; an index's vectors are exported as they are stored")
        rows, facts, close = index_rows(args.index)
    else:
        if args.bundle is None:
            raise ValueError("--input needs --bundle (the model that encodes the images)")
        from models.bundle import Bundle

        bundle = Bundle(args.bundle, device=args.device)
        rows = folder_rows(bundle, args.input, args.batch_size, args.workers, rejected)
        facts, close = {"source": f"folder {args.input}", **bundle_facts(bundle)}, (lambda: None)
    try:
        rep = export_vectors(rows, args.output, facts, args.weights, bulk, rejected)
    finally:
        close()
    for r in rep.rejected:
        print(f"rejected {r.doc_id}: {r.reason}", file=sys.stderr)
    print(f"exported {rep.documents} vectors ({args.weights}) in {len(rep.shards)} shards to {args.output}"
          + (f", bulk.ndjson for index {bulk.index}" if bulk else "") + f"; rejected {len(rep.rejected)}")  # fmt: skip
    return 0


def _info(args: argparse.Namespace) -> int:
    from indexer import layout
    from indexer.info import read_info

    gen = layout.require_generation(args.index)
    print(json.dumps(read_info(gen).to_json() | {"generation": gen.name}, indent=2, sort_keys=True))
    return 0
