"""``lexvla demo``: build the default bundle, index the default images, serve, and answer a query.

Everything is built here from registry packages and Debian's openclipart: nothing is downloaded
at run time. Steps already done (data, bundle, index) are reused on the next run.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from lexvla.pipeline import DEFAULT_CONFIG, Workspace, ensure_default_bundle

log = logging.getLogger(__name__)


def build_index(bundle: Path, manifest: Path, root: Path, limit: int | None, image_root: Path | None = None) -> None:
    """Index ``manifest`` (optionally its first ``limit`` images) with ``bundle`` into ``root``, image
    paths relative to ``image_root`` (see ``IndexJobConfig.image_root``)."""
    from indexer.job import run_index_job
    from indexer.job_config import IndexJobConfig
    from indexer.metadata import bundle_mismatch
    from indexer.searcher import IndexNotFoundError, LexicalSearcher
    from models.bundle import Bundle

    source = manifest
    if limit:
        source = manifest.with_name(f"manifest-first{limit}.jsonl")
        source.write_text("".join(manifest.read_text().splitlines(keepends=True)[:limit]))
    rebuild = False
    try:
        searcher = LexicalSearcher(root)
        rebuild = bundle_mismatch(searcher.info, Bundle(bundle, device="cpu", verify=False)) is not None
        searcher.close()
    except IndexNotFoundError:
        pass
    report = run_index_job(IndexJobConfig(bundle=bundle, input=source, root=root, rebuild=rebuild, image_root=image_root))
    log.info("index: %d documents (%d new, %d rejected)", report.doc_count, report.indexed, len(report.rejected))


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 180.0, output: Path | None = None) -> None:
    """Return once ``url/readyz`` answers 200; when ``proc`` exits first, or the time runs out, raise
    with the last lines the service wrote to ``output`` (its stderr, where a caller captured it):
    the service's own reason, e.g. a bundle without the query table that ``--query-mode table`` needs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with code {proc.returncode}{output_tail(output)}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the service at {url} was not ready after {timeout_s:.0f} s{output_tail(output)}")


def output_tail(output: Path | None, lines: int = 20) -> str:
    """``output``'s last ``lines`` lines, as the end of an error message ("" without a file)."""
    if output is None or not output.is_file():
        return ""
    tail = output.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return f"; the last {len(tail)} lines it wrote ({output}):\n" + "\n".join(tail)


def ask(url: str, query: str, k: int) -> dict:
    body = json.dumps({"query": query, "k": k}).encode()
    req = urllib.request.Request(f"{url}/search", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def print_answer(result: dict) -> None:
    words = ", ".join(f"{w['word']} {w['weight']:.2f}" for w in result["query"]["words"][:10])
    print(f"\nquery words: {words}")
    if not result["hits"]:
        print("no indexed image shares a word with this query")
    for rank, hit in enumerate(result["hits"], 1):
        matched = ", ".join(f"{m['word']} ({m['share']:.0%})" for m in hit["matches"][:6])
        print(f"{rank:2d}. {hit['score']:.3f}  {hit['id']}\n      matched: {matched}")


def cmd_demo(args: argparse.Namespace) -> int:
    ws = Workspace(Path(args.workdir), data_limit=args.data_limit)
    overrides = {k: v for k, v in (("max_steps", args.max_steps), ("batch_size", args.batch_size)) if v}
    # the query table takes about a minute to build: made when the service is to use it
    bundle = ensure_default_bundle(ws, Path(args.config), query_table=args.query_mode == "table", **overrides)
    ws.point_default_to(bundle)
    from models.data.openclipart import PNG_ROOT

    # paths relative to the openclipart-png folder: mount it as the containers' /data/images
    build_index(bundle, ws.openclipart, ws.index, args.limit, image_root=Path(PNG_ROOT))
    url = f"http://{args.host}:{args.port}"
    env = os.environ | {"LEXVLA_BUNDLE": str(bundle), "LEXVLA_INDEX": str(ws.index), "LEXVLA_QUERY_MODE": args.query_mode}
    proc = subprocess.Popen([sys.executable, "-m", "lexvla", "serve", "--host", args.host, "--port", str(args.port)], env=env)
    try:
        wait_ready(url, proc)
        print_answer(ask(url, args.query, args.k))
        if args.exit:
            return 0
        print(f"\nThe service is running at {url}/ (API docs at {url}/docs). Ctrl-C stops it.")
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def register(sub) -> None:
    p = sub.add_parser("demo", help="build the default model and index, start the service, answer a query")
    p.add_argument("--query", default="a red apple")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--workdir", default="var", help="data, runs, bundles and index live here")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="training config of the default bundle")
    p.add_argument("--max-steps", type=int, help="override the config's training steps")
    p.add_argument("--batch-size", type=int, help="override the config's batch size")
    p.add_argument("--limit", type=int, help="index only the first N images of the corpus")
    p.add_argument("--data-limit", type=int, help="train and index on a small corpus of N drawings and N scenes (quick look)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--exit", action="store_true", help="stop the service after answering the query")
    p.add_argument("--query-mode", choices=["encoder", "table"], default="encoder",
                   help="how the service encodes queries: the text tower, or the bundle's query table (no text model)")
    p.set_defaults(func=cmd_demo)
