"""``lexvla index``, ``lexvla index-remove`` and ``lexvla index-info``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.preprocess import DEFAULT_MAX_PIXELS


def register(subparsers) -> None:
    """Add the indexer's subcommands to the ``lexvla`` parser."""
    p = subparsers.add_parser("index", help="encode images with a bundle and publish a Lucene impact index")
    p.add_argument("--bundle", type=Path, required=True, help="exported model bundle directory")
    p.add_argument("--input", type=Path, required=True, help="image folder (recursive) or .jsonl/.csv manifest")
    p.add_argument("--index", type=Path, required=True, help="index root (created if missing)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="image decoding threads")
    p.add_argument("--threads", type=int, default=2, help="Lucene indexing threads")
    p.add_argument("--java-heap", default="1g")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    p.add_argument("--rebuild", action="store_true", help="re-index every input into a fresh generation")
    p.add_argument("--engine", choices=["local", "ray"], default="local", help="where the encode stage runs")
    p.add_argument("--device", default="auto", help="onnxruntime device: auto, cpu or cuda")
    p.add_argument("--image-root", type=Path,
                   help="store image paths relative to this folder (default: the index's recorded root, else the "
                        "deepest folder holding every input); the service resolves them against LEXVLA_IMAGE_ROOT")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_index)

    r = subparsers.add_parser("index-remove", help="delete documents by id and publish a new generation")
    r.add_argument("--index", type=Path, required=True)
    r.add_argument("ids", nargs="+", metavar="ID")
    r.set_defaults(func=_remove)

    i = subparsers.add_parser("index-info", help="print the published generation's facts as JSON")
    i.add_argument("--index", type=Path, required=True)
    i.set_defaults(func=_info)


def _index(args: argparse.Namespace) -> int:
    from indexer.job import IndexJobConfig, run_index_job

    cfg = IndexJobConfig(
        bundle=args.bundle, input=args.input, root=args.index, batch_size=args.batch_size,
        decode_workers=args.workers, index_threads=args.threads, java_heap=args.java_heap,
        max_pixels=args.max_pixels, rebuild=args.rebuild, engine=args.engine, device=args.device,
        progress=not args.no_progress, image_root=args.image_root,
    )  # fmt: skip
    rep = run_index_job(cfg)
    print(
        f"scanned {rep.scanned}, already indexed {rep.skipped_existing}, encoded {rep.encoded} "
        f"({rep.replaced} of them changed files), rejected {len(rep.rejected)} "
        f"({sum(r.known for r in rep.rejected)} known, not decoded again), "
        f"published {rep.generation or 'nothing new'}, documents {rep.doc_count}"
    )
    return 0


def _remove(args: argparse.Namespace) -> int:
    from indexer.job import remove_documents

    rep = remove_documents(args.index, args.ids)
    print(f"removed {rep.removed}, published {rep.generation or 'nothing'}, documents {rep.doc_count}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from indexer import layout
    from indexer.metadata import META_FILE, MetadataReader

    gen = layout.require_generation(args.index)
    reader = MetadataReader(gen / META_FILE)
    try:
        print(json.dumps(reader.info() | {"generation": gen.name}, indent=2, sort_keys=True))
    finally:
        reader.close()
    return 0
