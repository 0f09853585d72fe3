"""``/embed_sparse`` over real HTTP: the vectors search and the index use, in TEI's shape and as
``{word: weight}``; bounded batches; errors in the one shape."""
from __future__ import annotations

import pytest

from models.sparse import quantize_weights

pytestmark = pytest.mark.integration


def _words_of(tei_vector: list[dict], words: list[str]) -> dict[str, float]:
    return {words[item["index"]]: item["value"] for item in tei_vector}


def test_texts_in_tei_shape_are_the_search_query(http, engine):
    r = http.post("/embed_sparse", json={"inputs": ["a red circle", "a blue star"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body) == 2 and all(set(item) == {"index", "value"} for vec in body for item in vec)
    values = [item["value"] for item in body[0]]
    assert values == sorted(values, reverse=True) and all(v > 0 for v in values)
    for text, vec in zip(("a red circle", "a blue star"), body, strict=True):
        searched = http.post("/search", json={"query": text, "k": 1}).json()["query"]["encoded"]
        assert _words_of(vec, engine.bundle.words) == pytest.approx({w["word"]: w["weight"] for w in searched})
    single = http.post("/embed_sparse", json={"inputs": "a red circle"}).json()
    assert single == body[:1]  # one text: still a list of vectors, as TEI answers


def test_texts_as_words_and_quantized(http, engine):
    words = http.post("/embed_sparse", json={"inputs": ["a red circle"], "format": "words"}).json()
    assert isinstance(words[0], dict) and "red" in words[0]
    impacts = http.post("/embed_sparse", json={"inputs": ["a red circle"], "format": "words", "quantized": True}).json()
    assert impacts == [quantize_weights(words[0], engine.bundle.config.quant_scale)]
    assert all(isinstance(v, int) and v > 0 for v in impacts[0].values())


def test_images_are_what_the_index_stores_and_encode_answers(http, engine, shape_images):
    paths = [shape_images / "red_circle_1.png", shape_images / "blue_star_0.png"]
    files = [("file", (p.name, p.read_bytes(), "image/png")) for p in paths]
    r = http.post("/embed_sparse/images", files=files, data={"format": "words", "quantized": "true"})
    assert r.status_code == 200, r.text
    stored = [engine.searcher.document(p.name).impacts for p in paths]
    assert r.json() == stored  # the same integer impacts the indexer wrote, in the same order
    floats = http.post("/embed_sparse/images", files=files, data={"format": "words"}).json()
    encoded = http.post("/encode", files={"file": files[0][1]}, data={"top_n": "4096"}).json()["words"]
    # a batch of two against a batch of one: ONNX sums in another order, float32 rounding differs
    assert floats[0] == pytest.approx({w["word"]: w["weight"] for w in encoded}, rel=1e-5)
    tei = http.post("/embed_sparse/images", files=files).json()
    for tei_vec, words in zip(tei, floats, strict=True):
        assert _words_of(tei_vec, engine.bundle.words) == words


def _error(r, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) <= {"detail", "request_id", "errors"} and body["request_id"] == r.headers["x-request-id"]
    return body


def test_batches_over_the_limit_are_a_413_naming_it(served, shape_images):
    srv = served(max_embed_texts=2, max_embed_images=1)
    png = (shape_images / "red_circle_1.png").read_bytes()
    with srv.client() as http:
        err = _error(http.post("/embed_sparse", json={"inputs": ["red", "blue", "green"]}), 413)
        assert err["detail"] == "3 texts in one request; the limit is 2 (LEXVLA_MAX_EMBED_TEXTS)"
        files = [("file", ("a.png", png, "image/png")), ("file", ("b.png", png, "image/png"))]
        err = _error(http.post("/embed_sparse/images", files=files), 413)
        assert err["detail"] == "2 images in one request; the limit is 1 (LEXVLA_MAX_EMBED_IMAGES)"
        assert http.post("/embed_sparse", json={"inputs": ["red", "blue"]}).status_code == 200


def test_bad_inputs_are_422_in_the_one_shape(http, shape_images):
    err = _error(http.post("/embed_sparse", json={"inputs": []}), 422)
    assert err["errors"] == [{"loc": ["body", "inputs"], "msg": err["detail"], "type": "value_error"}]
    err = _error(http.post("/embed_sparse", json={"inputs": ["red", "  "]}), 422)
    assert err["detail"].startswith("inputs[1] is empty")
    err = _error(http.post("/embed_sparse", json={"inputs": "red", "format": "xml"}), 422)
    assert [e["loc"] for e in err["errors"]] == [["body", "format"]]
    png = (shape_images / "red_circle_1.png").read_bytes()
    files = [("file", ("a.png", png, "image/png")), ("file", ("b.png", b"not an image", "image/png"))]
    err = _error(http.post("/embed_sparse/images", files=files), 422)
    assert err["detail"].startswith("file 1 ('b.png'): upload: ") and err["errors"][0]["loc"] == ["body", "file"]
    err = _error(http.post("/embed_sparse/images", files=files[:1], data={"format": "xml", "quantized": "maybe"}), 422)
    assert sorted(e["loc"][-1] for e in err["errors"]) == ["format", "quantized"]
    no_files = [("format", (None, "words"))]  # a multipart body with a field and no file part
    assert _error(http.post("/embed_sparse/images", files=no_files), 422)["errors"][0]["loc"] == ["body", "file"]
    _error(http.post("/embed_sparse/images", json={"inputs": "red"}), 415)


def test_openapi_documents_both_routes_with_examples(http):
    doc = http.get("/openapi.json").json()
    text = doc["paths"]["/embed_sparse"]["post"]
    assert set(text["responses"]["200"]["content"]["application/json"]["examples"]) == {"tei", "words"}
    request_schema = doc["components"]["schemas"]["EmbedSparseRequest"]
    assert request_schema["examples"][0] == {"inputs": ["a red circle", "a blue star"]}
    images = doc["paths"]["/embed_sparse/images"]["post"]
    assert images["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]["file"]["type"] == "array"
    assert {"413", "415", "422"} <= set(images["responses"])
