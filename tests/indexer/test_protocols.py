"""Every searcher and snapshot has the declared interface (indexer.protocols), and one request reads
one generation through it. mypy checks the same statically (the block at the end of indexer/searchers.py);
RaySearcher's objects are checked in test_ray_search.py, where a cluster runs."""
from __future__ import annotations

import pytest

from indexer.protocols import Searcher, Snapshot
from indexer.searchers import open_searcher

pytestmark = pytest.mark.integration


def test_in_process_searchers_and_their_snapshots_satisfy_the_protocols(tiny_index):
    from indexer.searcher import LexicalSearcher
    from indexer.sharded import ShardedSearcher, ShardSearcher

    searchers: list[Searcher] = [LexicalSearcher(tiny_index), ShardedSearcher(tiny_index), ShardSearcher(tiny_index, 0)]
    try:
        doc = searchers[0].document("img0001.jpg")
        assert doc is not None
        query = {w: v / 1000 for w, v in doc.impacts.items()}
        required = sorted(doc.impacts)[0]
        for searcher in searchers:
            assert isinstance(searcher, Searcher), type(searcher)
            with searcher.snapshot() as snap:
                assert isinstance(snap, Snapshot), type(snap)
                assert snap.version == searcher.info.index_version and not snap.released
                hits = snap.search(query, 3, require=[required])
                assert hits[0].doc_id == "img0001.jpg"
                assert all(required in {m.word for m in h.matches} for h in hits)
                assert snap.image_file(doc) == searcher.image_file(doc)
                without = snap.search_vector(doc.impacts, 3, exclude=[required])
                assert "img0001.jpg" not in {h.doc_id for h in without}
            assert snap.released
            # the one-shot reads take the same arguments on every searcher
            assert searcher.search(query, 3, require=[required]) == hits
            assert searcher.search_vector(doc.impacts, 3, exclude=[required]) == without
    finally:
        for searcher in searchers:
            searcher.close()


def test_open_searcher_serves_any_shard_count_in_process(tiny_index, tmp_path):
    from indexer.layout import IndexNotFoundError
    from indexer.sharded import ShardedSearcher

    with open_searcher(tiny_index) as searcher:
        assert isinstance(searcher, ShardedSearcher) and isinstance(searcher, Searcher)
        assert searcher.info.shards == 1
    with pytest.raises(IndexNotFoundError):
        open_searcher(tmp_path / "nowhere")
