"""Honest errors from a real server: every client error a 4xx in the one documented shape, no
internals (exception text, absolute paths, object reprs) in any body, a request id in a 500."""
from __future__ import annotations

import logging
import shutil

import httpx
import pytest

from lexvla.testing import build_index
from service.engine import Engine
from service.schemas import ErrorResponse
from tests.service.conftest import LiveServer

pytestmark = pytest.mark.integration


def _error(r: httpx.Response, status: int) -> ErrorResponse:
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"] == "application/json"
    err = ErrorResponse.model_validate(r.json())
    assert err.request_id == r.headers["x-request-id"]
    assert "0x" not in r.text and "Traceback" not in r.text
    return err


@pytest.mark.parametrize("body", [
    b'{"query": "dog \\ud800"}',
    b'{"query": "dog", "boost": {"cat\\udfff": 2.0}}',
    b'{"query": "dog", "exclude": ["\\ud83d"]}',
])  # fmt: skip
def test_unpaired_surrogates_are_a_422(http, body):
    err = _error(http.post("/search", content=body, headers={"content-type": "application/json"}), 422)
    assert "unpaired surrogate" in err.detail and err.errors and err.errors[0].type == "value_error"


def test_validation_errors_have_the_one_shape(http):
    err = _error(http.post("/search", json={"k": "many"}), 422)
    assert {tuple(e.loc) for e in err.errors} == {("body", "query"), ("body", "k")}
    assert err.detail.startswith("body.") and "(and 1 more)" in err.detail
    err = _error(http.get("/images/x/heatmap", params={"word": ""}), 422)
    assert err.errors[0].loc == ["query", "word"]


def test_every_422_lists_its_errors_whoever_found_them(http):
    """FastAPI's validation, a body the route parses itself, and a rule the engine checks all
    answer the same shape: a detail and ``errors`` located at the field."""
    err = _error(http.post("/search", json={"query": "red", "k": 0}), 422)  # the engine's k range
    assert [(e.loc, e.type) for e in err.errors] == [(["body", "k"], "value_error")] and err.errors[0].msg == err.detail
    err = _error(http.post("/search", json={"query": "red", "boost": {"red": -1}}), 422)
    assert err.errors[0].loc == ["body", "boost"]
    png = {"file": ("a.png", b"", "image/png")}
    for data in ({"top_n": "0", "heatmap_format": "gif"}, None):  # form fields pydantic refuses; then an empty file
        err = _error(http.post("/encode", files=png, data=data), 422)
        locs = sorted(e.loc for e in err.errors)
        assert locs == ([["body", "heatmap_format"], ["body", "top_n"]] if data else [["body", "file"]])
    err = _error(http.post("/search/image", json={"image_base64": "", "k": "x", "top_n": 0}), 422)
    assert sorted(e.loc[-1] for e in err.errors) == ["k", "top_n"] and "(and 1 more)" in err.detail
    err = _error(http.get("/images/red_circle_1.png/heatmap", params={"word": "qqzxv"}), 422)
    assert err.errors[0].loc == ["query", "word"]


def test_unparsable_bodies_are_a_400(http):
    latin1 = '{"query": "caf\xe9"}'.encode("latin-1")  # not UTF-8
    err = _error(http.post("/search", content=latin1, headers={"content-type": "application/json"}), 400)
    assert "parsing the body" in err.detail
    err = _error(http.post("/encode", content=latin1, headers={"content-type": "application/json"}), 400)
    assert "not UTF-8" in err.detail
    err = _error(http.post("/encode", content=b"--x\r\n", headers={"content-type": "multipart/form-data"}), 400)
    assert "boundary" in err.detail


def test_unknown_routes_and_methods_have_the_same_shape(http):
    assert _error(http.get("/nowhere"), 404).detail == "Not Found"
    assert _error(http.get("/search"), 405).detail == "Method Not Allowed"


def test_client_request_id_is_echoed(http):
    r = http.post("/search", json={"query": ""}, headers={"x-request-id": "trace-42"})
    assert _error(r, 422).request_id == "trace-42"
    r = http.get("/healthz", headers={"x-request-id": "not a token; <script>"})
    assert r.headers["x-request-id"] != "not a token; <script>" and len(r.headers["x-request-id"]) == 16


def test_undecodable_upload_names_no_object(http):
    for route in ("/encode", "/search/image"):
        err = _error(http.post(route, files={"file": ("a.png", b"\x89PNG\r\n\x1a\n garbage", "image/png")}), 422)
        assert err.detail.startswith("upload: ") and "BytesIO" not in err.detail


def test_corrupt_indexed_file_does_not_reveal_the_server_path(mini_bundle_dir, shape_images, tmp_path, engine, caplog):
    images = tmp_path / "images"
    images.mkdir()
    for name, source in zip(("red_circle_0.png", "blue_star_1.png", "green_square_0.png"), sorted(shape_images.glob("*.png")), strict=False):
        shutil.copy(source, images / name)
    root = tmp_path / "index"
    build_index(mini_bundle_dir, images, root)
    from indexer.searcher import LexicalSearcher

    settings = engine.settings.model_copy(update={"index": root, "redis_url": ""})
    served = Engine(settings, engine.bundle, LexicalSearcher(root), engine.cache)
    (images / "blue_star_1.png").write_bytes((images / "blue_star_1.png").read_bytes()[:100])  # corrupted on disk
    try:
        with LiveServer(settings, served) as srv, srv.client() as http, caplog.at_level(logging.WARNING):
            for url in ("/images/blue_star_1.png/thumb", "/images/blue_star_1.png/heatmap?word=blue"):
                r = http.get(url)
                err = _error(r, 422)
                assert "indexed image 'blue_star_1.png'" in err.detail and "truncated" in err.detail
                assert str(tmp_path) not in r.text and "/" not in err.detail
            assert str(images / "blue_star_1.png") in caplog.text  # the log has the path
            (images / "green_square_0.png").unlink()
            assert _error(http.get("/images/green_square_0.png/thumb"), 404).detail == "the file of indexed image 'green_square_0.png' is gone"
    finally:
        served.searcher.close()


def test_internal_error_carries_only_a_request_id(engine, shape_index, caplog):
    """A real failure (the engine's searcher closed under it): 500 with the id, the log has the rest."""
    from indexer.searcher import LexicalSearcher

    settings = engine.settings.model_copy(update={"redis_url": ""})
    broken = Engine(settings, engine.bundle, LexicalSearcher(shape_index), engine.cache)
    broken.searcher.close()
    with LiveServer(settings, broken) as srv, srv.client() as http, caplog.at_level(logging.ERROR):
        r = http.post("/search", json={"query": "a red circle"}, headers={"x-request-id": "boom-1"})
        err = _error(r, 500)
        assert err.detail.startswith("internal error") and err.request_id == "boom-1"
        assert "RuntimeError" not in r.text and "closed" not in r.text
        assert "request boom-1: POST /search failed" in caplog.text and "searcher is closed" in caplog.text
