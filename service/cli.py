"""``lexvla serve`` and ``lexvla search``."""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", type=Path, help="model bundle directory (LEXVLA_BUNDLE)")
    p.add_argument("--index", type=Path, help="index root (LEXVLA_INDEX)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="ONNX device (LEXVLA_DEVICE)")


def register(subparsers) -> None:
    """Add ``serve`` and ``search`` to the ``lexvla`` command."""
    serve = subparsers.add_parser("serve", help="run the HTTP search service")
    _add_common(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, help="uvicorn worker processes (LEXVLA_WORKERS)")
    serve.add_argument("--redis-url", help="LEXVLA_REDIS_URL; an empty string disables the cache")
    serve.set_defaults(func=run_serve)

    search = subparsers.add_parser("search", help="search an index from the command line (no server)")
    _add_common(search)
    search.add_argument("query", help="text; +word, word^2 and -word edit the word space")
    search.add_argument("-k", type=int, default=10)
    search.set_defaults(func=run_search)


def _settings(args: argparse.Namespace):
    from service.config import Settings

    overrides = {
        key: getattr(args, key)
        for key in ("bundle", "index", "device", "workers", "redis_url")
        if getattr(args, key, None) is not None
    }
    for key, value in overrides.items():  # worker processes read the environment
        os.environ[f"LEXVLA_{key.upper()}"] = str(value)
    return Settings(**overrides)


def run_serve(args: argparse.Namespace) -> int:
    """Check bundle and index (fail fast), then run uvicorn."""
    import uvicorn

    from service.app import create_app
    from service.engine import Engine

    settings = _settings(args)
    if settings.workers > 1:
        from service import metrics

        Engine.load(settings).close()  # fail fast here rather than in every worker
        made = metrics.prepare_multiprocess_dir()  # before the workers start: they read it at import
        try:
            uvicorn.run("service.app:app_from_env", factory=True, host=args.host, port=args.port, workers=settings.workers)
        finally:
            if made is not None:
                shutil.rmtree(made, ignore_errors=True)
        return 0
    engine = Engine.load(settings)
    try:
        uvicorn.run(create_app(settings, engine), host=args.host, port=args.port)
    finally:
        engine.close()
    return 0


def run_search(args: argparse.Namespace) -> int:
    """Print the top hits of one query with the words each one matched."""
    from service.engine import Engine

    settings = _settings(args).model_copy(update={"redis_url": "", "k_max": max(args.k, 1)})
    engine = Engine.load(settings)
    try:
        result = engine.search_text(args.query, args.k)
    finally:
        engine.close()
    edited = result.query.edited
    print("query:", ", ".join(f"{w} {v:.3f}" for w, v in list(edited.weights.items())[:16]))
    if edited.ignored:
        print("ignored (not in the vocabulary):", ", ".join(edited.ignored))
    for rank, hit in enumerate(result.hits, 1):
        words = ", ".join(f"{m.word} {hit.share(m):.0%}" for m in hit.matches[:8])
        print(f"{rank:3d}. {hit.score:.4f}  {hit.doc_id}  [{words}]")
    return 0
