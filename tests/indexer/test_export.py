"""``lexvla encode``: an index's and a folder's vectors exported for other engines; Anserini
ingests the shards as they are."""
from __future__ import annotations

import json

import pytest

from lexvla.cli import main

pytestmark = pytest.mark.integration


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_index_and_folder_export_the_same_vectors(tiny_index, bundle_dir, shapes_dir, tmp_path, capsys):
    from indexer import layout
    from indexer.lucene import build_impact_index, lucene_doc_count
    from indexer.metadata import META_FILE, MetadataReader

    from_index, from_folder = tmp_path / "from-index", tmp_path / "from-folder"
    assert main(["encode", "--index", str(tiny_index), "--output", str(from_index), "--bulk-index", "images"]) == 0
    assert main(["encode", "--input", str(shapes_dir), "--bundle", str(bundle_dir), "--device", "cpu",
                 "--output", str(from_folder), "--batch-size", "8"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("rejected ") == 3  # the three bad files, each named with its reason

    reader = MetadataReader(layout.require_generation(tiny_index) / META_FILE)
    stored = {row.doc_id: row.impacts for row in reader}
    reader.close()
    docs = _lines(from_index / "shards" / "shard-00000.jsonl")
    assert {d["id"]: d["vector"] for d in docs} == stored and all(d["contents"] == "" for d in docs)
    assert docs == _lines(from_folder / "shards" / "shard-00000.jsonl")  # encoding the folder gives the same documents

    facts = json.loads((from_folder / "export.json").read_text())
    assert facts["documents"] == 60 and facts["weights"] == "impact" and len(facts["rejected"]) == 3
    assert facts["bundle_version"] == json.loads((from_index / "export.json").read_text())["bundle_version"]

    bulk = (from_index / "bulk.ndjson").read_text().splitlines()
    assert len(bulk) == 2 * len(docs)
    for action, doc, shard_doc in zip(bulk[::2], bulk[1::2], docs, strict=True):
        assert json.loads(action) == {"index": {"_index": "images", "_id": shard_doc["id"]}}
        assert json.loads(doc) == {"id": shard_doc["id"], "vector": shard_doc["vector"]}
    mapping = json.loads((from_index / "mapping.json").read_text())
    assert mapping["mappings"]["properties"]["vector"] == {"type": "rank_features"}

    lucene = tmp_path / "anserini"
    build_impact_index(from_index / "shards", lucene, builder="anserini")  # Anserini's IndexCollection, as another user would run it
    assert lucene_doc_count(lucene) == len(docs)


def test_float_weights_and_refusals(tiny_index, tmp_path, capsys):
    out = tmp_path / "floats"
    assert main(["encode", "--index", str(tiny_index), "--output", str(out), "--weights", "float",
                 "--bulk-index", "x", "--field-type", "sparse_vector", "--bulk-field", "ml.tokens"]) == 0  # fmt: skip
    scale = json.loads((out / "export.json").read_text())["quant_scale"]
    docs = _lines(out / "shards" / "shard-00000.jsonl")
    assert all(isinstance(v, float) for d in docs for v in d["vector"].values())
    assert json.loads((out / "mapping.json").read_text())["mappings"]["properties"]["ml.tokens"]["type"] == "sparse_vector"
    again = tmp_path / "again"
    assert main(["encode", "--index", str(tiny_index), "--output", str(again)]) == 0
    for f, i in zip(docs, _lines(again / "shards" / "shard-00000.jsonl"), strict=True):
        assert f["vector"] == pytest.approx({w: v / scale for w, v in i["vector"].items()})
    capsys.readouterr()
    assert main(["encode", "--index", str(tiny_index), "--output", str(out)]) == 1  # never writes into a used folder
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert main(["encode", "--input", str(tmp_path), "--output", str(tmp_path / "n")]) == 1
    assert "--input needs --bundle" in capsys.readouterr().err
