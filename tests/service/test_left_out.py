"""Every answer names what it left out (encoder mode): words without a weight of their own, edits of
words not in the vocabulary, and required words that cannot be searched."""
from __future__ import annotations

import json

import pytest

from service.search import NO_DIMENSION, NOT_IN_VOCABULARY, UNKNOWN_TO_TOKENIZER

pytestmark = pytest.mark.integration


def _left(body: dict) -> dict[str, str]:
    return {w["word"]: w["reason"] for w in body["query"]["left_out"]}


def test_a_word_without_a_dimension_and_an_edit_outside_the_vocabulary_are_named(http):
    r = http.post("/search", json={"query": "a red zorblat circle -qwxz", "k": 5})
    assert r.status_code == 200, r.text
    left = _left(r.json())
    assert left == {"zorblat": NO_DIMENSION, "qwxz": NOT_IN_VOCABULARY}, left
    assert r.json()["query"]["ignored"] == ["qwxz"]  # the older field says the same
    again = http.post("/search", json={"query": "a red zorblat circle -qwxz", "k": 5})  # from the results cache
    assert _left(again.json()) == left


@pytest.mark.parametrize("word, reason", [("🐶", UNKNOWN_TO_TOKENIZER), ("кошка", NO_DIMENSION), ("γάτα", NO_DIMENSION)])
def test_words_of_any_script_are_named_and_a_query_of_only_them_is_a_422_naming_them(http, word, reason):
    r = http.post("/search", json={"query": f"a red circle {word}", "k": 5})
    assert r.status_code == 200 and _left(r.json()) == {word: reason}, r.text
    r = http.post("/search", json={"query": word, "k": 5})
    if r.status_code == 200:  # the expansion found words for it: still named as having none of its own
        assert _left(r.json()) == {word: reason}
    else:
        assert r.status_code == 422 and word in r.json()["detail"] and reason in r.json()["detail"], r.text


def test_a_required_word_that_cannot_be_searched_is_a_422_not_quietly_dropped(http):
    r = http.post("/search", json={"query": "a red circle +zorblat", "k": 5})
    assert r.status_code == 422, r.text
    assert "zorblat" in r.json()["detail"] and "required" in r.json()["detail"]
    r = http.post("/search", json={"query": "a red circle", "require": ["zorblat"], "k": 5})
    assert r.status_code == 422 and "zorblat" in r.json()["detail"]


def test_embed_sparse_names_left_out_words_in_a_header(http):
    r = http.post("/embed_sparse", json={"inputs": ["a red zorblat", "a blue star"], "format": "words"})
    assert r.status_code == 200, r.text
    assert json.loads(r.headers["X-Left-Out"]) == [[["zorblat", NO_DIMENSION]], []]


def test_echoes_are_bounded(http):
    words = [f"zz{i:04d}{'q' * 60}" for i in range(120)]  # 120 exclusions of long words not in the vocabulary
    r = http.post("/search", json={"query": "red", "exclude": words, "k": 5})
    assert r.status_code == 200, r.text
    query = r.json()["query"]
    assert len(query["left_out"]) == 50 and query["left_out_count"] == 120 and len(query["ignored"]) == 50
    assert all(len(w["word"]) < 80 for w in query["left_out"])
    r = http.post("/search", json={"query": "red", "k": 10**400})
    assert r.status_code == 422 and len(r.text) < 2000
