"""Table mode end to end: the real index and a real server, with a bundle that encodes queries
from its query table (``models.query_table``) and has no text model loaded."""
from __future__ import annotations

import json
import shutil

import pytest

from lexvla.testing import SHAPE_COLORS, SHAPE_NAMES
from service.search import NO_ROW
from tests.service.conftest import LiveServer

pytestmark = pytest.mark.integration

WORDS = [*SHAPE_COLORS, *SHAPE_NAMES, "circles", "shape"]


@pytest.fixture(scope="module")
def table_bundle(mini_bundle_dir, tmp_path_factory):
    """The session's lexvla-mini bundle (the index's: a table is no part of the version), with a table
    of the shapes' words (every vocabulary word would take a minute or two)."""
    from models.bundle import Bundle
    from models.query_table import build_query_table

    copy = tmp_path_factory.mktemp("query-table") / "lexvla-mini"
    shutil.copytree(mini_bundle_dir, copy)
    build_query_table(copy, words=WORDS)
    return Bundle(copy, device="cpu", query_mode="table").warm()


@pytest.fixture
def table_server(engine, table_bundle):
    from service.engine import Engine

    settings = engine.settings.model_copy(update={"query_mode": "table"})
    with LiveServer(settings, Engine(settings, table_bundle, engine.searcher, engine.cache)) as srv:
        yield srv


def test_table_mode_searches_like_the_text_tower_without_it(table_server, table_bundle, http):
    with table_server.client() as client:
        assert client.get("/readyz").json()["providers"]["text"] == ["query_table"]
        # untrained heads: a query's vector is its typed words at importance 1, with or without context,
        # so the table's rows combine into the text tower's very vectors
        found = 0
        for query in ("red", "a blue star", "yellow circles", "a green shape", "a red circle"):
            want = http.post("/search", json={"query": query, "k": 8})
            got = client.post("/search", json={"query": query, "k": 8})
            assert want.status_code == got.status_code == 200, (want.text, got.text)
            want, got = want.json(), got.json()
            words = lambda body: {w["word"]: w["weight"] for w in body["query"]["words"]}  # noqa: E731
            assert words(got) == pytest.approx(words(want))
            assert [h["id"] for h in got["hits"]] == [h["id"] for h in want["hits"]]
            assert [h["score"] for h in got["hits"]] == pytest.approx([h["score"] for h in want["hits"]])
            found += len(got["hits"])
        assert found  # the untrained image words are ImageNet's: some shapes share a word with these queries
    assert table_bundle._text_session is None  # no text ONNX session was ever made


def test_table_mode_caches_apart_from_the_encoder(table_server, http):
    query = {"query": "a black triangle", "k": 7}
    http.post("/search", json=query)
    if http.post("/search", json=query).json()["cache"]["results"] != "hit":
        pytest.skip("no Redis: nothing is cached")
    with table_server.client() as client:
        first = client.post("/search", json=query).json()["cache"]
        assert first["results"] == "miss" and first["encode"] == "miss"  # the encoder's entries are not the table's
        assert client.post("/search", json=query).json()["cache"]["results"] == "hit"


def test_the_setting_loads_the_engine_in_table_mode(table_bundle, shape_index, run_id):
    """LEXVLA_QUERY_MODE=table through Engine.load: no text session is made at start-up or by a search."""
    from service.engine import Engine
    from tests.service.conftest import make_settings

    engine = Engine.load(make_settings(table_bundle.path, shape_index, run_id, query_mode="table", redis_url=""))
    try:
        assert engine.bundle.query_mode == "table"
        assert engine.search.encode_texts(["a red circle"])[0][0]  # words, from the table
        assert engine.bundle._text_session is None
    finally:
        engine.close()


def test_a_query_of_words_without_a_row_names_them(table_server):
    """A query whose every word lacks a row has no vector in table mode: 422, naming those words."""
    with table_server.client() as client:
        r = client.post("/search", json={"query": "a heptagram and a giraffe", "k": 5})
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert "no words left" in detail and "heptagram, giraffe: no row in the query table" in detail, detail
        assert "LEXVLA_QUERY_MODE=encoder" in detail
        # one word with a row is enough: the search runs on it, and the answer names the word it left out
        r = client.post("/search", json={"query": "a red heptagram", "k": 5})
        assert r.status_code == 200
        left = r.json()["query"]["left_out"]
        assert [w["word"] for w in left] == ["heptagram"] and "no row in the query table" in left[0]["reason"]


@pytest.mark.parametrize("word", ["zorblat", "🐶", "кошка", "γάτα"])
def test_table_mode_names_every_word_it_drops_whatever_its_script(table_server, word):
    # "apple" has no row of this small table but is a vocabulary word: the floor gives it its weight
    with table_server.client() as client:
        r = client.post("/search", json={"query": f"red apple {word}", "k": 5})
        assert r.status_code == 200, r.text
        query = r.json()["query"]
        assert [w["word"] for w in query["left_out"]] == [word], query["left_out"]
        assert query["left_out_count"] == len(query["left_out"])
        r = client.post("/search", json={"query": word, "k": 5})  # nothing left: a 422 that names it
        assert r.status_code == 422 and word in r.json()["detail"], r.text
        r = client.post("/embed_sparse", json={"inputs": [f"red {word}"], "format": "words"})
        assert r.status_code == 200 and "red" in r.json()[0]
        assert [word, NO_ROW] in [[w, why] for w, why in json.loads(r.headers["X-Left-Out"])[0]]
        r = client.post("/embed_sparse", json={"inputs": ["red", word]})  # /embed_sparse checked coverage only after this change
        assert r.status_code == 422 and "inputs[1]" in r.json()["detail"] and word in r.json()["detail"], r.text


def test_a_rebuilt_table_changes_a_cached_answer(engine, table_bundle, tmp_path):
    """The same Redis, the same bundle version: a server started on a rebuilt table must not answer from
    the old table's cache entries (they key on the table's digest, ``Bundle.text_encoder_id``)."""
    from models.bundle import Bundle
    from models.query_table import build_query_table
    from service.engine import Engine

    copy = tmp_path / "lexvla-mini"
    shutil.copytree(table_bundle.path, copy)
    settings = engine.settings.model_copy(update={"query_mode": "table"})
    query = {"query": "a red circle", "k": 6}
    with LiveServer(settings, Engine(settings, Bundle(copy, device="cpu", query_mode="table"), engine.searcher, engine.cache)) as srv:
        with srv.client() as client:
            client.post("/search", json=query)
            before = client.post("/search", json=query).json()
    if before["cache"]["results"] != "hit":
        pytest.skip("no Redis: nothing is cached")
    assert "red" in {w["word"] for w in before["query"]["words"]}
    build_query_table(copy, words=[w for w in WORDS if w != "red"])  # the table rebuilt without a row for "red"
    rebuilt = Bundle(copy, device="cpu", query_mode="table")
    assert rebuilt.version == table_bundle.version  # the bundle's version does not see the table
    with LiveServer(settings, Engine(settings, rebuilt, engine.searcher, engine.cache)) as srv:
        with srv.client() as client:
            after = client.post("/search", json=query).json()
    assert after["cache"]["results"] == "miss" and after["cache"]["encode"] == "miss"
    weight = lambda body: {w["word"]: w["weight"] for w in body["query"]["words"]}  # noqa: E731
    # without its row, "red" keeps only the typed-word floor: the answer the old table's cache held is not served
    assert weight(after)["red"] < 0.5 * weight(before)["red"]
