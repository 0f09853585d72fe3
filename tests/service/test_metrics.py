"""Prometheus metrics: requests and stages apart, build and index gauges, several workers summed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lexvla.testing import build_index, scene_images
from tests.service.conftest import free_port

pytestmark = pytest.mark.integration


def _samples(text: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _total(samples, name: str, **labels) -> float:
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def test_stages_sum_within_the_request_and_gauges_describe_the_index(http, engine):
    before = _samples(http.get("/metrics").text)
    body = http.post("/search", json={"query": f"a blue square {uuid.uuid4().hex[:6]}", "k": 5}).json()
    after = _samples(http.get("/metrics").text)

    stages = {s.labels["stage"] for s in after if s.name == "lexvla_stage_seconds_count"}
    assert {"encode", "search", "explain"} <= stages and not stages & {"total", "http"}
    stage_time = _total(after, "lexvla_stage_seconds_sum") - _total(before, "lexvla_stage_seconds_sum")
    request_time = (_total(after, "lexvla_http_request_duration_seconds_sum", route="/search", method="POST")
                    - _total(before, "lexvla_http_request_duration_seconds_sum", route="/search", method="POST"))  # fmt: skip
    reported = sum(ms for stage, ms in body["timings_ms"].items() if stage != "total") / 1000
    assert stage_time == pytest.approx(reported, abs=0.002) and 0 < stage_time <= request_time

    assert _total(after, "lexvla_index_documents") == engine.searcher.info.doc_count == 40
    info = [s for s in after if s.name == "lexvla_build_info"]
    assert [(s.labels["bundle"], s.labels["bundle_version"], s.value) for s in info] == [
        ("lexvla-mini", engine.bundle.version, 1.0)
    ]


def test_workers_share_one_metrics_view(tmp_path, bundle_dir):
    images, index, prom = tmp_path / "images", tmp_path / "index", tmp_path / "prom"
    scene_images(images, 4, seed=21)
    build_index(bundle_dir, images, index)
    prom.mkdir()
    (prom / "counter_1.db").write_bytes(b"")  # a file of an earlier run: must be cleared
    port = free_port()
    env = os.environ | {"LEXVLA_REDIS_URL": "", "LEXVLA_RELOAD_INTERVAL_S": "0", "LEXVLA_DEVICE": "cpu",
                        "PROMETHEUS_MULTIPROC_DIR": str(prom)}  # fmt: skip
    cmd = [sys.executable, "-m", "lexvla", "serve", "--bundle", str(bundle_dir), "--index", str(index),
           "--port", str(port), "--workers", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the service did not start"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        for _ in range(30):
            assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200  # a new connection each time
        samples = _samples(httpx.get(f"{url}/metrics", timeout=5).text)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert _total(samples, "lexvla_requests_total", route="/healthz") == 30  # summed over both workers
    assert _total(samples, "lexvla_index_documents") == 4
    writers = {f.stem.rsplit("_", 1)[-1] for f in prom.glob("*.db")}
    assert len(writers) >= 2 and "1" not in writers  # each worker wrote its own files; the stale one is gone


@pytest.mark.parametrize("on", [False, True])
def test_access_log_is_a_setting(engine, caplog, on):
    """A line per request only with LEXVLA_ACCESS_LOG (off by default: the metrics count requests)."""
    import logging

    from service.config import Settings
    from service.engine import Engine
    from tests.service.conftest import LiveServer

    assert Settings.model_fields["access_log"].default is False
    settings = engine.settings.model_copy(update={"access_log": on})
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    # log_config=None: uvicorn leaves the loggers propagating to the root, where caplog listens
    with LiveServer(settings, Engine(settings, engine.bundle, engine.searcher, engine.cache), log_config=None,
                    log_level="info") as srv, srv.client() as http:  # fmt: skip
        assert http.post("/search", json={"query": "a red circle", "k": 3}).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any("POST /search" in line for line in lines) == on
