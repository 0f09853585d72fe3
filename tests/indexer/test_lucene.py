"""The Anserini build reports its progress while it runs."""
from __future__ import annotations

import logging

import pytest

from indexer.lucene import build_impact_index, lucene_doc_count, write_shards
from indexer.metadata import DocRow

pytestmark = pytest.mark.integration


def test_build_streams_anserini_progress(tmp_path, caplog):
    rows = (DocRow(f"d{i:04d}", f"/img/{i}.png", 8, 8, {f"w{i % 37}": 1 + i % 50, "common": 3}, {}) for i in range(1200))
    assert len(write_shards(rows, tmp_path / "shards", shard_docs=500)) == 3
    seen: list[int] = []
    with caplog.at_level(logging.INFO, logger="indexer.lucene"):
        build_impact_index(tmp_path / "shards", tmp_path / "index", on_progress=seen.append)
    assert seen and seen[-1] == 1200 and seen == sorted(seen)
    assert any("anserini: " in r.message and "1,200 documents indexed" in r.message for r in caplog.records)
    assert lucene_doc_count(tmp_path / "index") == 1200
