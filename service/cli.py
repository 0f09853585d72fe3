"""``lexvla serve`` and ``lexvla search``."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from models.preprocess import InputError


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", type=Path, help="model bundle directory (LEXVLA_BUNDLE)")
    p.add_argument("--index", type=Path, help="index root (LEXVLA_INDEX)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="ONNX device (LEXVLA_DEVICE)")
    p.add_argument("--query-mode", choices=["encoder", "table"],
                   help="encoder: the text tower; table: the bundle's query table, no text model (LEXVLA_QUERY_MODE)")


def register(subparsers) -> None:
    """Add ``serve`` and ``search`` to the ``lexvla`` command."""
    serve = subparsers.add_parser("serve", help="run the HTTP search service")
    _add_common(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, help="uvicorn worker processes (LEXVLA_WORKERS)")
    serve.add_argument("--redis-url", help="LEXVLA_REDIS_URL; an empty string disables the cache")
    serve.set_defaults(func=run_serve)

    search = subparsers.add_parser(
        "search", help="search an index from the command line (no server): one query, or a topics file into a run"
    )
    _add_common(search)
    search.add_argument("query", nargs="?", help="text in Lucene's syntax: +word required, -word excluded, word^2 boosted")
    search.add_argument("--topics", type=Path, help="topics file: 'qid<TAB>text' lines, or JSONL with qid and query")
    search.add_argument("--output", type=Path, help="write the results here (default: standard output)")
    search.add_argument("--format", choices=["text", "trec", "json"],
                        help="text (one query's default), trec (a topics file's default: qid Q0 docid rank score tag), "
                             "json (one object; JSON lines for topics)")  # fmt: skip
    search.add_argument("--hits", "-k", dest="hits", type=int, default=10, help="hits per query")
    search.add_argument("--run-tag", default="lexvla", help="the TREC run's tag column")
    search.add_argument("--path", dest="search_path", choices=["exact", "approximate"],
                        help="LEXVLA_SEARCH_PATH: Lucene (every match scored) or each shard's approximate structure")  # fmt: skip
    search.set_defaults(func=run_search)


def _settings(args: argparse.Namespace):
    from service.config import Settings

    overrides = {
        key: getattr(args, key)
        for key in ("bundle", "index", "device", "query_mode", "workers", "redis_url", "search_path")
        if getattr(args, key, None) is not None
    }
    for key, value in overrides.items():  # worker processes read the environment
        os.environ[f"LEXVLA_{key.upper()}"] = str(value)
    return Settings(**overrides)


def run_serve(args: argparse.Namespace) -> int:
    """Check bundle and index (fail fast), then run uvicorn."""
    import uvicorn

    from service.app import create_app, server_options
    from service.engine import Engine

    settings = _settings(args)
    options = server_options(settings)
    if settings.workers > 1:
        from service import metrics

        Engine.load(settings).close()  # fail fast here rather than in every worker
        made = metrics.prepare_multiprocess_dir()  # before the workers start: they read it at import
        try:
            uvicorn.run("service.app:app_from_env", factory=True, host=args.host, port=args.port, workers=settings.workers,
                        **options)  # fmt: skip
        finally:
            if made is not None:
                shutil.rmtree(made, ignore_errors=True)
        return 0
    engine = Engine.load(settings)
    try:
        uvicorn.run(create_app(settings, engine), host=args.host, port=args.port, **options)
    finally:
        engine.close()
    return 0


def run_search(args: argparse.Namespace) -> int:
    """One query (printed with the words each hit matched, or as JSON / TREC lines), or every topic
    of ``--topics`` into a run. Topics the engine refuses are named on standard error and left out
    of the run; the exit code is then 1."""
    if (args.query is None) == (args.topics is None):
        raise ValueError("give a query or --topics FILE (not both)")
    if args.hits < 1:
        raise ValueError(f"--hits must be at least 1, got {args.hits}")
    from lexvla.runs import Topic, read_topics
    from service.engine import Engine

    topics = read_topics(args.topics) if args.topics else [Topic("1", args.query)]
    fmt = args.format or ("trec" if args.topics else "text")
    settings = _settings(args).model_copy(update={"redis_url": "", "k_max": max(args.hits, 1)})
    engine = Engine.load(settings)
    out = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
    failed = 0
    try:
        for topic in topics:
            try:
                result = engine.search.search_text(topic.text, args.hits)
            except InputError as exc:
                failed += 1
                print(f"topic {topic.qid}: {exc}", file=sys.stderr)
                continue
            _write_result(out, fmt, topic.qid if args.topics else None, result, args.run_tag)
    finally:
        engine.close()
        if args.output:
            out.close()
    if failed:
        print(f"{failed} of {len(topics)} topics failed and are not in the output", file=sys.stderr)
    return 1 if failed else 0


def _write_result(out, fmt: str, qid: str | None, result, tag: str) -> None:
    from lexvla.runs import json_record, trec_lines, write_json_line

    if fmt == "trec":
        out.writelines(line + "\n" for line in trec_lines(qid or "1", result.hits, tag))
    elif fmt == "json":
        if qid is None:
            out.write(json.dumps(json_record(None, result), ensure_ascii=False, indent=2) + "\n")
        else:
            write_json_line(out, json_record(qid, result))
    else:
        _print_text(out, result)


def _print_text(out, result) -> None:
    edited = result.query.edited
    print("query:", ", ".join(f"{w} {v:.3f}" for w, v in list(edited.weights.items())[:16]), file=out)
    for word, why in result.query.left_out:
        print(f"left out: {word} ({why})", file=out)
    for rank, hit in enumerate(result.hits, 1):
        words = ", ".join(f"{m.word} {hit.share(m):.0%}" for m in hit.matches[:8])
        print(f"{rank:3d}. {hit.score:.4f}  {hit.doc_id}  [{words}]", file=out)
