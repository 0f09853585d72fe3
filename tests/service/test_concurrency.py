"""Under load, /search encodes queries together and searches them in parallel, answering as one at a time."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.integration

QUERIES = [
    "a red circle", "a blue square", "green triangle", "a yellow star", "black shape", "two red circles",
    "a round object", "a small blue star", "a dark square", "bright yellow", "a triangle", "a green circle",
    "red +star", "blue square -circle", "yellow^2 circle", "a black star",
]  # fmt: skip


def _answer(response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    return {"hits": body["hits"], "query": body["query"], "versions": body["versions"]}


@pytest.fixture
def uncached(engine):
    """A live server over the session's bundle and index with the cache off, so every request encodes and searches."""
    from service.cache import ResilientCache
    from service.engine import Engine
    from tests.service.conftest import LiveServer

    # a short max wait makes the concurrent queries share ONNX calls even on a busy machine
    settings = engine.settings.model_copy(update={"redis_url": "", "encode_max_wait_ms": 20, "encode_max_batch": 16})
    served = Engine(settings, engine.bundle, engine.searcher, ResilientCache(""))
    with LiveServer(settings, served) as srv:
        yield srv
    served.search.close()


def test_32_concurrent_searches_answer_as_sequential_ones(uncached):
    srv = uncached
    with srv.client() as http:
        sequential = {q: _answer(http.post("/search", json={"query": q, "k": 8})) for q in QUERIES}
        assert http.post("/search", json={"query": QUERIES[0], "k": 8}).json()["cache"]["encode"] == "off"
    assert sum(bool(a["hits"]) for a in sequential.values()) >= len(QUERIES) // 2  # something to compare
    encoder = srv.app.state.engine.search._text_encoder
    calls_before, items_before = encoder.batches, encoder.items
    start = threading.Barrier(32)

    def client(c: int) -> list[tuple[str, dict]]:
        with srv.client() as http:
            start.wait()
            asked = [QUERIES[(c + j) % len(QUERIES)] for j in range(4)]
            return [(q, _answer(http.post("/search", json={"query": q, "k": 8}))) for q in asked]

    with ThreadPoolExecutor(32) as pool:
        answers = [pair for result in pool.map(client, range(32)) for pair in result]
    assert len(answers) == 128
    for query, answer in answers:
        assert answer == sequential[query]  # ids, scores, every word's weights, contribution and share
    calls, items = encoder.batches - calls_before, encoder.items - items_before
    assert items == 128 and calls < items  # queries were encoded several to an ONNX call


def test_a_bad_caption_in_a_batch_fails_alone(engine):
    """The encoder's batch function gives an empty caption its own error and the others their vectors."""
    from models.preprocess import InputError

    batch = engine.search._encode_batch(["a red circle", " ", "a blue square"])
    assert isinstance(batch[1], InputError)
    assert batch[0].to_dict() == engine.bundle.encode_texts(["a red circle"])[0].to_dict()
    assert batch[2].to_dict() == engine.bundle.encode_texts(["a blue square"])[0].to_dict()
