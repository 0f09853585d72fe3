"""Index info: read from index.json, or from meta.sqlite for format 1 generations; newer formats refused."""
from __future__ import annotations

import json

import pytest

from indexer.info import INDEX_FORMAT, INFO_FILE, IndexFormatError, read_info, write_generation_info
from indexer.metadata import META_FILE, connect, write_metadata_info

FACTS = {"bundle_version": "v1", "bundle_name": "mini", "quant_scale": 1000.0, "vocab_size": 30522,
         "patch_grid": [7, 7], "image_size": 224}  # fmt: skip


def test_written_info_reads_back_and_newer_formats_are_refused(tmp_path):
    gen = tmp_path / "gen-000003"
    gen.mkdir()
    info = write_generation_info(gen, FACTS, [5, 7])
    assert read_info(gen) == info
    assert (info.doc_count, info.shards, info.shard_docs, info.patch_grid) == (12, 2, (5, 7), (7, 7))
    assert info.index_version.startswith("gen-000003-") and info.index_format == INDEX_FORMAT
    raw = json.loads((gen / INFO_FILE).read_text())
    (gen / INFO_FILE).write_text(json.dumps(raw | {"index_format": INDEX_FORMAT + 1}))
    with pytest.raises(IndexFormatError, match="upgrade lexvla"):
        read_info(gen)
    (gen / INFO_FILE).write_text("{not json")
    with pytest.raises(IndexFormatError, match="not valid JSON"):
        read_info(gen)


def test_format_1_generation_is_read_as_one_shard(tmp_path):
    gen = tmp_path / "gen-000001"
    gen.mkdir()
    with connect(gen / META_FILE) as conn:
        write_metadata_info(conn, FACTS | {"index_format": 1, "index_version": "gen-000001-abc", "doc_count": 40,
                                       "created_at": "2026-11-01T00:00:00+00:00"})  # fmt: skip
    info = read_info(gen)
    assert (info.index_format, info.shards, info.shard_docs, info.doc_count) == (1, 1, (40,), 40)
    with pytest.raises(IndexFormatError, match="neither"):
        read_info(tmp_path / "empty")
