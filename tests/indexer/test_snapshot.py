"""A pinned snapshot answers from one generation while a newer one is published and switched to."""
from __future__ import annotations

import pytest

from indexer.metadata import DocRow
from indexer.publish import publish_rows

pytestmark = pytest.mark.integration


def _row(doc_id: str, impacts: dict[str, int]) -> DocRow:
    return DocRow(doc_id, f"/data/{doc_id}.jpg", 64, 48, impacts, {})


def test_publish_during_a_request_keeps_its_generation(tmp_path, bundle_dir):
    from indexer.searcher import LexicalSearcher
    from models.bundle import Bundle

    bundle = Bundle(bundle_dir)
    a, b, c = bundle.words[1000:1003]
    root = tmp_path / "index"
    publish_rows(root, bundle, [_row("old/1", {a: 200, b: 10}), _row("old/2", {b: 100})])
    query = {a: 1.0, b: 1.0, c: 1.0}

    with LexicalSearcher(root) as searcher:
        pinned = searcher.snapshot()
        old_version = pinned.version
        before = [(h.doc_id, h.score) for h in pinned.search(query, k=10)]
        assert [d for d, _ in before] == ["old/1", "old/2"]

        # a publish lands and the searcher switches while the "request" still holds its snapshot
        publish_rows(root, bundle, [_row("new/1", {c: 300})], append=True)
        assert searcher.refresh(require_bundle=bundle)
        assert searcher.info.index_version != old_version and searcher.info.doc_count == 3

        # the pinned snapshot still answers from the old generation, under the old version
        assert pinned.version == old_version and pinned.info.doc_count == 2
        assert [(h.doc_id, h.score) for h in pinned.search(query, k=10)] == before
        assert pinned.document("new/1") is None and pinned.document("old/1") is not None
        assert [d for d, _ in pinned.top({c: 5}, k=10)] == [] and pinned.count({a: 1, b: 1}) == 2
        assert not pinned.generation_closed  # retired by the refresh, but still in use

        # a new snapshot sees the new generation
        with searcher.snapshot() as fresh:
            assert fresh.version == searcher.info.index_version != old_version
            assert fresh.search(query, k=1)[0].doc_id == "new/1"
            assert fresh.document("new/1") is not None and fresh.count({a: 1, b: 1, c: 1}) == 3
        assert not fresh.generation_closed  # the current generation stays open without users

        # the old generation closes once its last user leaves, and not before
        pinned.close()
        assert pinned.generation_closed and pinned.released
        pinned.close()  # idempotent
        with pytest.raises(RuntimeError, match="released"):
            pinned.search(query)


def test_snapshot_of_a_closed_searcher_is_refused(tiny_index):
    from indexer.searcher import LexicalSearcher

    searcher = LexicalSearcher(tiny_index)
    with searcher.snapshot() as snap:
        searcher.close()
        assert snap.document("img0001.jpg") is not None  # pinned: still readable
        assert not snap.generation_closed
    assert snap.generation_closed
    with pytest.raises(RuntimeError, match="closed"):
        searcher.snapshot()
