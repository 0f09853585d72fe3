"""The index build: both builders report progress while they run, fail with their own words, and
give the same postings (the project's ImpactIndexer against Anserini's IndexCollection)."""
from __future__ import annotations

import json
import logging
import random

import pytest

from indexer.jvm import call_in_jvm, start_jvm
from indexer.lucene import (
    CONTENTS_FIELD,
    ID_FIELD,
    IndexBuildError,
    build_impact_index,
    lucene_doc_count,
    write_shards,
)
from indexer.metadata import DocRow

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("builder", ["lexvla", "anserini"])
def test_build_streams_progress(tmp_path, caplog, builder):
    rows = (DocRow(f"d{i:04d}", f"/img/{i}.png", 8, 8, {f"w{i % 37}": 1 + i % 50, "common": 3}, {}) for i in range(1200))
    assert len(write_shards(rows, tmp_path / "shards", shard_docs=500)) == 3
    seen: list[int] = []
    with caplog.at_level(logging.INFO, logger="indexer.lucene"):
        build_impact_index(tmp_path / "shards", tmp_path / "index", on_progress=seen.append, builder=builder)
    assert seen and seen[-1] == 1200 and seen == sorted(seen)
    assert any(f"{builder}: " in r.message and "1,200 documents indexed" in r.message for r in caplog.records)
    assert lucene_doc_count(tmp_path / "index") == 1200


def postings(index_dir) -> dict[tuple[str, str], int]:
    """Every (document id, word) of an index's contents field with its term frequency."""

    def read():
        jnius = start_jvm()
        paths, fs = jnius.autoclass("java.nio.file.Paths"), jnius.autoclass("org.apache.lucene.store.FSDirectory")
        reader = jnius.autoclass("org.apache.lucene.index.DirectoryReader").open(fs.open(paths.get(str(index_dir))))
        found: dict[tuple[str, str], int] = {}
        try:
            stored = reader.storedFields()
            for leaf in reader.leaves().toArray():
                terms = leaf.reader().terms(CONTENTS_FIELD).iterator()
                while (term := terms.next()) is not None:
                    docs = terms.postings(None)
                    while (doc := docs.nextDoc()) != 2**31 - 1:
                        found[(stored.document(leaf.docBase + doc).get(ID_FIELD), term.utf8ToString())] = docs.freq()
        finally:
            reader.close()
        return found

    return call_in_jvm(read)


def test_both_builders_give_the_same_postings(tmp_path):
    """Words with the query syntax's characters and non-ASCII letters, impacts up to the thousands,
    floats (truncated), zero and negative impacts (left out) and documents left with no word
    (skipped): the project's builder indexes each word once with its impact as the frequency, and
    Anserini repeats the word impact times; the postings must not differ."""
    rng = random.Random(7)
    words = [f"w{i}" for i in range(200)] + ["a|b", "x|", "naïve", "日本", "c:d", "AND", 'e"f', "(g)"]
    files = tmp_path / "files"
    files.mkdir()
    for name in ("shard-00000.jsonl", "shard-00001.jsonl"):
        with open(files / name, "w") as fh:
            for i in range(400):
                vector = {w: rng.choice([rng.randint(1, 1200), rng.randint(1, 3), 0, -3, 2.7]) for w in rng.sample(words, rng.randint(0, 40))}
                fh.write(json.dumps({"id": f"{name[6:11]}-{i}", "contents": "", "vector": vector}, ensure_ascii=False) + "\n")
    for builder in ("lexvla", "anserini"):
        build_impact_index(files, tmp_path / builder, builder=builder)
    ours, anserini = postings(tmp_path / "lexvla"), postings(tmp_path / "anserini")
    assert len(ours) > 5_000 and max(ours.values()) > 1000
    assert ours == anserini
    assert lucene_doc_count(tmp_path / "lexvla") == lucene_doc_count(tmp_path / "anserini") < 800


def test_a_bad_line_fails_the_build_with_its_place(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    (files / "shard-00000.jsonl").write_text('{"id": "a", "vector": {"x": 3}}\n{"id": "b", "vector": ["x"]}\n')
    with pytest.raises(IndexBuildError, match=r"shard-00000.jsonl:2: a line needs a string \"id\" and an object \"vector\""):
        build_impact_index(files, tmp_path / "index")
