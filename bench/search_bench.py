"""End-to-end ``/search`` latency and throughput, split by stage, plus Pyserini's own impact searcher.

Not a test: prints a table. Builds (once, under ``--work``) the lexvla-mini bundle and a real index
of generated shape images, starts ``lexvla serve`` in a subprocess with the cache off, and drives it
with 1, 8 and 32 concurrent clients on loopback. The same quantised queries then go through
``pyserini.search.lucene.LuceneImpactSearcher`` on the same Lucene directory, in a subprocess
(pyserini's import needs the jnius set-up from FACTS.md and imports torch).

Usage::

    .venv/bin/python bench/search_bench.py [--images 400] [--requests 200]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERIES = [
    "a red circle", "a blue square", "green triangle", "a yellow star", "black shape on white", "two red circles",
    "a round object", "a car on the road", "a horse in a field", "a small blue star", "geometric shapes",
    "a dark square", "bright yellow", "a triangle pointing up", "a green circle", "a picture of a dog",
]  # fmt: skip

PYSERINI_SCRIPT = r"""
import json, os, sys, time
os.environ.setdefault("OPENAI_API_KEY", "unused")
from indexer.jvm import start_jvm
start_jvm()
from pyserini.search.lucene import LuceneImpactSearcher
class Identity:
    def encode(self, q, **kw):
        return q
lucene_dir, queries_file, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
queries = json.load(open(queries_file))
searcher = LuceneImpactSearcher(lucene_dir, Identity(), min_idf=-1)
lat = []
for i in range(reps):
    q = queries[i % len(queries)]
    t = time.perf_counter(); searcher.search(q, k=10); lat.append((time.perf_counter() - t) * 1000)
print(json.dumps(lat))
"""


def prepare(work: Path, n_images: int) -> tuple[Path, Path]:
    """Export the bundle and build the index once; returns (bundle, index root)."""
    from tests.service.conftest import build_index, make_images

    bundle, images, index = work / "bundle", work / "images", work / "index"
    if not (bundle / "bundle.json").exists():
        from models.export import export_bundle
        from models.model import LexVLA
        from models.registry import load_card

        export_bundle(LexVLA(load_card("lexvla-mini")), bundle)
    if not images.exists():
        make_images(images, n_per=max(1, n_images // 20))
    if not (index / "CURRENT").exists():
        build_index(bundle, images, index)
    return bundle, index


def start_server(bundle: Path, index: Path, port: int) -> subprocess.Popen:
    env = os.environ | {"LEXVLA_REDIS_URL": "", "LEXVLA_RELOAD_INTERVAL_S": "0", "LEXVLA_DEVICE": "cpu"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lexvla", "serve", "--bundle", str(bundle), "--index", str(index), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not become ready")


def drive(url: str, clients: int, requests: int) -> dict:
    """Run ``requests`` searches from ``clients`` threads; per-request client and server timings."""

    def one(i: int) -> dict:
        with httpx.Client(base_url=url, timeout=60) as http:
            t = time.perf_counter()
            r = http.post("/search", json={"query": QUERIES[i % len(QUERIES)], "k": 10})
            wall = (time.perf_counter() - t) * 1000
        r.raise_for_status()
        return {"wall": wall, **r.json()["timings_ms"]}

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        rows = list(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - start
    return {"rows": rows, "qps": requests / elapsed}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def quantised_queries(bundle_dir: Path, scale: float) -> list[dict[str, int]]:
    from models.bundle import Bundle
    from models.sparse import quantize_weights

    bundle = Bundle(bundle_dir, device="cpu")
    return [quantize_weights(v.words(bundle.words), scale) for v in bundle.encode_texts(QUERIES)]


def run_pyserini(index: Path, bundle: Path, reps: int) -> list[float] | str:
    from indexer.layout import LUCENE_DIR, current_generation
    from indexer.searcher import LexicalSearcher

    with LexicalSearcher(index) as s:
        scale = s.info.quant_scale
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(quantised_queries(bundle, scale), fh)
    out = subprocess.run(
        [sys.executable, "-c", PYSERINI_SCRIPT, str(current_generation(index) / LUCENE_DIR), fh.name, str(reps)],
        capture_output=True, text=True, cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    if out.returncode != 0:
        return "failed: " + out.stderr.strip().splitlines()[-1]
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lexvla-bench")
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    bundle, index = prepare(args.work, args.images)
    server = start_server(bundle, index, args.port)
    url = f"http://127.0.0.1:{args.port}"
    try:
        drive(url, 2, 20)  # warm-up
        results = {c: drive(url, c, args.requests) for c in (1, 8, 32)}
        docs = httpx.get(url + "/readyz").json()["doc_count"]
    finally:
        server.terminate()
        server.wait(20)
    print(f"\n/search end to end, lexvla-mini on CPU, {docs} docs, cache off, k=10, {args.requests} requests per row")
    print(f"{'clients':>7} | {'q/s':>6} | {'p50 ms':>7} | {'p99 ms':>7} | {'encode p50':>10} | {'search p50':>10} | {'explain p50':>11} | {'HTTP+queue p50':>14}")
    for c, res in results.items():
        rows = res["rows"]
        http_overhead = [r["wall"] - r["total"] for r in rows]
        print(f"{c:>7} | {res['qps']:6.1f} | {pct([r['wall'] for r in rows], 50):7.1f} | {pct([r['wall'] for r in rows], 99):7.1f} | "
              f"{pct([r['encode'] for r in rows], 50):10.2f} | {pct([r['search'] for r in rows], 50):10.2f} | "
              f"{pct([r['explain'] for r in rows], 50):11.2f} | {pct(http_overhead, 50):14.2f}")  # fmt: skip
    lat = run_pyserini(index, bundle, args.requests)
    if isinstance(lat, str):
        print(f"\npyserini LuceneImpactSearcher: {lat}")
    else:
        print(f"\npyserini LuceneImpactSearcher.search (same index, same quantised queries, 1 thread, k=10): "
              f"p50 {statistics.median(lat):.2f} ms, p99 {pct(lat, 99):.2f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
