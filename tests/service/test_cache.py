"""The Redis cache against real Redis servers: hits, TTL keys, outages degrade to no cache."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from service.cache import ENTRY_FORMAT, ResilientCache, cache_key
from tests.service.conftest import free_port

pytestmark = pytest.mark.integration


def test_key_depends_on_versions_and_request():
    a = cache_key("p", "res", ("b1", "i1"), {"text": "red", "k": 5})
    assert a == cache_key("p", "res", ("b1", "i1"), {"k": 5, "text": "red"})
    assert a != cache_key("p", "res", ("b1", "i2"), {"text": "red", "k": 5})
    assert a != cache_key("p", "res", ("b2", "i1"), {"text": "red", "k": 5})
    assert a.startswith(f"p:res:f{ENTRY_FORMAT}:b1:i1:")  # the entry format is in the key


def test_entries_of_another_format_are_misses_not_misread(run_id):
    """An entry without a format (the bare positional lists the service stored before formats) or
    with another one is ignored: a miss, counted as ``stale``; the next store replaces it."""
    from service import metrics

    cache = ResilientCache("redis://127.0.0.1:6379/0", ttl_s=30)
    key = f"{run_id}:unit:format"
    stale = metrics.CACHE.labels("unit", "stale")
    before = stale._value.get()
    for old in ([["red", 0.5]], {"format": ENTRY_FORMAT - 1, "value": [["red", 0.5]]},
                {"format": ENTRY_FORMAT, "value": 1, "extra": 2}, "not json {"):  # fmt: skip
        cache._client.set(key, old if isinstance(old, str) else json.dumps(old))
        assert cache.get(key, "unit") is None
    assert stale._value.get() == before + 4
    assert cache.set(key, [["red", 0.5]]) is True
    assert json.loads(cache._client.get(key)) == {"format": ENTRY_FORMAT, "value": [["red", 0.5]]}
    assert cache.get(key, "unit") == [["red", 0.5]]
    cache.close()


def test_a_search_over_an_old_format_entry_is_a_miss_with_the_right_hits(engine, served):
    """A result entry of an older format under the key a search uses is not read as a result: the
    search answers from the index (``miss``), stores its own entry, and the next one is a hit."""
    import redis

    prefix = f"{engine.settings.cache_prefix}-fmt-{uuid.uuid4().hex[:8]}"  # cleaned up with the run's keys
    srv = served(cache_prefix=prefix)
    client = redis.Redis.from_url(srv.app.state.settings.redis_url)
    query = {"query": "a red circle", "k": 3}
    with srv.client() as http:
        fresh = http.post("/search", json=query).json()
        (key,) = client.keys(f"{prefix}:hits:*")
        stored = json.loads(client.get(key))
        assert stored["format"] == ENTRY_FORMAT
        old = stored["value"]  # what the service stored before entries had a format: the bare value
        old["hits"] = [[h[0], 99.0, 1, 1, []] for h in old["hits"]]  # misread, it would show these
        client.set(key, json.dumps(old))
        again = http.post("/search", json=query).json()
        assert again["cache"] == {"encode": "hit", "results": "miss"}
        assert again["hits"] == fresh["hits"]
        assert http.post("/search", json=query).json()["cache"]["results"] == "hit"
    client.close()


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

    cache = ResilientCache(f"redis://127.0.0.1:{port}/0", socket_timeout_s=0.1, probe_interval_s=0.1)
    proc = start()
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


def _search(http, query: str, k: int) -> dict:
    r = http.post("/search", json={"query": query, "k": k})
    assert r.status_code == 200, r.text[:300]
    return r.json()


def _entry_bytes(engine, query: str, k: int) -> int:
    """Size of the result cache's entry for a /search (the cacheable part of the engine's result)."""
    entry = engine.search.search_text(query, k=k).to_cache()
    return len(json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode())


def test_results_over_the_entry_cap_are_served_but_not_cached(engine, http):
    from service.engine import Engine
    from tests.service.conftest import LiveServer

    query = f"a red circle {uuid.uuid4().hex[:6]}"
    small, big = _entry_bytes(engine, query, 1), _entry_bytes(engine, query, 30)
    assert small < big
    cap = (small + big) // 2
    settings = engine.settings.model_copy(update={"cache_max_entry_bytes": cap, "cache_prefix": engine.settings.cache_prefix + "-cap"})
    cache = ResilientCache(settings.redis_url, max_entry_bytes=cap)
    with LiveServer(settings, Engine(settings, engine.bundle, engine.searcher, cache)) as srv, srv.client() as capped:
        assert [_search(capped, query, 30)["cache"] for _ in range(2)] == [
            {"encode": "miss", "results": "miss"}, {"encode": "hit", "results": "miss"}]  # served, never stored
        assert [_search(capped, query, 1)["cache"]["results"] for _ in range(2)] == ["miss", "hit"]
        assert 'lexvla_cache_total{kind="results",outcome="too_large"}' in capped.get("/metrics").text
    cache.close()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server binary")
def test_server_rides_through_a_redis_restart(engine, tmp_path):
    """Searches succeed while Redis is down (cache 'off'); once it is back the service uses it
    again without a request failing or a back-off to wait out."""
    from service.engine import Engine
    from tests.service.conftest import LiveServer

    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    settings = engine.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0", "cache_probe_interval_s": 0.1})
    cache = ResilientCache(settings.redis_url, probe_interval_s=0.1)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, True)
        with LiveServer(settings, Engine(settings, engine.bundle, engine.searcher, cache)) as srv, srv.client() as http:
            assert [_search(http, "a blue star", 5)["cache"]["results"] for _ in range(2)] == ["miss", "hit"]
            proc.terminate()
            proc.wait(10)
            _wait_port(port, False)
            outcomes = {_search(http, f"a blue star {i}", 5)["cache"]["results"] for i in range(20)}
            assert outcomes <= {"off", "miss"} and "off" in outcomes
            assert http.get("/readyz").json()["cache"] is False
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_port(port, True)
            deadline = time.monotonic() + 10
            while not http.get("/readyz").json()["cache"] and time.monotonic() < deadline:
                time.sleep(0.02)
            assert http.get("/readyz").json()["cache"] is True
            assert [_search(http, "a green star", 5)["cache"]["results"] for _ in range(2)] == ["miss", "hit"]
    finally:
        proc.terminate()
        proc.wait(10)
        cache.close()


def test_the_query_settings_are_part_of_the_cache_keys(engine, served):
    """A server with another query top-k or expansion floor (same Redis, bundle and index) does not
    answer from the other setting's cached encodings and results."""
    query = {"query": "a green triangle", "k": 5}
    first = served()
    with first.client() as client:
        client.post("/search", json=query)
        if client.post("/search", json=query).json()["cache"]["results"] != "hit":
            pytest.skip("no Redis: nothing is cached")
    for setting in ({"query_min_share": 0.0}, {"query_top_k": 8}):
        with served(**setting).client() as client:
            cache = client.post("/search", json=query).json()["cache"]
        assert cache["results"] == "miss" and cache["encode"] == "miss", setting
