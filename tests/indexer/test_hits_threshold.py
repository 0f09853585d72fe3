"""Lucene's top-k pruning (the hits threshold) changes how much is scored, never the top-k."""
from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import vector_rows
from scipy import sparse

from indexer.publish import publish_rows

pytestmark = pytest.mark.integration


def _exact(rows, query: dict[str, int], k: int) -> list[int]:
    """The k best integer dot products, by a scipy sparse matrix over every document."""
    words = sorted({w for r in rows for w in r.impacts})
    col = {w: i for i, w in enumerate(words)}
    data, ri, ci = [], [], []
    for n, r in enumerate(rows):
        for w, v in r.impacts.items():
            data.append(v)
            ri.append(n)
            ci.append(col[w])
    docs = sparse.csr_matrix((data, (ri, ci)), shape=(len(rows), len(words)), dtype=np.int64)
    q = np.zeros(len(words), dtype=np.int64)
    for w, v in query.items():
        q[col[w]] = v
    scores = docs @ q
    return sorted((int(s) for s in scores if s > 0), reverse=True)[:k]


def test_every_threshold_gives_the_exact_top_k(tmp_path, bundle_dir):
    from indexer.lucene_search import HITS_THRESHOLD, set_hits_threshold
    from indexer.searcher import LexicalSearcher
    from models.bundle import Bundle

    # 3,000 documents over 60 words: a query of 12 words matches most of them, so a low
    # threshold has thousands of documents to skip
    words = Bundle(bundle_dir).words[2000:2060]
    rows = vector_rows(words, 3000, terms=12, seed=3)
    root = tmp_path / "index"
    publish_rows(root, bundle_dir, iter(rows))
    rng = random.Random(5)
    queries = [{w: rng.randint(1, 300) for w in rng.sample(words, 12)} for _ in range(25)]
    answers = {}
    try:
        with LexicalSearcher(root) as searcher, searcher.snapshot() as snap:
            assert all(snap.count(q) > 1000 for q in queries)
            for threshold in (2**31 - 1, HITS_THRESHOLD, 10, 1):
                set_hits_threshold(threshold)
                answers[threshold] = [snap.top(q, 10) for q in queries]
    finally:
        set_hits_threshold(None)
    for i, q in enumerate(queries):
        expected = _exact(rows, q, 10)
        for threshold, found in answers.items():
            assert [s for _, s in found[i]] == expected, threshold
            # the same documents wherever the order is not a tie at the 10th score
            sure = {d for d, s in answers[2**31 - 1][i] if s > expected[-1]}
            assert sure <= {d for d, _ in found[i]}, threshold
