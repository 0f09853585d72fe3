"""The service over a sharded index answers exactly as over one index: hits, scores, explanations, images."""
from __future__ import annotations

import pytest

from tests.service.conftest import LiveServer, make_settings

pytestmark = pytest.mark.integration
QUERIES = ["a red circle", "blue square", "a green star", "yellow triangle on black", "two shapes"]


def _hits(client, query: str) -> list:
    r = client.post("/search", json={"query": query, "k": 15})
    assert r.status_code == 200, r.text
    return [(h["id"], h["score"], h["matches"]) for h in r.json()["hits"]]


def test_sharded_index_serves_the_same_results(tmp_path, mini_bundle_dir, shape_images, server, run_id):
    from indexer.job import run_index_job
    from indexer.job_config import IndexJobConfig
    from service.engine import Engine

    root = tmp_path / "sharded"
    rep = run_index_job(IndexJobConfig(bundle=mini_bundle_dir, input=shape_images, root=root, progress=False, device="cpu", shards=3))
    assert rep.shards == 3
    engine = Engine.load(make_settings(mini_bundle_dir, root, run_id + "-sharded", redis_url=""))
    try:
        with LiveServer(engine.settings, engine) as sharded, sharded.client() as many, server.client() as one:
            assert many.get("/readyz").json()["doc_count"] == one.get("/readyz").json()["doc_count"]
            for q in QUERIES:
                assert _hits(many, q) == _hits(one, q)
            doc_id = _hits(many, QUERIES[0])[0][0]
            assert many.get(f"/images/{doc_id}").content == one.get(f"/images/{doc_id}").content
    finally:
        engine.close()
