"""Lucene's top-k pruning (the hits threshold) and scoring segments in parallel (slices) change
how a search runs, never its top-k."""
from __future__ import annotations

import random

import pytest
from conftest import brute_force, vector_rows

pytestmark = pytest.mark.integration


def _exact(rows, query: dict[str, int], k: int) -> list[int]:
    """The k best integer dot products over every document."""
    return sorted((s for s in brute_force(rows, query).values() if s > 0), reverse=True)[:k]


def test_every_threshold_and_slicing_gives_the_exact_top_k(tmp_path, bundle_dir):
    from indexer.jvm import call_in_jvm
    from indexer.lucene import JsonShardWriter, build_impact_index
    from indexer.lucene_search import (
        HITS_THRESHOLD,
        close_lucene,
        lucene_count,
        lucene_top,
        open_lucene,
        set_hits_threshold,
        set_slice_docs,
    )
    from models.bundle import Bundle

    # 3,000 documents over 60 words in two files, which the build's two threads index into two
    # segments; a query of 12 words matches most documents, so a low threshold has thousands to skip
    words = Bundle(bundle_dir).words[2000:2060]
    rows = vector_rows(words, 3000, terms=12, seed=3)
    writer = JsonShardWriter(tmp_path / "files", shard_docs=1500)
    for row in rows:
        writer.add(row)
    writer.close()
    build_impact_index(tmp_path / "files", tmp_path / "lucene")
    rng = random.Random(5)
    queries = [{w: rng.randint(1, 300) for w in rng.sample(words, 12)} for _ in range(25)]
    answers = {}
    try:
        for slice_docs, slices in ((0, 0), (1000, 2), (None, 0)):  # None: the default, 250,000 docs (one slice here)
            set_slice_docs(slice_docs)
            reader, searcher = call_in_jvm(open_lucene, tmp_path / "lucene")
            try:
                assert reader.leaves().size() == 2
                assert (len(searcher.getSlices()) if searcher.getExecutor() is not None else 0) == slices
                assert all(lucene_count(searcher, q) > 1000 for q in queries)
                for threshold in (2**31 - 1, HITS_THRESHOLD, 10, 1):
                    set_hits_threshold(threshold)
                    answers[slice_docs, threshold] = [lucene_top(searcher, q, 10) for q in queries]
            finally:
                close_lucene(reader)
    finally:
        set_hits_threshold(None)
        set_slice_docs(None)
    exhaustive = answers[0, 2**31 - 1]
    for i, q in enumerate(queries):
        expected = _exact(rows, q, 10)
        sure = {d for d, s in exhaustive[i] if s > expected[-1]}  # not a tie at the 10th score
        for setting, found in answers.items():
            assert [s for _, s in found[i]] == expected, setting
            assert sure <= {d for d, _ in found[i]}, setting
