"""Searches from many threads run in batches on Java's threads and answer exactly as one at a time."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.integration


def _queries(snap, n: int) -> list[tuple[dict[str, int], tuple[str, ...], int]]:
    """``n`` quantised queries built from indexed documents: some cut short, some with exclusions."""
    # the ids tiny_index gives the 60 images of lexvla.testing.scene_images (every third one in nested/)
    ids = [f"{'nested/' if i % 3 == 0 else ''}img{i:04d}.{'jpg' if i % 4 == 1 else 'png'}" for i in range(60)]
    docs = [snap.document(d) for d in ids]
    df: dict[str, int] = {}
    for doc in docs:
        for w in doc.impacts:
            df[w] = df.get(w, 0) + 1
    out = []
    for i in range(n):
        doc = docs[i % len(ids)]
        words = sorted(doc.impacts.items(), key=lambda kv: (-kv[1], kv[0]))
        query = dict(words[: 8 + 5 * (i % 7)])
        # exclude the query's rarest word: one that other documents lack, so hits remain
        exclude = (min(query, key=lambda w: (df[w], w)),) if i % 3 == 0 else ()
        out.append((query, exclude, 3 + i % 10))
    return out


def test_32_concurrent_searches_equal_sequential_ones(tiny_index):
    from indexer.lucene_search import _search_batcher
    from indexer.searcher import LexicalSearcher

    with LexicalSearcher(tiny_index) as searcher, searcher.snapshot() as snap:
        queries = _queries(snap, 96)
        sequential = [snap.search_vector(q, k, ex) for q, ex, k in queries]
        assert all(sequential) and any(len(hits) > 1 for hits in sequential)

        batcher = _search_batcher()
        batches_before, items_before = batcher.batches, batcher.items
        start = threading.Barrier(32)

        def client(c: int) -> list:
            start.wait()
            order = list(range(c, len(queries))) + list(range(c))  # every client asks all, from its own start
            return [(i, snap.search_vector(queries[i][0], queries[i][2], queries[i][1])) for i in order]

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(client, range(32)))
        for answer in answers:
            for i, hits in answer:
                assert hits == sequential[i]  # ids, scores and every word contribution
                assert [(h.doc_id, h.score) for h in hits] == [(h.doc_id, h.score) for h in sequential[i]]
        batches, items = batcher.batches - batches_before, batcher.items - items_before
        assert items == 32 * len(queries)
        assert batches < items  # searches really went to Java several at a time


def test_a_failing_search_fails_alone(tiny_index):
    """A query over Lucene's clause limit raises for its caller; the searches beside it answer."""
    from indexer.searcher import MAX_CLAUSES, LexicalSearcher, SearchError

    with LexicalSearcher(tiny_index) as searcher, searcher.snapshot() as snap:
        good = _queries(snap, 16)
        expected = [snap.top(q, k, ex) for q, ex, k in good]
        too_many = {f"w{i}": 1 for i in range(MAX_CLAUSES + 10)}
        start = threading.Barrier(17)

        def run(i: int):
            start.wait()
            if i == 16:
                with pytest.raises(SearchError, match="too many boolean clauses") as err:
                    snap.top(too_many, 5)
                assert len(str(err.value)) < 400  # Java's message quotes the whole query; ours does not
                return None
            return snap.top(good[i][0], good[i][2], good[i][1])

        with ThreadPoolExecutor(17) as pool:
            results = list(pool.map(run, range(17)))
        assert results[:16] == expected and results[16] is None


def test_the_search_jar_is_built_from_the_current_sources():
    """``indexer/java/lexvla-search.jar`` is committed; after editing the Java, run indexer/java/build.sh."""
    import zipfile

    from indexer.jvm import SEARCH_JAR, java_sources_sha256

    with zipfile.ZipFile(SEARCH_JAR) as jar:
        built_from = jar.read("lexvla/search/SOURCES.sha256").decode().strip()
    assert built_from == java_sources_sha256(), "indexer/java/lexvla-search.jar is stale: run indexer/java/build.sh"
