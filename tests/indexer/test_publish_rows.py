"""Publishing a generation from precomputed vectors (no image encoding): search, metadata, checks."""
from __future__ import annotations

import pytest
from conftest import vector_rows

from indexer import layout
from indexer.info import INDEX_FORMAT, read_info
from indexer.metadata import META_FILE, DocRow, MetadataReader
from indexer.publish import publish_rows

pytestmark = pytest.mark.integration


def test_publish_rows_searches_and_keeps_metadata(tmp_path, bundle_dir):
    from indexer.searcher import LexicalSearcher
    from models.bundle import Bundle

    bundle = Bundle(bundle_dir)
    words = bundle.words[1000:1400]  # a small slice so documents share words
    rows = vector_rows(words, 200)
    root = tmp_path / "index"
    report = publish_rows(root, bundle, iter(rows))  # any iterable, consumed once
    assert report.indexed == report.doc_count == 200 and report.generation == "gen-000001"
    assert not any((root / layout.STAGING).glob("rows-*"))

    reader = MetadataReader(layout.current_generation(root) / META_FILE)
    try:
        assert list(reader) == sorted(rows, key=lambda r: r.doc_id)
    finally:
        reader.close()
    info = read_info(layout.current_generation(root))
    assert info.bundle_version == bundle.version and info.doc_count == 200 and info.shards == 1
    assert info.quant_scale == bundle.config.quant_scale and info.index_format == INDEX_FORMAT

    with LexicalSearcher(root) as searcher:
        assert searcher.info.doc_count == 200
        for row in rows[:20]:
            hits = searcher.search_vector(row.impacts, k=3)
            assert hits[0].doc_id == row.doc_id  # a document's own vector finds it first
            expected = sum(v * v for v in row.impacts.values()) / bundle.config.quant_scale**2
            assert hits[0].score == pytest.approx(expected)
        record = searcher.document("vec/0007")
        assert (record.path, record.width, record.height, record.meta) == ("/data/img0007.jpg", 107, 57, {"source": "elsewhere", "i": 7})

    # append: a second generation holds both sets; a repeated id or foreign word publishes nothing
    report = publish_rows(root, bundle_dir, vector_rows(words, 50, start=200, seed=1), append=True)
    assert (report.indexed, report.doc_count, report.generation) == (50, 250, "gen-000002")
    with pytest.raises(ValueError, match="already published"):
        publish_rows(root, bundle, vector_rows(words, 3, start=10), append=True)
    bad = DocRow("x", "", 1, 1, {"not-a-word-of-the-vocab": 3}, {})
    with pytest.raises(ValueError, match="not in the vocabulary"):
        publish_rows(root, bundle, [bad], append=True)
    with pytest.raises(ValueError, match="positive int"):
        publish_rows(root, bundle, [DocRow("y", "", 1, 1, {words[0]: 0}, {})])
    with pytest.raises(ValueError, match=r"impact of .* must be a positive int, got 2.5"):
        publish_rows(root, bundle, [DocRow("y", "", 1, 1, {words[0]: 3, words[1]: 2.5}, {})])
    for word in ("two words", "tab\there", " lead", "nbsp\u00a0", ""):
        with pytest.raises(ValueError, match="is empty or contains whitespace"):
            publish_rows(root, bundle, [DocRow("y", "", 1, 1, {words[0]: 3, word: 4}, {})], check_vocabulary=False)
    assert layout.current_generation(root).name == "gen-000002"
    assert layout.generation_numbers(root) == [1, 2]
    with LexicalSearcher(root) as searcher:
        assert searcher.info.doc_count == 250
        assert searcher.search_vector(rows[5].impacts, k=1)[0].doc_id == rows[5].doc_id

    # replace (the default): exactly the given rows
    report = publish_rows(root, bundle, vector_rows(words, 10, start=500))
    assert report.doc_count == 10 and report.generation == "gen-000003"
