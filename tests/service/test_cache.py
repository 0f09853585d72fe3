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


def test_closed_port_degrades_without_touching_redis_again():
    cache = ResilientCache(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.05, probe_interval_s=30)
    start = time.perf_counter()
    assert cache.get("k", "unit") is None
    assert cache.set("k", 1) is False
    assert not cache.available  # off: requests do not try Redis, only the background probe does
    for _ in range(100):
        assert cache.get("k", "unit") is None
    assert time.perf_counter() - start < 1.0
    cache.close()


def test_entries_over_the_size_cap_are_not_stored(run_id):
    cache = ResilientCache("redis://127.0.0.1:6379/0", ttl_s=30, max_entry_bytes=1000)
    small, big = f"{run_id}:unit:small", f"{run_id}:unit:big"
    assert cache.set(small, {"words": ["red"] * 10}) is True
    assert cache.set(big, {"words": ["red"] * 1000}, "results") is False
    assert cache.get(small, "unit") == {"words": ["red"] * 10}
    assert cache.get(big, "unit") is None and cache._client.exists(big) == 0
    assert cache.available  # a large value is not an outage
    cache.close()


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
def test_redis_stop_and_start_recovers_without_traffic(tmp_path):
    """While Redis is down the cache stays off however long that is (no blind back-off that turns
    it on again to find out); once Redis is back, the background probe turns it on without a
    single request having to fail first."""
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]

    def start():
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(port, True)
        return proc

    proc = start()
    cache = ResilientCache(f"redis://127.0.0.1:{port}/0", socket_timeout_s=0.1, probe_interval_s=0.1)
    try:
        cache.set("a", 1)
        assert cache.get("a", "unit") == 1
        proc.terminate()
        proc.wait(10)
        _wait_port(port, False)
        assert cache.get("a", "unit") is None  # down: a miss, not an exception
        for _ in range(10):  # many probe intervals: still off, still no exception
            time.sleep(0.1)
            assert not cache.available and cache.get("a", "unit") is None
        proc = start()
        deadline = time.monotonic() + 10
        while not cache.available and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cache.available
        assert cache.set("b", 2) is True and cache.get("b", "unit") == 2
    finally:
        proc.terminate()
        proc.wait(10)
        cache.close()
