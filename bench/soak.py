"""Soak and fault run of the service (not a test): memory, liveness under load, 5xx, a Redis
restart and an index publish under load, the odd inputs of issues 10 and 25, and resets under
keep-alive load.

Starts its own ``redis-server`` (a free port, nothing persisted) and the service as a uvicorn
subprocess of this checkout with the default settings (only bundle, index, Redis URL, device and
a 1 s reload poll are set; the keep-alive timeout is the one ``lexvla serve`` sets), on an index
of ``--count`` images of ``--images`` built once under ``--work``. Then, in order (``--phases``
picks some):

1. 32 concurrent near-limit uploads to ``/encode``: the issue's 6300x6300 RGBA PNG (under the
   40 Mpx limit, a few hundred KB). Server RSS before, at peak and 3 s after.
2. 48 concurrent heavy ``/encode`` requests (the heatmap cap's worth of PNG heatmaps on a
   1600x1200 picture) while ``/healthz`` and ``/search`` are probed: p50 / p99 / max.
3. The issue's odd inputs, one request each: status, body size, time.
4. Redis stopped for 3 s and started again under a search load: failed requests, seconds from
   Redis answering again to the service using its cache again.
5. A new generation (``--publish`` more images) published under a search load: failed requests,
   seconds until the service serves it.
6. Keep-alive: ``--keepalive-clients`` (32) clients, each with its own pool of keep-alive
   connections that it drops after ``--client-idle-s`` idle (httpx's default, 5 s), make bursts of
   ``--keepalive-burst`` (20) cached searches and liveness probes, pausing between bursts for a
   time in the last ``--idle-window-s`` (10 ms) of that expiry, until ``--keepalive-requests``
   (20,000) answers: the connection resets they meet (any transport error). They meet some when
   the server closes idle connections as soon as the clients do (``--server-keep-alive-s 5``,
   uvicorn's default; ``--client-idle-s 1 --server-keep-alive-s 1 --keepalive-burst 2`` shows it
   in a minute).

Every answer of every phase is counted; ``5xx`` and transport errors are summed at the end. The
``issue`` column repeats what issues 10 and 25 measured on the code before them.

    .venv/bin/python bench/soak.py --bundle var/bundles/lexvla-mini --images /usr/share/openclipart/png
    .venv/bin/python bench/soak.py --bundle var/bundles/lexvla-mini --phases keepalive --count 50
"""
from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERIES = ["a red circle", "a blue car", "a house with a tree", "a black cat", "the sun and clouds", "a green leaf",
           "a person reading", "a fish in water", "a yellow star", "a musical note", "a flower", "an arrow"]  # fmt: skip
HEAT_WORDS = ["red", "blue", "green", "circle", "square", "star", "tree", "house", "car", "dog", "cat", "sun", "water", "flower"]
STATUSES: Counter = Counter()  # every answer of the run, by status ("error" for transport failures)
_LOCK = threading.Lock()


def count(status) -> None:
    with _LOCK:
        STATUSES[status] += 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, up: bool = True, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if (s.connect_ex(("127.0.0.1", port)) == 0) == up:
                return
        time.sleep(0.02)
    raise TimeoutError(f"port {port} did not go {'up' if up else 'down'}")


# ---- fixtures: images, index, redis, server --------------------------------------------------
def pick_images(source: Path, n: int, skip: int = 0) -> list[Path]:
    files = sorted(p for p in source.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    return files[skip : skip + n]


def copy_and_index(bundle: Path, files: list[Path], folder: Path, root: Path) -> None:
    from lexvla.testing import build_index

    folder.mkdir(parents=True, exist_ok=True)
    for f in files:  # flat names: the source tree repeats file names across folders
        shutil.copy(f, folder / f"{f.parent.name}-{f.name}")
    t0 = time.perf_counter()
    rep = build_index(bundle, folder, root)
    print(f"index: {rep.doc_count} documents, {rep.encoded} encoded now, {len(rep.rejected)} rejected "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip


class Redis:
    def __init__(self, work: Path):
        self.port, self.dir, self.proc = free_port(), work, None

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(self.dir), "--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru"]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        wait_port(self.port, up=False)

    def used_mb(self) -> float:
        import redis

        return redis.Redis(port=self.port).info("memory")["used_memory"] / 1e6


class Server:
    """The service in a uvicorn subprocess; ``rss_mb`` samples it. ``keep_alive_s``: the server's
    idle keep-alive timeout (default: the setting ``lexvla serve`` passes to uvicorn)."""

    def __init__(self, bundle: Path, index: Path, redis_port: int, keep_alive_s: int | None = None):
        from service.config import Settings

        self.keep_alive_s = keep_alive_s or Settings(_env_file=None).keep_alive_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "LEXVLA_BUNDLE": str(bundle), "LEXVLA_INDEX": str(index), "LEXVLA_DEVICE": "cpu",
               "LEXVLA_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "LEXVLA_RELOAD_INTERVAL_S": "1"}  # fmt: skip
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "service.app:app_from_env", "--host", "127.0.0.1",
               "--port", str(self.port), "--log-level", "warning", "--timeout-keep-alive", str(self.keep_alive_s)]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        self.ps = psutil.Process(self.proc.pid)
        wait_port(self.port, timeout=180)

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 1e6

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class RssSampler:
    """Samples the server's RSS every 20 ms in a thread while inside ``with``."""

    def __init__(self, server: Server):
        self.server, self.peak, self._stop = server, 0.0, threading.Event()

    def __enter__(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss_mb())
            time.sleep(0.02)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join()


def request(client: httpx.Client, method: str, url: str, **kw) -> httpx.Response | None:
    try:
        r = client.request(method, url, **kw)
    except httpx.HTTPError:
        count("error")
        return None
    count(r.status_code)
    return r


def post_bytes(path: str, body: bytes, ctype: str = "application/json") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


def same_connection(port: int, requests: list[bytes]) -> list[str]:
    """Send raw HTTP/1.1 requests one after another on one connection, each after the previous
    answer: ``status (connection: header)`` of each, or how the connection failed."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock, sock.makefile("rb") as f:
        for req in requests:
            try:
                sock.sendall(req)
                status = f.readline().decode("latin-1").split(" ", 2)
                if len(status) < 2:
                    out.append("connection closed")
                    break
                headers = {}
                while (line := f.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                f.read(int(headers.get("content-length", 0)))
                out.append(f"{status[1]}" + (f" (connection: {headers['connection']})" if "connection" in headers else ""))
            except OSError as exc:
                out.append(type(exc).__name__)
                break
    return out


def png_header(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header declares ``width`` x ``height`` (a few bytes; refused from the header)."""
    import struct
    import zlib

    data = bytearray(png(Image.new("L", (1, 1))))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def near_limit_png() -> bytes:
    """A 6300x6300 RGBA PNG (39.7 Mpx, under the 40 Mpx default): small on disk, huge decoded."""
    img = Image.new("RGBA", (6300, 6300), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse((1000, 1000, 5300, 5300), fill=(200, 30, 30, 255))
    return png(img)


def heavy_png() -> bytes:
    img = Image.new("RGB", (1600, 1200), "white")
    d = ImageDraw.Draw(img)
    for i in range(12):
        d.rectangle((60 * i, 40 * i, 60 * i + 400, 40 * i + 300), fill=(20 * i, 255 - 20 * i, 90))
    return png(img)


def percentiles(ms: list[float]) -> str:
    if not ms:
        return "no samples"
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    return f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms (n={len(ms)})"


# ---- phases ---------------------------------------------------------------------------------
def phase_uploads(server: Server, n: int = 32) -> dict:
    data = near_limit_png()
    time.sleep(2)
    before = server.rss_mb()
    t0 = time.perf_counter()

    def one(_):
        with httpx.Client(base_url=server.url, timeout=600) as c:
            r = request(c, "POST", "/encode", files={"file": ("big.png", data, "image/png")})
            return r.status_code if r is not None else "error"

    with RssSampler(server) as rss, ThreadPoolExecutor(n) as pool:
        statuses = Counter(pool.map(one, range(n)))
    took = time.perf_counter() - t0
    time.sleep(3)
    after = server.rss_mb()
    return {"file_kb": len(data) / 1e3, "before": before, "peak": rss.peak, "after": after, "statuses": statuses, "s": took}


def phase_flood(server: Server, n: int = 48) -> dict:
    data = heavy_png()
    words = ",".join(HEAT_WORDS)  # 14 words + 2 top words = the default cap of 16
    done = threading.Event()
    health_ms, search_ms = [], []

    def probe(path: str, out: list[float], body=None) -> None:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            i = 0
            while not done.is_set():
                t = time.perf_counter()
                if body is None:
                    r = request(c, "GET", path)
                else:
                    r = request(c, "POST", path, json={"query": f"{QUERIES[i % len(QUERIES)]} {uuid.uuid4().hex[:6]}", "k": 10})
                if r is not None and r.status_code == 200:
                    out.append((time.perf_counter() - t) * 1000)
                i += 1
                time.sleep(0.02)

    def heavy(_):
        with httpx.Client(base_url=server.url, timeout=600) as c:
            r = request(c, "POST", "/encode", files={"file": ("x.png", data, "image/png")},
                        data={"heatmaps": words, "heatmap_top_n": "2"})  # fmt: skip
            return r.status_code if r is not None else "error"

    probes = [threading.Thread(target=probe, args=("/healthz", health_ms)),
              threading.Thread(target=probe, args=("/search", search_ms, True))]  # fmt: skip
    t0 = time.perf_counter()
    for t in probes:
        t.start()
    with ThreadPoolExecutor(n) as pool:
        statuses = Counter(pool.map(heavy, range(n)))
    took = time.perf_counter() - t0
    done.set()
    for t in probes:
        t.join()
    return {"health": percentiles(health_ms), "health_p99": sorted(health_ms)[int(0.99 * len(health_ms))] if health_ms else None,
            "search": percentiles(search_ms), "statuses": statuses, "s": took}  # fmt: skip


def phase_odd_inputs(server: Server, redis: Redis, words: list[str]) -> list[tuple[str, str, str]]:
    rows = []
    with httpx.Client(base_url=server.url, timeout=600) as c:
        def probe(name: str, issue: str, method: str, url: str, **kw):
            t0 = time.perf_counter()
            r = request(c, method, url, **kw)
            took = time.perf_counter() - t0
            got = "transport error" if r is None else f"{r.status_code}, {len(r.content):,} B, {took * 1000:.0f} ms"
            if r is not None and r.status_code >= 400:
                got += f": {r.json().get('detail', '')[:70]}"
            rows.append((name, issue, got))
            return r

        probe("surrogate in query", "500", "POST", "/search", content=b'{"query": "dog \\ud800"}', headers={"content-type": "application/json"})
        probe("surrogate boost key", "500", "POST", "/search", content=b'{"query": "dog", "boost": {"\\ud800x": 2}}',
              headers={"content-type": "application/json"})  # fmt: skip
        probe("4,070 exclude words", "500, 128 KB body", "POST", "/search", json={"query": "a red circle", "exclude": words[:4070]})
        probe("4,000 boost words, k=100", "200, 660 KB cached", "POST", "/search",
              json={"query": "a red circle", "k": 100, "boost": {w: 1.5 for w in words[:4000]}})  # fmt: skip
        small = png(Image.new("RGB", (64, 64), "red"))
        probe("3,000 heatmap words", "200 in 13.4 s, 9.2 MB", "POST", "/encode", files={"file": ("s.png", small, "image/png")},
              data={"heatmaps": ",".join(words[:3000])})  # fmt: skip
        probe("undecodable upload", "422 with a BytesIO repr", "POST", "/encode", files={"file": ("x.png", b"\x89PNG junk", "image/png")})
        probe("non-UTF-8 JSON body", "400, undocumented", "POST", "/search", content='{"query": "caf\xe9"}'.encode("latin-1"),
              headers={"content-type": "application/json"})  # fmt: skip
        probe("multipart without boundary", "400, undocumented", "POST", "/encode", content=b"--x\r\n",
              headers={"content-type": "multipart/form-data"})  # fmt: skip
        probe("POST /admin/reload, no token", "200 (open)", "POST", "/admin/reload")
        r = probe("cross-site preflight", "no CORS policy", "OPTIONS", "/search",
                  headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})  # fmt: skip
        if r is not None:
            rows[-1] = (rows[-1][0], rows[-1][1], rows[-1][2] + f"; allow-origin: {r.headers.get('access-control-allow-origin')}")
        doc = c.get("/openapi.json").json()
        rows.append(("OpenAPI ImageJSONRequest", "referenced, undefined", "defined" if "ImageJSONRequest" in doc["components"]["schemas"] else "MISSING"))
        # issue 25
        deep = b"[" * 960 + b"]" * 960
        for route in ("/encode", "/search/image", "/search", "/embed_sparse"):
            probe(f"JSON 960 deep to {route}", "500" if "image" in route or route == "/encode" else "400", "POST", route,
                  content=deep, headers={"content-type": "application/json"})  # fmt: skip
        answers = same_connection(server.port, [post_bytes("/encode", deep), b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"])
        rows.append(("deep JSON, then /healthz, one connection", "500, then the next request failed 7 of 7", "; ".join(answers)))
        long_query = " ".join(QUERIES * 6)[:512]
        r = probe("512-character query", "200, 32 of 128 tokens encoded, unsaid", "POST", "/search", json={"query": long_query, "k": 3})
        if r is not None and r.status_code == 200:
            rows[-1] = (*rows[-1][:2], rows[-1][2] + f"; not_encoded: {len(r.json()['query']['not_encoded'])} words")
        probe("the same text to /embed_sparse", "200, truncated unsaid", "POST", "/embed_sparse", json={"inputs": [long_query]})
        probe("GET /images/<60,000-character id>", "404, 60,072 B", "GET", "/images/" + "a" * 60_000)
        for w, h, was in ((7000, 7000, "413, the 40,000,000 limit"), (30000, 30000, "413, Pillow's 178956970")):
            probe(f"{w}x{h} PNG header", was, "POST", "/encode", files={"file": ("x.png", png_header(w, h), "image/png")})

    # 100 MB chunked upload: server RSS growth and how much the client got to send
    sent = 0

    def body():
        nonlocal sent
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n'
        for _ in range(100):
            sent += 1 << 20
            yield b"x" * (1 << 20)

    before = server.rss_mb()
    with RssSampler(server) as rss, httpx.Client(base_url=server.url, timeout=600) as c:
        r = request(c, "POST", "/encode", content=body(), headers={"content-type": "multipart/form-data; boundary=b"})
    rows.append(("100 MB chunked upload", "413 after +396 MB",
                 f"{r.status_code if r is not None else 'error'} after +{max(0.0, rss.peak - before):.0f} MB RSS; client sent {sent >> 20} MB"))  # fmt: skip

    # cache growth: 200 distinct k=100 searches with the most boosts the word cap allows
    used0 = redis.used_mb()
    boost = {w: 1.5 for w in words[:200]}
    with httpx.Client(base_url=server.url, timeout=600) as c:
        for i in range(200):
            request(c, "POST", "/search", json={"query": f"{QUERIES[i % len(QUERIES)]} v{i}", "k": 100, "boost": boost})
    rows.append(("Redis growth, 200 x k=100 + 200 boosts", "+132 MB (4,000 boosts)", f"+{redis.used_mb() - used0:.1f} MB"))

    # one client as fast as it can for 3 s: the rate limit is optional (off by default)
    n, t_end = 0, time.perf_counter() + 3
    with httpx.Client(base_url=server.url, timeout=60) as c:
        while time.perf_counter() < t_end:
            request(c, "POST", "/search", json={"query": "a red circle", "k": 5})
            n += 1
    rows.append(("one client, cached search", "270 q/s, never 429", f"{n / 3:.0f} q/s (LEXVLA_RATE_LIMIT_PER_S is off by default)"))
    return rows


class SearchLoad:
    """``clients`` threads searching in a loop (half the queries repeat, so the cache is used)."""

    def __init__(self, server: Server, clients: int = 8):
        self.server, self.clients, self.stop = server, clients, threading.Event()
        self.failures: list[str] = []
        self.outcomes: Counter = Counter()

    def __enter__(self):
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(self.clients)]
        for t in self.threads:
            t.start()
        return self

    def _run(self, n: int) -> None:
        with httpx.Client(base_url=self.server.url, timeout=60) as c:
            i = 0
            while not self.stop.is_set():
                q = QUERIES[i % len(QUERIES)] if i % 2 else f"{QUERIES[i % len(QUERIES)]} {n}-{i}"
                r = request(c, "POST", "/search", json={"query": q, "k": 10})
                if r is None or r.status_code != 200:
                    self.failures.append("transport error" if r is None else f"{r.status_code} {r.text[:100]}")
                else:
                    self.outcomes[r.json()["cache"]["results"]] += 1
                i += 1

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


def phase_redis_restart(server: Server, redis: Redis) -> dict:
    with SearchLoad(server) as load, httpx.Client(base_url=server.url, timeout=30) as c:
        time.sleep(2)
        redis.stop()
        time.sleep(3)
        redis.start()
        up = time.perf_counter()
        while not c.get("/readyz").json()["cache"] and time.perf_counter() - up < 60:
            time.sleep(0.02)
        back = time.perf_counter() - up
        time.sleep(2)
    return {"failures": load.failures, "cache_back_s": back, "outcomes": load.outcomes}


def phase_publish(server: Server, bundle: Path, new_files: list[Path], folder: Path, root: Path) -> dict:
    with SearchLoad(server) as load, httpx.Client(base_url=server.url, timeout=30) as c:
        before = c.get("/readyz").json()["index_version"]
        time.sleep(1)
        copy_and_index(bundle, new_files, folder, root)
        t0 = time.perf_counter()
        while c.get("/readyz").json()["index_version"] == before and time.perf_counter() - t0 < 60:
            time.sleep(0.05)
        switched = time.perf_counter() - t0
        after = c.get("/readyz").json()
        time.sleep(2)
    return {"failures": load.failures, "switch_s": switched, "doc_count": after["doc_count"], "changed": after["index_version"] != before}


def phase_keepalive(server: Server, clients: int, total: int, idle_s: float, burst: int = 20, window_s: float = 0.01) -> dict:
    """``clients`` threads, each with its own httpx client whose idle connections expire after
    ``idle_s``, make bursts of ``burst`` requests (cached searches and /healthz) and pause between
    bursts for a random time in the last ``window_s`` before ``idle_s``: each burst then starts on
    a connection the client still keeps, as late as it keeps it. Stops at ``total`` answers or errors."""
    done = threading.Event()
    made = Counter()
    statuses: Counter = Counter()
    resets: Counter = Counter()
    lock = threading.Lock()

    def client(n: int) -> None:
        rng = random.Random(n)
        limits = httpx.Limits(max_keepalive_connections=4, keepalive_expiry=idle_s)
        with httpx.Client(base_url=server.url, timeout=60, limits=limits) as c:
            time.sleep(rng.uniform(0, idle_s))  # spread the clients' bursts
            while not done.is_set():
                for i in range(burst):
                    with lock:
                        if made["sent"] >= total:
                            done.set()
                            return
                        made["sent"] += 1
                    try:
                        if i % 4 == 3:
                            r = c.get("/healthz")
                        else:
                            r = c.post("/search", json={"query": QUERIES[rng.randrange(len(QUERIES))], "k": 5})
                        with lock:
                            statuses[r.status_code] += 1
                        count(r.status_code)
                    except httpx.TransportError as exc:
                        with lock:
                            resets[type(exc).__name__] += 1
                        count("error")
                time.sleep(rng.uniform(max(0.0, idle_s - window_s), idle_s - 0.001))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"requests": made["sent"], "statuses": statuses, "resets": resets, "s": time.perf_counter() - t0,
            "clients": clients, "idle_s": idle_s, "server_s": server.keep_alive_s}  # fmt: skip


PHASES = ("uploads", "flood", "odd", "redis", "publish", "keepalive")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--images", type=Path, default=Path("/usr/share/openclipart/png"))
    ap.add_argument("--count", type=int, default=1000, help="images in the index")
    ap.add_argument("--publish", type=int, default=50, help="images added by the publish under load")
    ap.add_argument("--work", type=Path, default=Path("var/soak"))
    ap.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)}")
    ap.add_argument("--keepalive-clients", type=int, default=32)
    ap.add_argument("--keepalive-requests", type=int, default=20_000)
    ap.add_argument("--client-idle-s", type=float, default=5.0, help="the clients' idle keep-alive expiry (httpx's default)")
    ap.add_argument("--idle-window-s", type=float, default=0.01, help="pauses between bursts fall in this last part of the expiry")
    ap.add_argument("--keepalive-burst", type=int, default=20, help="requests a client makes between pauses")
    ap.add_argument("--server-keep-alive-s", type=int, default=None,
                    help="the server's keep-alive timeout (default: LEXVLA_KEEP_ALIVE_S, what `lexvla serve` sets)")
    args = ap.parse_args()
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if unknown := set(phases) - set(PHASES):
        ap.error(f"unknown phases: {', '.join(sorted(unknown))}")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    folder, root = work / "images", work / "index"
    for old in (folder, root):  # a fresh index every run
        shutil.rmtree(old, ignore_errors=True)
    files = pick_images(args.images, args.count + args.publish)
    copy_and_index(args.bundle, files[: args.count], folder, root)

    redis = Redis(work)
    redis.start()
    server = Server(args.bundle.resolve(), root, redis.port, args.server_keep_alive_s)
    rows, failures = [], []
    try:
        from models.bundle import Bundle

        words = [w for w in Bundle(args.bundle, verify=False).words if w.isalpha()]
        with httpx.Client(base_url=server.url, timeout=120) as c:  # warm-up: sessions, JVM, first search
            request(c, "POST", "/search", json={"query": "warm up", "k": 5})
            request(c, "POST", "/encode", files={"file": ("w.png", png(Image.new("RGB", (64, 64), "red")), "image/png")})
        for step, phase in enumerate(phases, 1):
            print(f"{step}/{len(phases)} {phase}", flush=True)
            if phase == "uploads":
                up = phase_uploads(server)
                rows.append(("32 x 6300x6300 RGBA PNG upload", "6 at once: peak 5.6 GB, 4.8 GB kept",
                             f"{up['file_kb']:.0f} KB file; RSS {up['before']:.0f} -> peak {up['peak']:.0f} "
                             f"(+{up['peak'] - up['before']:.0f} MB) -> after {up['after']:.0f} MB "
                             f"(+{up['after'] - up['before']:.0f}); {dict(up['statuses'])} in {up['s']:.0f} s"))  # fmt: skip
            elif phase == "flood":
                flood = phase_flood(server)
                rows += [("/healthz during 48 heavy /encode", "28.6 s", f"{flood['health']}"),
                         ("/search during 48 heavy /encode", "28.6 s", f"{flood['search']}"),
                         ("48 heavy /encode (16 PNG heatmaps)", "-", f"{dict(flood['statuses'])} in {flood['s']:.0f} s")]  # fmt: skip
            elif phase == "odd":
                rows += phase_odd_inputs(server, redis, words)
            elif phase == "redis":
                rr = phase_redis_restart(server, redis)
                failures += rr["failures"]
                rows.append(("Redis restart under 8 search clients", "0 failed; cache off 13 s more",
                             f"{len(rr['failures'])} failed; cache on {rr['cache_back_s']:.2f} s after Redis answered; "
                             f"results {dict(rr['outcomes'])}"))  # fmt: skip
            elif phase == "publish":
                pub = phase_publish(server, args.bundle, files[args.count :], folder, root)
                failures += pub["failures"]
                rows.append(("publish under 8 search clients", "0 failed",
                             f"{len(pub['failures'])} failed; served {pub['switch_s']:.1f} s after publish, {pub['doc_count']} docs"))  # fmt: skip
            elif phase == "keepalive":
                ka = phase_keepalive(server, args.keepalive_clients, args.keepalive_requests, args.client_idle_s,
                                     args.keepalive_burst, args.idle_window_s)  # fmt: skip
                rows.append((f"keep-alive: {ka['clients']} clients, idle up to {ka['idle_s']:g} s, server {ka['server_s']} s",
                             "4 resets in 31,977 (server 5 s)",
                             f"{sum(ka['resets'].values())} resets in {ka['requests']:,} requests"
                             f"{' ' + str(dict(ka['resets'])) if ka['resets'] else ''} in {ka['s']:.0f} s; "
                             f"{dict(ka['statuses'])}"))  # fmt: skip
                print(f"keep-alive resets: {sum(ka['resets'].values())} in {ka['requests']} requests "
                      f"({ka['clients']} clients, client idle expiry {ka['idle_s']:g} s, server keep-alive {ka['server_s']} s)",
                      flush=True)  # fmt: skip
    finally:
        server.stop()
        redis.proc.terminate()

    fivexx = sum(n for s, n in STATUSES.items() if isinstance(s, int) and s >= 500)
    rows.append(("5xx over the whole run", "several", f"{fivexx} (transport errors: {STATUSES.get('error', 0)})"))
    width = max(len(r[0]) for r in rows)
    iw = max(len(r[1]) for r in rows)
    print(f"\n{'probe':<{width}}  {'issue':<{iw}}  this run")
    for name, issue, got in rows:
        print(f"{name:<{width}}  {issue:<{iw}}  {got}")
    print(f"\nanswers by status: {dict(sorted(STATUSES.items(), key=str))}")
    for f in failures[:5]:
        print("failure:", f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
