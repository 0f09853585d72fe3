"""Service fixtures: a real index of generated shapes built with lexvla-mini, a real uvicorn server."""
from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from lexvla.testing import build_index
from lexvla.testing import shape_images as draw_shape_images


@pytest.fixture(scope="session")
def shape_images(tmp_path_factory) -> Path:
    """40 labelled shapes (``lexvla.testing.shape_images``)."""
    folder = tmp_path_factory.mktemp("shapes")
    draw_shape_images(folder)
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

    def __init__(self, settings, engine=None, **config_options):
        import uvicorn

        from service.app import create_app, server_options

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings, engine)
        options = {"log_level": "warning"} | server_options(settings) | config_options
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, workers=1, **options)
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
