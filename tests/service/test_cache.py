"""The Redis cache against real Redis servers: hits, TTL keys, outages degrade to no cache."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from service.cache import ResilientCache, cache_key
from tests.service.conftest import free_port

pytestmark = pytest.mark.integration


def test_key_depends_on_versions_and_request():
    a = cache_key("p", "res", ("b1", "i1"), {"text": "red", "k": 5})
    assert a == cache_key("p", "res", ("b1", "i1"), {"k": 5, "text": "red"})
    assert a != cache_key("p", "res", ("b1", "i2"), {"text": "red", "k": 5})
    assert a != cache_key("p", "res", ("b2", "i1"), {"text": "red", "k": 5})
    assert a.startswith("p:res:b1:i1:")


def test_roundtrip_and_ttl_on_real_redis(run_id):
    cache = ResilientCache("redis://127.0.0.1:6379/0", ttl_s=30)
    key = f"{run_id}:unit:roundtrip"
    assert cache.get(key, "unit") is None
    cache.set(key, {"words": [["red", 0.5]]})
    assert cache.get(key, "unit") == {"words": [["red", 0.5]]}
    assert 0 < cache._client.ttl(key) <= 30
    cache.close()


def test_closed_port_degrades_and_backs_off():
    cache = ResilientCache(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.05, backoff_s=30)
    start = time.perf_counter()
    assert cache.get("k", "unit") is None
    cache.set("k", 1)
    assert not cache.available  # backing off: no more connection attempts
    for _ in range(100):
        assert cache.get("k", "unit") is None
    assert time.perf_counter() - start < 1.0


def _wait_port(port: int, up: bool, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            is_up = s.connect_ex(("127.0.0.1", port)) == 0
        if is_up == up:
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} not {'up' if up else 'down'}")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server binary")
def test_redis_stop_and_start_recovers(tmp_path):
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]

    def start():
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(port, True)
        return proc

    proc = start()
    cache = ResilientCache(f"redis://127.0.0.1:{port}/0", socket_timeout_s=0.1, backoff_s=0.2)
    try:
        cache.set("a", 1)
        assert cache.get("a", "unit") == 1
        proc.terminate()
        proc.wait(10)
        _wait_port(port, False)
        assert cache.get("a", "unit") is None  # down: a miss, not an exception
        assert not cache.available
        proc = start()
        time.sleep(0.3)  # past the back-off
        cache.set("b", 2)
        assert cache.get("b", "unit") == 2
    finally:
        proc.terminate()
        proc.wait(10)
        cache.close()
