"""The Fashion-MNIST photo corpus, built from the IDX files the Debian package installs.

The Debian package ``dataset-fashion-mnist`` must be installed (``scripts/setup.sh`` installs
it): without it these tests fail and say so; they do not skip.

The named photos come from whichever of their packages are installed: a test of one package's
photos skips, naming the package and how to install it, when that package is absent.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lexvla.cli import main
from models.data.manifest import read_manifest
from models.data.photos import (
    ATTRIBUTION,
    CAPTIONS,
    CLASSES,
    IMAGES_FILE,
    LABELS_FILE,
    NAMED_MAX_SIDE,
    NAMED_PHOTOS,
    NAMED_SOURCE,
    PHOTO_ORIGINS,
    README,
    ROOT,
    IdxError,
    build_fashion_manifest,
    build_named_photos_manifest,
    build_photos_manifest,
    find_named_photo,
    named_photo_id,
    origin_folders,
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


# --- named photos ---------------------------------------------------------------------------

NAMED_BY = {"file name", "docstring", "metadata", "viewed"}


def test_named_photo_catalogue() -> None:
    ids = [named_photo_id(p) for p in NAMED_PHOTOS]
    assert len(ids) == len(set(ids)) and all(i.startswith("photo-") for i in ids)
    assert named_photo_id(next(p for p in NAMED_PHOTOS if p.file == "chelsea.png")) == "photo-skimage-chelsea"
    for photo in NAMED_PHOTOS:
        assert photo.origin in PHOTO_ORIGINS and photo.named_by in NAMED_BY, photo
        assert photo.caption.strip() and photo.keywords.strip() and photo.caption != photo.keywords, photo
        assert all(k.strip() for k in photo.keywords.split(",")), photo
        assert photo.licence and photo.author, photo
        # nothing whose licence forbids derived work or commercial use
        assert not any(tag in photo.licence for tag in ("-NC", "-ND", "proprietary")), photo
    assert {p.origin for p in NAMED_PHOTOS} == set(PHOTO_ORIGINS)


@pytest.fixture(scope="session")
def named(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The named photos built from the packages installed here."""
    if not any(origin_folders(o) for o in PHOTO_ORIGINS.values()):
        pytest.skip("no package with named photos is installed (scikit-learn, matplotlib, scikit-image, "
                    "mate-backgrounds, plasma-workspace-wallpapers, lomiri-wallpapers-16.04/20.04)")
    out = tmp_path_factory.mktemp("named")
    return out, build_named_photos_manifest(out)


def test_named_photos_manifest(named: tuple[Path, dict]) -> None:
    out, stats = named
    records = read_manifest(out / "manifest.jsonl")
    assert stats["images_kept"] == len(records) > 0 and stats["splits"] == {"test": len(records)}
    assert len({r.id for r in records}) == len(records)
    assert set(stats["images_dropped"]) <= {"not_installed"}  # every photo of an installed package decodes
    catalogue = {named_photo_id(p): p for p in NAMED_PHOTOS}
    for record in records:
        photo = catalogue[record.id]
        assert record.split == "test" and record.captions == [photo.caption, photo.keywords]
        assert all(c.strip() for c in record.captions)
        assert record.meta["licence"] == photo.licence and record.meta["origin"] == photo.origin
        assert record.meta["source"] == NAMED_SOURCE and record.meta["style"] == "photo"
        assert record.meta["keywords"] and Path(record.meta["file"]).is_absolute() and Path(record.meta["file"]).is_file()
        image = load_image(record.image)
        assert max(image.size) <= NAMED_MAX_SIDE and image.size == (record.meta["width"], record.meta["height"])
    assert all(row["image"].startswith("images/named-photos/photo-") for row in _rows(out / "manifest.jsonl"))
    assert sorted(p.name for p in (out / "images" / NAMED_SOURCE).iterdir()) == sorted(f"{r.id}.jpg" for r in records)
    dropped = _rows(out / "dropped.jsonl")
    assert {row["id"] for row in dropped}.isdisjoint(r.id for r in records)
    assert len(dropped) + len(records) == len(NAMED_PHOTOS) == stats["entries"]
    assert sum(o["kept"] for o in stats["origins"].values()) == len(records)
    assert sum(stats["licences"].values()) == len(records)


@pytest.mark.parametrize("origin", sorted(PHOTO_ORIGINS))
def test_named_photos_of_each_package(origin: str, named: tuple[Path, dict]) -> None:
    """Every photo the catalogue lists for an installed package is found, decodes and is kept."""
    spec = PHOTO_ORIGINS[origin]
    folders = origin_folders(spec)
    if not folders:
        pytest.skip(f"{spec.registry} package {origin!r} is not installed ({spec.install})")
    out, stats = named
    expected = {named_photo_id(p) for p in NAMED_PHOTOS if p.origin == origin}
    kept = {r.id for r in read_manifest(out / "manifest.jsonl") if r.meta["origin"] == origin}
    assert kept == expected and stats["origins"][origin]["kept"] == len(expected)
    for photo in (p for p in NAMED_PHOTOS if p.origin == origin):
        assert find_named_photo(photo, folders) is not None, photo


def test_named_photos_are_reproducible(named: tuple[Path, dict], tmp_path: Path) -> None:
    out, stats = named
    small = build_named_photos_manifest(tmp_path, limit=3)
    again = read_manifest(tmp_path / "manifest.jsonl")
    assert small["images_kept"] == len(again) == min(3, stats["images_kept"])
    full = {r.id: r for r in read_manifest(out / "manifest.jsonl")}
    for record in again:  # the same bytes as the full build's copy
        assert Path(record.image).read_bytes() == Path(full[record.id].image).read_bytes()
    assert small["images_dropped"].get("not_sampled", 0) == stats["images_kept"] - len(again)


def _jpeg(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="JPEG")


def test_named_photos_drops(tmp_path: Path) -> None:
    """Made-up package folders: a broken file, a repeated picture and missing files are dropped, and said so."""
    skl, mpl, kde = tmp_path / "sklearn", tmp_path / "mpl", tmp_path / "wallpapers"
    _jpeg(skl / "china.jpg", (200, 30, 30), (3000, 1000))
    _jpeg(skl / "flower.jpg", (200, 30, 30), (3000, 1000))  # the same pixels as china.jpg
    mpl.mkdir()
    (mpl / "grace_hopper.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    for size in ("640x480", "1280x1024", "2560x1600"):  # a KDE wallpaper: the smallest of at least max_side is used
        _jpeg(kde / "Kite" / "contents" / "images" / f"{size}.jpg", (20, 60, 200), tuple(map(int, size.split("x"))))
    roots = {name: [] for name in PHOTO_ORIGINS} | {"scikit-learn": [skl], "matplotlib": [mpl], "plasma-workspace-wallpapers": [kde]}
    stats = build_named_photos_manifest(tmp_path / "out", roots=roots)
    records = {r.id: r for r in read_manifest(tmp_path / "out" / "manifest.jsonl")}
    assert sorted(records) == ["photo-plasma-kite", "photo-sklearn-china"]
    assert records["photo-sklearn-china"].meta["source_size"] == [3000, 1000]
    assert load_image(records["photo-sklearn-china"].image).size == (NAMED_MAX_SIDE, NAMED_MAX_SIDE // 3)
    assert records["photo-plasma-kite"].meta["file"].endswith("Kite/contents/images/1280x1024.jpg")
    reasons = {row["id"]: row["reason"] for row in _rows(tmp_path / "out" / "dropped.jsonl")}
    assert reasons["photo-sklearn-flower"] == "duplicate_image" and reasons["photo-matplotlib-grace-hopper"] == "undecodable"
    assert reasons["photo-plasma-path"] == "missing_file" and reasons["photo-skimage-chelsea"] == "not_installed"
    assert stats["images_dropped"]["undecodable"] == 1 and stats["images_kept"] == 2
    limited = build_named_photos_manifest(tmp_path / "out", roots=roots, limit=1)
    assert limited["images_kept"] == 1 and limited["images_dropped"]["not_sampled"] == 1
    assert len(list((tmp_path / "out" / "images" / NAMED_SOURCE).glob("*.jpg"))) == 1  # the earlier copy is removed

    with pytest.raises(FileNotFoundError, match="apt-get install mate-backgrounds"):
        build_named_photos_manifest(tmp_path / "none", roots={name: [] for name in PHOTO_ORIGINS})
    with pytest.raises(ValueError, match="limit"):
        build_named_photos_manifest(tmp_path / "none", limit=0)


def test_photos_manifest_combines_both(root: Path, named: tuple[Path, dict], tmp_path: Path) -> None:
    stats = build_photos_manifest(tmp_path, per_class=1, root=root)
    records = read_manifest(tmp_path / "manifest.jsonl")
    named_kept = named[1]["images_kept"]
    assert stats["images_kept"] == len(records) == 10 + named_kept and stats["splits"] == {"test": len(records)}
    assert len({r.id for r in records}) == len(records)
    assert sum(r.meta["source"] == "fashion-mnist" for r in records) == 10
    assert sum(r.meta["source"] == NAMED_SOURCE for r in records) == named_kept
    assert set(stats["parts"]) == {"fashion-mnist", NAMED_SOURCE}
    rows = _rows(tmp_path / "manifest.jsonl")
    assert all(row["image"].startswith(("fashion-mnist/images/", "named-photos/images/")) for row in rows)
    assert all(Path(r.image).is_file() for r in records)
