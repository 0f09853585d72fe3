"""The Fashion-MNIST photo corpus, built from the IDX files the Debian package installs.

The Debian package ``dataset-fashion-mnist`` must be installed (``scripts/setup.sh`` installs
it): without it these tests fail and say so; they do not skip.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from lexvla.cli import main
from models.data.manifest import read_manifest
from models.data.photos import (
    ATTRIBUTION,
    CAPTIONS,
    CLASSES,
    IMAGES_FILE,
    LABELS_FILE,
    README,
    ROOT,
    IdxError,
    build_fashion_manifest,
    read_idx,
    readme_classes,
    sample_key,
)
from models.preprocess import load_image

MISSING = (f"Debian package 'dataset-fashion-mnist' is not installed ({ROOT}/{IMAGES_FILE} is missing): "
           "add it to APT_PACKAGES in scripts/setup.sh or run: apt-get install dataset-fashion-mnist")


@pytest.fixture(scope="session")
def root() -> Path:
    if not (Path(ROOT) / IMAGES_FILE).is_file() or not (Path(ROOT) / LABELS_FILE).is_file():
        pytest.fail(MISSING, pytrace=False)
    return Path(ROOT)


@pytest.fixture(scope="session")
def data(root: Path) -> tuple[np.ndarray, np.ndarray]:
    return read_idx(root / IMAGES_FILE), read_idx(root / LABELS_FILE)


def test_readme_names_the_classes(root: Path) -> None:
    assert readme_classes(README) == CLASSES
    assert set(CAPTIONS) == set(CLASSES)
    assert CAPTIONS["Sneaker"] == ("a sneaker", "sneaker, shoe, trainer")
    assert CAPTIONS["Ankle boot"][0] == "an ankle boot" and CAPTIONS["Trouser"][0] == "trousers"


def test_read_idx(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    images, labels = data
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and np.bincount(labels).tolist() == [1000] * 10
    bad = tmp_path / "bad-idx1-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")  # 5 labels announced, 3 stored
    with pytest.raises(IdxError, match="3 data bytes"):
        read_idx(bad)
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(IdxError, match="not an IDX file"):
        read_idx(bad)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_balanced_seeded_sample(root: Path, data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    images, labels = data
    stats = build_fashion_manifest(tmp_path / "a", root=root, per_class=3)
    again = build_fashion_manifest(tmp_path / "b", root=root, per_class=3)
    for name in ("manifest.jsonl", "dropped.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    pngs = sorted(p.name for p in (tmp_path / "a" / "images" / "fashion-mnist").iterdir())
    assert len(pngs) == 30
    for png in pngs:
        path = Path("images") / "fashion-mnist" / png
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes()
    assert stats["images_kept"] == again["images_kept"] == 30

    out = tmp_path / "a"
    records = read_manifest(out / "manifest.jsonl")
    assert stats["classes"] == {name: 3 for name in CLASSES}
    assert stats["splits"] == {"test": 30} and stats["images_dropped"] == {"not_sampled": 9970}
    assert stats["licence"] == "MIT" and stats["attribution"] == ATTRIBUTION and "Zalando Research" in ATTRIBUTION
    assert stats["entries"] == 10000 and stats["params"]["per_class"] == 3
    for record in records:
        index, name = record.meta["index"], record.meta["class"]
        assert record.split == "test" and record.meta["style"] == "photo" and name == CLASSES[labels[index]]
        assert record.captions == list(CAPTIONS[name]) and record.id == f"fashion-mnist-{index:05d}"
        image = load_image(record.image)
        assert image.size == (28, 28)
        # the stored pixels, losslessly, with the dataset's negation undone (a dark article on white)
        assert np.array_equal(np.asarray(image.convert("L")), 255 - images[index])
    # the first three of each class in seeded-hash order, not in file order
    for label, name in enumerate(CLASSES):
        members = np.flatnonzero(labels == label).tolist()
        expected = sorted(members, key=lambda i: sample_key(i, 0))[:3]
        assert sorted(r.meta["index"] for r in records if r.meta["class"] == name) == sorted(expected)
        assert sorted(expected) != members[:3]
    raw = _rows(out / "manifest.jsonl")
    assert all(row["image"].startswith("images/fashion-mnist/") for row in raw)
    dropped = _rows(out / "dropped.jsonl")
    assert len(dropped) == 9970 and {row["reason"] for row in dropped} == {"not_sampled"}
    assert {row["id"] for row in dropped}.isdisjoint(r.id for r in records)

    reseeded = build_fashion_manifest(out, root=root, per_class=3, seed=1)
    assert reseeded["classes"] == stats["classes"]
    assert {r.id for r in read_manifest(out / "manifest.jsonl")} != {r.id for r in records}
    assert len(list((out / "images" / "fashion-mnist").glob("*.png"))) == 30  # the earlier sample is removed


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))


def test_duplicates_and_small_classes(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    """A small IDX pair from real images: a repeated picture is skipped, a short class gives all it has."""
    images, labels = data
    picks = [int(np.flatnonzero(labels == label)[0]) for label in range(10)]
    rows = [images[i] for i in picks] + [images[picks[7]]]  # the sneaker twice
    tags = [labels[i] for i in picks] + [7]
    tree = tmp_path / "idx"
    tree.mkdir()
    _write_idx(tree / IMAGES_FILE, np.stack(rows))
    _write_idx(tree / LABELS_FILE, np.array(tags))
    stats = build_fashion_manifest(tmp_path / "out", root=tree, per_class=2)
    assert stats["images_kept"] == 10 and stats["classes"] == {name: 1 for name in CLASSES}
    assert stats["images_dropped"] == {"duplicate_image": 1}
    (row,) = _rows(tmp_path / "out" / "dropped.jsonl")
    assert row["class"] == "Sneaker" and {row["id"], row["duplicate_of"]} == {"fashion-mnist-00007", "fashion-mnist-00010"}


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        build_fashion_manifest(tmp_path / "out", root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="per_class"):
        build_fashion_manifest(tmp_path / "out", per_class=0)


def test_cli(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "fashion", "--out", str(tmp_path), "--per-class", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images_kept"] == 20 and summary["licence"] == "MIT" and summary["splits"] == {"test": 20}
    assert len(read_manifest(tmp_path / "manifest.jsonl")) == 20
