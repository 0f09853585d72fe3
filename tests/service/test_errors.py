"""Honest errors from a real server: every client error a 4xx in the one documented shape, no
internals (exception text, absolute paths, object reprs) in any body, a request id in a 500, no
more than a short prefix of what the client sent, and a connection that serves the next request
(or says it will not)."""
from __future__ import annotations

import base64
import logging
import shutil
import socket

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
    assert "not UTF-8" in err.detail
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
        # the server drops the connection after a 500 and says so: the client's next request goes on a new one
        assert r.headers["connection"] == "close"
        assert http.get("/healthz").json() == {"status": "ok"}
        answers = same_connection(srv.port, [_post("/search", b'{"query": "a red circle"}'), _get("/healthz")])
        assert answers[0][:2] == (500, "close") and answers[1:] == ["closed"], answers


# ---- deep and wide JSON, broken bodies ------------------------------------------------------
def _post(path: str, body: bytes, ctype: str = "application/json") -> bytes:
    return f"POST {path} HTTP/1.1\r\nhost: t\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: t\r\n\r\n".encode()


def same_connection(port: int, requests: list[bytes]) -> list:
    """Raw HTTP/1.1 requests one after another on one keep-alive connection: ``(status, the
    Connection header, body)`` of each answer, ``"closed"`` where the server closed it instead."""
    out: list = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock, sock.makefile("rb") as f:
        for req in requests:
            try:
                sock.sendall(req)
                status_line = f.readline()
            except OSError:
                status_line = b""
            if not status_line:
                out.append("closed")
                continue
            headers = {}
            while (line := f.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            out.append((int(status_line.split()[1]), headers.get("connection"), f.read(int(headers.get("content-length", 0)))))
    return out


def _json_operations(http) -> list[str]:
    doc = http.get("/openapi.json").json()
    return sorted(path for path, ops in doc["paths"].items()
                  for op in ops.values() if "application/json" in op.get("requestBody", {}).get("content", {}))  # fmt: skip


def _deep(depth: int) -> list[bytes]:
    """A deep array, a deep object, and a deep array as the value of each route's required field."""
    array = b"[" * depth + b"]" * depth
    return [array, b'{"a":' * depth + b"1" + b"}" * depth, b'{"query": %s, "inputs": %s, "image_base64": %s}' % (array, array, array)]


@pytest.mark.parametrize("depth", [100, 959, 960, 2_000, 100_000])
def test_deep_json_is_a_4xx_on_every_json_route_and_the_connection_serves_on(server, http, depth):
    """Python's JSON parser recurses once per level: past its recursion limit (about 960 levels
    in the server) that was a 500 on the routes that parse their own JSON, and the next request
    on the connection failed. Every JSON route answers 400 or 422 now, on a connection that stays."""
    routes = _json_operations(http)
    assert {"/encode", "/search", "/search/image", "/embed_sparse"} <= set(routes)
    for route in routes:
        for body in _deep(depth):
            answers = same_connection(server.port, [_post(route, body), _get("/healthz")])
            (status, connection, content), after = answers
            assert status in (400, 422) and connection is None, (route, depth, status, content[:200])
            err = ErrorResponse.model_validate_json(content)
            assert len(content) < 2_000 and ("nested too deeply" in err.detail if status == 400 else err.errors), (route, err)
            assert after[0] == 200, (route, depth, after)


def test_wide_json_is_refused_by_the_limits_in_a_short_answer(http):
    """Wide bodies (each under the 1 MB body limit) meet a limit that names itself, and an answer
    listing pydantic's errors lists 20 of them, whatever the body held."""
    cases = [
        ("/search", {"query": "red", "exclude": [f"w{i}" for i in range(60_000)]}, 422, "LEXVLA_MAX_QUERY_WORDS"),
        ("/search", {"query": "red", "boost": {f"w{i}": 2.0 for i in range(40_000)}}, 422, "LEXVLA_MAX_QUERY_WORDS"),
        ("/search", {"query": "red", "exclude": [0] * 150_000}, 422, "(and 149999 more)"),
        ("/embed_sparse", {"inputs": ["red"] * 100_000}, 413, "LEXVLA_MAX_EMBED_TEXTS"),
        ("/encode", {"image_base64": "", "heatmaps": [f"w{i}" for i in range(60_000)]}, 422, "LEXVLA_MAX_HEATMAPS"),
        ("/search/image", {"image_base64": "", "exclude": [[]] * 100_000}, 422, "(and 99999 more)"),
    ]
    for route, body, status, message in cases:
        r = http.post(route, json=body)
        err = _error(r, status)
        assert message in err.detail and len(r.content) < 5_000, (route, err.detail[:200], len(r.content))
        assert err.errors is None or len(err.errors) <= 20


def test_broken_bodies_of_every_parser_are_one_4xx(http):
    """Multipart, JSON and base64 that cannot be read: a 400 or 422 in the one shape, never a 500."""
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    multipart = "multipart/form-data; boundary=b"
    bodies = [
        (b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n", multipart, 400),  # a part without a name
        (b"--b\r\n\r\n\r\n--b--", multipart, 400),  # a part without headers
        (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n", multipart, None),  # cut short
        (b"\xff\xfe\x00garbage", multipart, None),
        (b'{"image_base64": "data:image/png;base64"}', "application/json", 422),  # a data: URL without its comma
        (b'{"image_base64": "data:,' + png.encode() + b'"}', "application/json", 422),  # valid base64, no image
        ('{"image_base64": "\u00e9\u00e9\u00e9\u00e9"}'.encode(), "application/json", 422),  # not ASCII
        (b'{"image_base64": "QUJD', "application/json", 422),  # cut short
        (b'{"image_base64": "QQ==", "k": 1' + b"0" * 5000 + b"}", "application/json", 422),  # an int of 5,000 digits
    ]
    for route in ("/encode", "/search/image"):
        for body, ctype, status in bodies:
            r = http.post(route, content=body, headers={"content-type": ctype})
            assert r.status_code in ((400, 422) if status is None else (status,)), (route, body[:60], r.text[:300])
            _error(r, r.status_code)
    r = http.post("/embed_sparse/images", content=bodies[0][0], headers={"content-type": multipart})
    _error(r, 400)


# ---- what the client sent, quoted short -----------------------------------------------------
def test_errors_quote_a_short_prefix_of_what_the_client_sent(http, shape_images):
    """Ids, words, dict keys, content types and file names of any length: the answer quotes
    their first 40 characters and says how long they were. (A part header of a multipart body
    longer than the parser takes is a 400 of its own: file names and types here are shorter.)"""
    long = "q" * 60_000
    png = (shape_images / "red_circle_1.png").read_bytes()
    cases = [
        (http.get("/images/" + long), 404),
        (http.get(f"/images/{long}/thumb"), 404),
        (http.get("/images/red_circle_1.png/heatmap", params={"word": long[:64]}), 422),
        (http.post("/search", json={"query": "red", "boost": {long: -1}}), 422),
        (http.post("/search", json={"query": "red", "boost": {long: "x"}}), 422),  # pydantic's location: the key
        (http.post("/search", json={"query": "qqzxv^2", "exclude": [long + str(i) for i in range(10)]}), 422),
        (http.post("/encode", content=b"x", headers={"content-type": "text/" + long}), 415),
        (http.post("/encode", files={"file": ("a.png", png, "text/" + long[:1000])}), 415),
        (http.post("/embed_sparse/images", files=[("file", (long[:1000], b"not an image", "image/png"))]), 422),
        (http.post("/encode", files={"file": ("a.png", png, "image/png")}, data={long[:1000]: ["1", "2"]}), 422),
    ]
    for r, status in cases:
        err = _error(r, status)
        assert len(r.content) < 1_000 and "q" * 41 not in r.text and "characters)" in r.text, (err.detail, len(r.content))
    err = _error(http.get("/images/" + long), 404)
    assert err.detail == f"no indexed image with id {'q' * 40!r}... (60000 characters)"
    err = _error(http.post("/search", json={"query": "qqzxv^2", "exclude": [f"w{i}qq" for i in range(200)]}), 422)
    assert "(w0qq, w1qq, w2qq, w3qq, w4qq and 196 more: an edit" in err.detail, err.detail


def test_each_error_class_has_its_status_from_the_one_table():
    """The status comes from the class (service.exceptions.HTTP_STATUS, nearest class in the MRO),
    never from the message: an ImageError that says "too large" but is not an ImageTooLarge is a 422."""
    from service import exceptions as e


    cases = [
        (e.InputError("bad k", "k"), 422), (e.ImageError("upload", "corrupt or truncated image"), 422),
        (e.ImageError("upload", "too large: said, not typed"), 422), (e.ImageTooLarge("upload", "over the limit"), 413),
        (e.UploadTooLarge("over 10 bytes"), 413), (e.BatchTooLarge("3 texts"), 413),
        (e.InvalidFields([{"loc": ("k",), "msg": "bad", "type": "int_parsing"}]), 422),
        (e.UnsupportedMediaType("text/plain"), 415), (e.NotFound("no such id"), 404), (e.Busy("image", 1), 503),
        (RuntimeError("boom"), 500),
    ]  # fmt: skip
    assert [e.status_of(exc) for exc, _ in cases] == [status for _, status in cases]
