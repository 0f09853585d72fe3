"""Manifests read as streams: JSONL, CSV and Parquet, local or at an fsspec URL, give the same items."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indexer.manifest import InputItem, ManifestError, iter_inputs, scan_inputs

ENTRIES = [
    {"id": "b", "path": "imgs/b.png", "label": "dog", "n": 2},
    {"id": "a", "image": "imgs/a.png", "label": "cat", "n": 1},  # a training manifest's key
    {"id": "c", "path": "imgs/c.png"},
]


def _write_manifests(folder):
    (folder / "imgs").mkdir()
    for name in ("a", "b", "c"):
        (folder / "imgs" / f"{name}.png").write_bytes(b"x")
    (folder / "m.jsonl").write_text("".join(json.dumps(e) + "\n" for e in ENTRIES) + "\n")
    rows = [{"id": e["id"], "path": e.get("path") or e["image"], "label": e.get("label"), "n": e.get("n")} for e in ENTRIES]
    pq.write_table(pa.Table.from_pylist(rows), folder / "m.parquet", row_group_size=2)
    return sorted(
        (InputItem(e["id"], str((folder / (e.get("path") or e["image"])).resolve()), {k: v for k, v in e.items() if k not in ("id", "path", "image")}) for e in ENTRIES),
        key=lambda it: it.doc_id,
    )


def test_jsonl_parquet_and_urls_give_the_same_items(tmp_path):
    import fsspec

    expected = _write_manifests(tmp_path)
    assert scan_inputs(tmp_path / "m.jsonl") == expected
    assert scan_inputs(tmp_path / "m.parquet") == expected  # nulls of a column are fields a row lacks
    assert scan_inputs(f"file://{tmp_path}/m.parquet") == expected  # relative paths: the manifest's folder
    # a remote manifest: absolute image paths
    absolute = [{"id": it.doc_id, "path": it.path, **it.meta} for it in expected]
    with fsspec.open("memory://lexvla-test/m.jsonl", "w") as fh:
        fh.write("".join(json.dumps(e) + "\n" for e in absolute))
    with fsspec.open("memory://lexvla-test/m.parquet", "wb") as fh:
        pq.write_table(pa.Table.from_pylist(absolute), fh)
    try:
        assert scan_inputs("memory://lexvla-test/m.jsonl") == expected
        assert scan_inputs("memory://lexvla-test/m.parquet") == expected
        with fsspec.open("memory://lexvla-test/rel.jsonl", "w") as fh:
            fh.write('{"id": "r", "path": "imgs/a.png"}\n')
        with pytest.raises(ManifestError, match=r"rel.jsonl:1: relative path"):
            scan_inputs("memory://lexvla-test/rel.jsonl")
    finally:
        fsspec.filesystem("memory").rm("/lexvla-test", recursive=True)


def test_inputs_come_in_bounded_chunks_with_file_and_line_errors(tmp_path):
    _write_manifests(tmp_path)
    for manifest in ("m.jsonl", "m.parquet"):
        chunks = list(iter_inputs(tmp_path / manifest, chunk=2))
        assert [len(c) for c in chunks] == [2, 1]
        assert [it.doc_id for c in chunks for it in c] == ["b", "a", "c"]  # file order; scan_inputs sorts
    folder_chunks = list(iter_inputs(tmp_path / "imgs", chunk=2))
    assert [len(c) for c in folder_chunks] == [2, 1]

    (tmp_path / "bad.jsonl").write_text('{"id": "x", "path": "imgs/a.png"}\n\n{"id": "y"}\n')
    with pytest.raises(ManifestError, match=r"bad.jsonl:3: each entry needs non-empty 'id' and 'path'"):
        scan_inputs(tmp_path / "bad.jsonl")
    (tmp_path / "broken.jsonl").write_text('{"id": "x", "path": "imgs/a.png"}\n{"id": \n')
    with pytest.raises(ManifestError, match=r"broken.jsonl:2: not a JSON object"):
        scan_inputs(tmp_path / "broken.jsonl")
    pq.write_table(pa.Table.from_pylist([{"id": "x", "path": "imgs/a.png"}, {"id": "y", "path": None}]), tmp_path / "bad.parquet")
    with pytest.raises(ManifestError, match=r"bad.parquet:2: each entry needs"):
        scan_inputs(tmp_path / "bad.parquet")
    (tmp_path / "m.csv").write_text("id,path\nx,imgs/a.png\n,imgs/b.png\n")
    with pytest.raises(ManifestError, match=r"m.csv:3: each entry needs"):
        scan_inputs(tmp_path / "m.csv")
    with pytest.raises(ManifestError, match="does not exist"):
        scan_inputs(tmp_path / "nope.jsonl")
    (tmp_path / "m.txt").write_text("")
    with pytest.raises(ManifestError, match="expected a folder"):
        scan_inputs(tmp_path / "m.txt")
