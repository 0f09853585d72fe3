"""Start-up checks and hot reload of new index generations while requests are in flight."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import SecretStr

from lexvla.testing import build_index, draw_shape
from service.engine import Engine, StartupError
from tests.service.conftest import LiveServer, make_settings

pytestmark = pytest.mark.integration


def test_startup_fails_fast_on_missing_bundle_or_index(tmp_path, mini_bundle_dir, shape_index, run_id):
    with pytest.raises(StartupError, match="no model bundle"):
        Engine.load(make_settings(tmp_path / "nope", shape_index, run_id))
    with pytest.raises(StartupError, match="no published index"):
        Engine.load(make_settings(mini_bundle_dir, tmp_path / "empty", run_id))


def test_startup_refuses_an_index_of_another_bundle(bundle_dir, shape_index, run_id):
    with pytest.raises(StartupError, match="was built with bundle lexvla-mini"):
        Engine.load(make_settings(bundle_dir, shape_index, run_id))


def test_cli_search_prints_hits_with_words(mini_bundle_dir, shape_index):
    out = subprocess.run(
        [sys.executable, "-m", "lexvla", "search", "--bundle", str(mini_bundle_dir), "--index", str(shape_index), "-k", "3", "a red circle"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.strip().startswith(("1.", "2.", "3."))]
    assert len(lines) == 3 and "%" in lines[0] and ".png" in lines[0]
    bad = subprocess.run([sys.executable, "-m", "lexvla", "serve", "--bundle", "/nonexistent", "--index", str(shape_index)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 1 and "no model bundle" in bad.stderr


def test_concurrent_requests_during_publish_and_reload(engine, mini_bundle_dir, bundle_dir, shape_images, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(shape_images, images)
    root = tmp_path / "index"
    build_index(mini_bundle_dir, images, root)
    from indexer.searcher import LexicalSearcher

    settings = engine.settings.model_copy(update={"index": root, "reload_interval_s": 0.3, "admin_token": SecretStr("t0ken"),
                                                  "cache_prefix": engine.settings.cache_prefix + "-reload"})  # fmt: skip
    served = Engine(settings, engine.bundle, LexicalSearcher(root), engine.cache)
    failures: list[str] = []
    versions: set[str] = set()

    def client_loop(n: int) -> None:
        with srv.client() as http:
            for i in range(20):
                r = http.post("/search", json={"query": f"a {['red', 'blue', 'green'][i % 3]} shape", "k": 5 + n % 3})
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    versions.add(r.json()["versions"]["index"])

    with LiveServer(settings, served) as srv, srv.client(headers={"Authorization": "Bearer t0ken"}) as admin:
        before = admin.get("/readyz").json()["index_version"]
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(client_loop, n) for n in range(8)]
            for i in range(3):  # new images, then a publish, while the clients run
                draw_shape("circle", "purple", (150, 150), i).save(images / f"purple_circle_{i}.png")
            report = build_index(mini_bundle_dir, images, root)
            assert report.generation is not None and report.indexed == 3
            manual = admin.post("/admin/reload").json()  # the poller may have switched first
            for f in futures:
                f.result()
        deadline = time.monotonic() + 10
        while admin.get("/readyz").json()["index_version"] == before and time.monotonic() < deadline:
            time.sleep(0.1)
        after = admin.get("/readyz").json()
        assert failures == []
        assert after["index_version"] != before and after["doc_count"] == 43
        assert manual["index_version"] in (before, after["index_version"])
        hits = admin.post("/search/image", files={"file": ("p.png", (images / "purple_circle_1.png").read_bytes(), "image/png")}).json()
        assert hits["hits"][0]["id"] == "purple_circle_1.png"

        build_index(bundle_dir, images, root, rebuild=True)  # a generation of ANOTHER bundle is published
        refused = admin.post("/admin/reload").json()
        assert refused["switched"] is False and "built with bundle" in refused["detail"]
        assert admin.get("/readyz").json()["index_version"] == after["index_version"]
        assert admin.post("/search", json={"query": "red"}).status_code == 200
    served.searcher.close()
