"""End-to-end HTTP tests against a real uvicorn server, real index, real Redis."""
from __future__ import annotations

import base64
import io
import json
import os
import uuid
from urllib.parse import quote

import pytest
from PIL import Image

pytestmark = pytest.mark.integration


def search(http, query: str, **kw):
    return http.post("/search", json={"query": query, **kw})


def test_search_explains_every_hit(http):
    r = search(http, "a red circle", k=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["hits"] and body["query"]["words"]
    assert {"encode", "search", "explain", "total"} <= set(body["timings_ms"])
    for hit in body["hits"]:
        assert hit["matches"], hit
        assert sum(m["contribution"] for m in hit["matches"]) == pytest.approx(hit["score"], rel=1e-6)
        assert sum(m["share"] for m in hit["matches"]) == pytest.approx(1.0)
        contribs = [m["contribution"] for m in hit["matches"]]
        assert contribs == sorted(contribs, reverse=True)
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    # the body is the route's declared response model, exactly
    from service.schemas import SearchResponse

    assert SearchResponse.model_validate(body).model_dump(mode="json") == body
    assert r.headers["content-type"] == "application/json"
    assert r.headers["server-timing"].startswith("app;dur=")


def test_image_and_thumbnail_urls_serve_indexed_files(http):
    hit = search(http, "a blue star", k=3).json()["hits"][0]
    img = http.get(hit["image_url"])
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(img.content)).size == (hit["width"], hit["height"])
    thumb = http.get(hit["thumb_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"


def test_ids_with_slashes_are_served(http, engine):
    nested = "more/red_circle_0.png"  # shape_images puts every fourth image in a sub-folder
    assert engine.searcher.document(nested) is not None
    for suffix in ("", "/thumb"):
        assert http.get(f"/images/{quote(nested, safe='')}{suffix}").status_code == 200
    assert http.get(f"/images/{nested}").status_code == 200


@pytest.mark.parametrize("path", ["/images/..%2F..%2Fetc%2Fpasswd", "/images/%2Fetc%2Fpasswd", "/images/..%2F..%2Fetc%2Fpasswd/thumb",
                                  "/images/nope.png", "/images/%2E%2E/%2E%2E/etc/passwd/heatmap?word=red"])
def test_traversal_and_unknown_ids_are_404(http, path):
    r = http.get(path)
    assert r.status_code == 404, r.text
    assert "no indexed image" in r.json()["detail"]


def test_exclusion_removes_every_hit_with_the_word(http, engine):
    base = search(http, "a red circle", k=20).json()
    word = base["hits"][0]["matches"][0]["word"]
    edited = search(http, f"a red circle -{word}", k=20).json()
    assert word in edited["query"]["excluded"]
    assert word not in {w["word"] for w in edited["query"]["words"]}
    for hit in edited["hits"]:
        assert word not in engine.searcher.document(hit["id"]).impacts
    via_list = search(http, "a red circle", k=20, exclude=[word]).json()
    assert [h["id"] for h in via_list["hits"]] == [h["id"] for h in edited["hits"]]


def test_required_words_are_in_every_hit(http, engine):
    """Lucene's ``+word``: without it some hits lack the word; with it none does, and it still scores."""
    docs = [engine.searcher.document(h["id"]).impacts for h in search(http, "a circle", k=20).json()["hits"]]
    word = next(w for w in sorted(docs[0], key=docs[0].get, reverse=True) if any(w not in d for d in docs))
    soft = search(http, f"circle {word}", k=20).json()
    assert any(word not in engine.searcher.document(h["id"]).impacts for h in soft["hits"])  # the test can tell
    must = search(http, f"circle +{word}", k=20).json()
    assert must["query"]["required"] == [word] and must["hits"]
    for hit in must["hits"]:
        assert word in {m["word"] for m in hit["matches"]}
    via_list = search(http, "circle", k=20, require=[word]).json()
    assert [(h["id"], h["score"]) for h in via_list["hits"]] == [(h["id"], h["score"]) for h in must["hits"]]
    assert search(http, f"circle +{word} -{word}", k=20).json()["query"]["required"] == []  # the exclusion wins


def test_boost_changes_weights_and_ranking(http):
    base = search(http, "a red circle", k=20).json()
    weights = {w["word"]: w["weight"] for w in base["query"]["words"]}
    target = base["hits"][-1]["matches"][-1]["word"]  # a word some images share, not the strongest
    boosted = search(http, "a red circle", k=20, boost={target: 8.0}).json()
    bw = {w["word"]: w["weight"] for w in boosted["query"]["words"]}
    assert bw[target] == pytest.approx(8.0 * weights[target], rel=1e-5)
    assert boosted["query"]["boosted"] == {target: 8.0}
    assert [(h["id"], h["score"]) for h in boosted["hits"]] != [(h["id"], h["score"]) for h in base["hits"]]
    inline = search(http, f"a red circle {target}^8", k=20).json()
    assert inline["query"]["words"] == boosted["query"]["words"]


def test_added_and_unknown_words_are_reported(http):
    body = search(http, "a red circle +vehicle qqxzv^2 -zzqqy", k=5).json()
    assert "vehicle" in body["query"]["added"]
    assert set(body["query"]["ignored"]) == {"qqxzv", "zzqqy"}
    assert {w["word"] for w in body["query"]["left_out"]} == {"qqxzv", "zzqqy"}  # with why, beside the older field


def test_word_only_query(http):
    body = search(http, "+red +circle", k=5).json()
    assert {w["word"] for w in body["query"]["words"]} == {"red", "circle"}
    assert body["query"]["encoded"] == []


def test_second_identical_query_is_served_from_redis(http, run_id):
    q = f"a green triangle {uuid.uuid4().hex[:6]}"
    first = search(http, q, k=7).json()
    second = search(http, q, k=7).json()
    assert first["cache"]["results"] == "miss" and second["cache"]["results"] == "hit"
    assert second["hits"] == first["hits"] and "encode" not in second["timings_ms"]
    metrics = http.get("/metrics").text
    assert 'lexvla_cache_total{kind="results",outcome="hit"}' in metrics
    assert 'lexvla_stage_seconds_bucket{le="0.0005",stage="encode"}' in metrics
    other_k = search(http, q, k=8).json()  # a different request is a different key...
    assert other_k["cache"] == {"encode": "hit", "results": "miss"}  # ...but reuses the encoding


def test_redis_down_degrades_to_no_cache(engine):
    from service.cache import ResilientCache
    from service.engine import Engine
    from tests.service.conftest import LiveServer, free_port

    settings = engine.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    cache = ResilientCache(settings.redis_url, socket_timeout_s=0.05, probe_interval_s=30)
    down = Engine(settings, engine.bundle, engine.searcher, cache)
    with LiveServer(settings, down) as srv, srv.client() as http:
        for _ in range(3):
            r = search(http, "a yellow star", k=5)
            assert r.status_code == 200, r.text
            assert r.json()["cache"]["results"] == "off"
        assert http.get("/readyz").json()["cache"] is False


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_image_to_image_returns_itself_first(http, shape_images):
    path = shape_images / "blue_star_1.png"
    r = http.post("/search/image", files={"file": (path.name, path.read_bytes(), "image/png")}, data={"k": "5"})
    assert r.status_code == 200, r.text
    assert r.json()["hits"][0]["id"] == "blue_star_1.png"
    r = http.post("/search/image", json={"image_base64": base64.b64encode(path.read_bytes()).decode(), "k": 5,
                                         "exclude_id": "blue_star_1.png"})  # fmt: skip
    assert r.status_code == 200 and "blue_star_1.png" not in [h["id"] for h in r.json()["hits"]]


def test_encode_multipart_and_json_with_heatmaps(http, shape_images, engine):
    data = (shape_images / "red_circle_1.png").read_bytes()
    r = http.post("/encode", files={"file": ("x.png", data, "image/png")}, data={"heatmap_top_n": "2", "heatmaps": "red,qqzx"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["bundle_version"] == engine.bundle.version and body["words"]
    assert body["patch_grid"] == [7, 7]
    maps = {m["word"]: m for m in body["heatmaps"]}
    assert maps["red"]["png"].startswith("data:image/png;base64,") and maps["qqzx"]["in_vocabulary"] is False
    assert len(maps) == 4  # red, qqzx, and the top two words
    r = http.post("/encode", json={"image_base64": "data:image/png;base64," + base64.b64encode(data).decode(),
                                   "heatmaps": ["red"], "heatmap_format": "array"})  # fmt: skip
    grid = r.json()["heatmaps"][0]["grid"]
    assert len(grid) == 7 and len(grid[0]) == 7
    assert r.json()["words"] == body["words"]


def test_indexed_image_heatmap(http):
    r = http.get("/images/red_circle_1.png/heatmap", params={"word": "red"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (184, 152)
    assert http.get("/images/red_circle_1.png/heatmap", params={"word": "qqzxv"}).status_code == 422


def test_heatmaps_are_encoded_once_then_drawn_from_the_cache(http, engine, run_id):
    """The page's heatmap toggle asks for every hit's map: the patch grid is cached in Redis, so a
    second request skips the encoder and draws the same PNG; browsers may keep it an hour."""
    from service import metrics
    from service.cache import cache_key

    key = cache_key(run_id, "heat", (engine.bundle.version, engine.searcher.info.index_version),
                    {"id": "more/black_circle_0.png", "word": "circle"})  # fmt: skip
    engine.cache._client.delete(key)
    hits_before = metrics.CACHE.labels("heatmap", "hit")._value.get()
    first = http.get("/images/more%2Fblack_circle_0.png/heatmap", params={"word": "circle"})
    assert first.status_code == 200 and first.headers["cache-control"] == "max-age=3600"
    assert engine.cache._client.exists(key) == 1 and len(json.loads(engine.cache._client.get(key))["value"]) == 7  # the 7x7 grid
    second = http.get("/images/more%2Fblack_circle_0.png/heatmap", params={"word": "circle"})
    assert second.content == first.content
    assert metrics.CACHE.labels("heatmap", "hit")._value.get() == hits_before + 1


def _truncated_png() -> bytes:
    return _png(Image.new("RGB", (64, 64), "red"))[:60]


BAD_SEARCHES = [
    ({"query": ""}, 422, "empty"),
    ({"query": "   "}, 422, "empty"),
    ({"query": "-red"}, 422, "empty"),
    ({"query": "+qqzxv"}, 422, "not in the vocabulary"),
    ({"query": "x" * 600}, 422, "limit"),
    ({"query": "red", "k": 0}, 422, "k must be"),
    ({"query": "red", "k": 1000}, 422, "k must be"),
    ({"query": "red", "boost": {"red": -1}}, 422, "boost"),
    ({"k": 3}, 422, "query"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_SEARCHES)
def test_bad_searches_are_clear_4xx(http, body, status, message):
    r = http.post("/search", json=body)
    assert r.status_code == status, r.text
    assert message in str(r.json()["detail"])
    assert r.json()["errors"]  # hand-raised or FastAPI's: every 422 lists its errors


def test_bad_uploads_are_clear_4xx(http):
    bomb = _png(Image.new("L", (2500, 2500), 255))  # 6.25 Mpx > the 4 Mpx limit, a few kB on disk
    cases = [
        (dict(content=b"hello", headers={"content-type": "text/plain"}), 415, "content type"),
        (dict(files={"file": ("a.txt", b"hello", "text/plain")}), 415, "expected an image"),
        (dict(files={"file": ("a.png", b"not an image at all", "image/png")}), 422, "not a decodable image"),
        (dict(files={"file": ("a.png", _truncated_png(), "image/png")}), 422, "image"),
        (dict(files={"file": ("a.png", b"", "image/png")}), 422, "empty upload"),
        (dict(files={"file": ("a.png", bomb, "image/png")}), 413, "too large"),
        (dict(files={"file": ("a.bin", os.urandom(2_100_000), "application/octet-stream")}), 413, "limit"),
        (dict(files={"other": ("a.png", b"x", "image/png")}), 422, "'file' part"),
        (dict(json={"image_base64": "%%%not base64"}), 422, "base64"),
        (dict(content=b"{not json", headers={"content-type": "application/json"}), 422, "JSON"),
        (dict(json={"image_base64": base64.b64encode(_truncated_png()).decode()}), 422, "image"),
        (dict(files={"file": ("a.png", _png(Image.new("RGB", (8, 8))), "image/png")}, data={"top_n": "0"}), 422, "top_n"),
    ]
    for route in ("/encode", "/search/image"):
        for kwargs, status, message in cases:
            r = http.post(route, **kwargs)
            assert r.status_code == status, (route, message, r.text)
            assert message in r.json()["detail"], (route, r.json())
    assert http.get("/healthz").json() == {"status": "ok"}  # still serving


def test_health_ready_docs(http, engine):
    ready = http.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] and body["bundle_version"] == body["index_bundle_version"] == engine.bundle.version
    assert body["doc_count"] == 40
    spec = http.get("/openapi.json").json()
    assert {"/search", "/search/image", "/encode", "/images/{doc_id}", "/admin/reload"} <= set(spec["paths"])
    assert http.get("/docs").status_code == 200
    page = http.get("/")
    assert page.status_code == 200 and "search-form" in page.text


def test_upload_pixel_limit_does_not_hide_indexed_images(mini_bundle_dir, shape_index, run_id):
    """An image the indexer accepted is served even when it is larger than an upload may be."""
    from models.preprocess import InputError
    from service.engine import Engine
    from tests.service.conftest import make_settings

    engine = Engine.load(make_settings(mini_bundle_dir, shape_index, run_id, max_pixels=100, redis_url=""))
    try:
        doc_id = engine.search.search_text("a red circle", k=1).hits[0].doc_id
        assert engine.images.thumbnail(doc_id)[:2] == b"\xff\xd8"  # a JPEG
        assert engine.images.heatmap_png(doc_id, "red")[:4] == b"\x89PNG"
        with pytest.raises(InputError, match="too large"):  # the same file as an upload is refused
            engine.images.decode_upload(engine.images.image_file(doc_id).read_bytes())
    finally:
        engine.close()
