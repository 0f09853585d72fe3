"""Manifest JSONL round trip, bad-line errors and the Karpathy reader."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.data.manifest import (
    ManifestError,
    ManifestRecord,
    assign_split,
    read_karpathy,
    read_manifest,
    write_manifest,
)


def test_round_trip_keeps_fields_and_writes_relative_paths(tmp_path: Path) -> None:
    inside = tmp_path / "images" / "a.png"
    outside = Path("/elsewhere/b.png")
    records = [
        ManifestRecord("a", str(inside), ["a red circle"], "train", {"k": [1, 2]}),
        ManifestRecord("b", str(outside), ["x", "y"], "test"),
    ]
    path = tmp_path / "manifest.jsonl"
    write_manifest(path, records)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["image"] == "images/a.png"
    assert lines[1]["image"] == "/elsewhere/b.png"
    assert read_manifest(path) == records
    assert [r.id for r in read_manifest(path, split="test")] == ["b"]


def test_relative_paths_resolve_against_manifest_folder(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "m.jsonl").write_text('{"id": "1", "image": "img/1.png", "captions": ["c"]}\n\n')
    monkeypatch.chdir("/")
    [record] = read_manifest(tmp_path / "m.jsonl")
    assert record.image == str(tmp_path.resolve() / "img" / "1.png")
    assert record.split == "train" and record.meta == {}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"id": "2", "image": "x.png"}', "missing field(s) captions"),
        ('{"id": "2", "image": "x.png", "captions": "one"}', "list of strings"),
        ('{"id": "2", "image": "x.png", "captions": ["c"], "split": "dev"}', "split 'dev'"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "1", "image": "a.png", "captions": ["ok"]}\n' + line + "\n")
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert f"{path}:2" in str(err.value)
    assert message in str(err.value)


def test_assign_split_is_stable_and_roughly_proportional() -> None:
    ids = [f"img{i}" for i in range(4000)]
    first = [assign_split(i, seed=3, val_fraction=0.1, test_fraction=0.2) for i in ids]
    assert first == [assign_split(i, seed=3, val_fraction=0.1, test_fraction=0.2) for i in ids]
    assert abs(first.count("test") / 4000 - 0.2) < 0.03
    assert abs(first.count("val") / 4000 - 0.1) < 0.03
    assert first != [assign_split(i, seed=4, val_fraction=0.1, test_fraction=0.2) for i in ids]


KARPATHY = {
    "images": [
        {"filepath": "val2014", "filename": "COCO_val2014_000000000042.jpg", "split": "test", "cocoid": 42,
         "sentences": [{"raw": "A dog on a couch. ", "tokens": ["a", "dog"]}, {"raw": "A brown dog."}]},
        {"filepath": "train2014", "filename": "COCO_train2014_000000000007.jpg", "split": "restval", "cocoid": 7,
         "sentences": [{"raw": "Two cats."}]},
        {"filename": "1000092795.jpg", "split": "train", "imgid": 0, "sentences": [{"raw": "Men in a park."}]},
    ]
}


def test_read_karpathy_coco_and_flickr_layouts(tmp_path: Path) -> None:
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps(KARPATHY))
    records = read_karpathy(path, tmp_path / "coco")
    assert [r.id for r in records] == ["42", "7", "0"]
    assert records[0].image == str((tmp_path / "coco" / "val2014" / "COCO_val2014_000000000042.jpg").resolve())
    assert records[0].captions == ["A dog on a couch.", "A brown dog."]
    assert records[1].split == "train" and records[1].meta["karpathy_split"] == "restval"
    assert records[2].image.endswith("coco/1000092795.jpg")
    assert [r.id for r in read_karpathy(path, tmp_path, split="train")] == ["7", "0"]
    assert [r.id for r in read_karpathy(path, tmp_path, split="test")] == ["42"]


def test_read_karpathy_reports_broken_entry(tmp_path: Path) -> None:
    path = tmp_path / "dataset_flickr30k.json"
    path.write_text(json.dumps({"images": [{"filename": "a.jpg", "split": "train"}]}))
    with pytest.raises(ManifestError, match=r"images\[0\].*sentences"):
        read_karpathy(path, tmp_path)
