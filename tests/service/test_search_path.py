"""/search on the approximate path: chosen per request or by LEXVLA_SEARCH_PATH, reported in the
answer, cached apart from the exact path's answers, and exhaustive settings give the exact hits."""
from __future__ import annotations

import pytest

from tests.service.conftest import LiveServer, make_settings

pytestmark = pytest.mark.integration
QUERIES = ["a red circle", "blue square", "a green star", "yellow triangle on black", "two shapes"]


def _search(client, query: str, **extra) -> dict:
    r = client.post("/search", json={"query": query, "k": 15, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def _hits(body: dict) -> list:
    return [(h["id"], h["score"], h["matches"]) for h in body["hits"]]


@pytest.fixture(scope="module")
def exhaustive_index(tmp_path_factory, mini_bundle_dir, shape_images):
    from indexer.ann import AnnBuild
    from indexer.job import run_index_job
    from indexer.job_config import IndexJobConfig

    root = tmp_path_factory.mktemp("exhaustive")
    run_index_job(IndexJobConfig(bundle=mini_bundle_dir, input=shape_images, root=root, progress=False, device="cpu", shards=2,
                                 ann=AnnBuild.exhaustive()))  # fmt: skip
    return root


def test_approximate_path_by_request_and_by_setting(exhaustive_index, mini_bundle_dir, run_id):
    from service.engine import Engine

    settings = make_settings(mini_bundle_dir, exhaustive_index, run_id + "-path", ann_query_cut=4096, ann_heap_factor=1.0)
    engine = Engine.load(settings)
    try:
        with LiveServer(settings, engine) as srv, srv.client() as http:
            answered = 0
            for q in QUERIES:
                exact = _search(http, q)
                assert exact["path"] == "exact"  # the default setting
                approximate = _search(http, q, path="approximate")
                assert approximate["path"] == "approximate"
                # cached apart: the exact answer was cached first, the approximate one is searched
                assert approximate["cache"]["results"] == "miss"
                assert _hits(approximate) == _hits(exact)
                answered += bool(exact["hits"])
                again = _search(http, q, path="approximate")
                assert again["cache"]["results"] == "hit" and again["path"] == "approximate"
            assert answered >= 3
        by_setting = settings.model_copy(update={"search_path": "approximate", "cache_prefix": run_id + "-path2"})
        with LiveServer(by_setting, Engine(by_setting, engine.bundle, engine.searcher, engine.cache)) as srv, srv.client() as http:
            assert _search(http, QUERIES[0])["path"] == "approximate"
            assert _search(http, QUERIES[0], path="exact")["path"] == "exact"
            r = http.post("/search", json={"query": "circle", "path": "nearest"})
            assert r.status_code == 422 and r.json()["errors"][0]["loc"][-1] == "path"
    finally:
        engine.close()


def test_index_without_the_structure_is_a_clear_422(tmp_path, mini_bundle_dir, shape_images, run_id):
    from indexer.job import run_index_job
    from indexer.job_config import IndexJobConfig
    from service.engine import Engine

    root = tmp_path / "no-ann"
    run_index_job(IndexJobConfig(bundle=mini_bundle_dir, input=shape_images, root=root, progress=False, device="cpu", ann=None))
    engine = Engine.load(make_settings(mini_bundle_dir, root, run_id + "-noann", redis_url=""))
    try:
        with LiveServer(engine.settings, engine) as srv, srv.client() as http:
            assert _search(http, "a red circle")["hits"]
            r = http.post("/search", json={"query": "a red circle", "path": "approximate"})
            assert r.status_code == 422, r.text
            assert "no approximate-search structure" in r.json()["detail"] and r.json()["errors"][0]["loc"] == ["body", "path"]
    finally:
        engine.close()


def test_slice_setting_reaches_the_searchers_and_changes_no_answer(exhaustive_index, mini_bundle_dir, run_id):
    """LEXVLA_SEARCH_SLICE_DOCS: how the exact path spreads one search over threads, never what it finds."""
    from indexer import lucene_search
    from service.engine import Engine

    answers = {}
    try:
        for slice_docs in (lucene_search.SLICE_DOCS, 0, 1):
            engine = Engine.load(make_settings(mini_bundle_dir, exhaustive_index, f"{run_id}-slices{slice_docs}",
                                               search_slice_docs=slice_docs))  # fmt: skip
            try:
                assert lucene_search._SLICE_DOCS == slice_docs
                answers[slice_docs] = [[(h.doc_id, h.score) for h in engine.search.search_text(q, 15).hits] for q in QUERIES]
            finally:
                engine.close()
    finally:
        lucene_search.set_slice_docs(None)
    assert answers[0] == answers[1] == answers[lucene_search.SLICE_DOCS]
    assert sum(len(hits) for hits in answers[0]) >= 40
