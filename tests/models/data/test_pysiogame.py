"""The pysiogame (Art4Apps) cartoon corpus, built from the drawings the Debian package installs.

The Debian package ``pysiogame`` must be installed (``scripts/setup.sh`` installs it): without it
these tests fail and say so; they do not skip.
"""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from lexvla.cli import main
from models.data.manifest import assign_split, read_manifest
from models.data.pysiogame import (
    ATTRIBUTION,
    CATEGORY_WORDS,
    CREDITS,
    CREDITS_QUOTE,
    LICENCE,
    NOT_VISIBLE,
    ROOT,
    build_pysiogame_manifest,
    category_word,
    word_phrase,
)
from models.preprocess import load_image

MISSING = (f"Debian package 'pysiogame' is not installed ({ROOT} is missing): "
           "add it to APT_PACKAGES in scripts/setup.sh or run: apt-get install pysiogame")


@pytest.fixture(scope="session")
def root() -> Path:
    if not Path(ROOT).is_dir() or not any(Path(ROOT).glob("*/*.jpg")):
        pytest.fail(MISSING, pytrace=False)
    return Path(ROOT)


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("bake", "bake"),
        ("baby_rabbit", "baby rabbit"),
        ("ice_cream", "ice cream"),
        ("Ice-Cream", "ice cream"),
        ("twin_boys", "twin boys"),
        ("ox", "ox"),
        ("fc000", None),
        ("123", None),
        ("img_01", None),
        ("a", None),
        ("a_b", None),
        ("", None),
    ],
)
def test_word_phrase(stem: str, expected: str | None) -> None:
    assert word_phrase(stem) == expected


def test_category_words() -> None:
    assert category_word("animals") == "animal"
    assert category_word("fruit_n_veg") == "fruit or vegetable"
    assert category_word("clothes_n_accessories") == "clothing"
    assert all(category_word(folder) is None for folder in NOT_VISIBLE)
    assert category_word("no_such_folder") is None
    assert set(CATEGORY_WORDS).isdisjoint(NOT_VISIBLE)


def test_every_installed_folder_is_mapped_or_explained(root: Path) -> None:
    folders = {p.name for p in root.iterdir() if p.is_dir()}
    assert folders == set(CATEGORY_WORDS) | set(NOT_VISIBLE)


def test_licence_quotes_the_package_credits(root: Path) -> None:
    credits = gzip.decompress(Path(CREDITS).read_bytes()).decode("utf-8")
    assert CREDITS_QUOTE in credits and "art4apps.org" in credits
    assert LICENCE == "CC BY-SA" and CREDITS_QUOTE in ATTRIBUTION


def _read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_build_on_installed_files_is_deterministic(root: Path, tmp_path: Path) -> None:
    first = build_pysiogame_manifest(tmp_path / "a", root=root, limit=120)
    second = build_pysiogame_manifest(tmp_path / "b", root=root, limit=120)
    for name in ("manifest.jsonl", "dropped.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert {k: v for k, v in first.items() if k not in ("seconds", "params")} == {
        k: v for k, v in second.items() if k not in ("seconds", "params")}

    out = tmp_path / "a"
    records = read_manifest(out / "manifest.jsonl")
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert stats["files"] == 120 and len(records) == stats["images_kept"] == 120  # actions and the first animals
    assert stats["licence"] == "CC BY-SA" and stats["attribution"] == ATTRIBUTION
    assert stats["params"]["limit"] == 120 and stats["seconds"] >= 0
    assert stats["captions_dropped"] == {"category_not_visible": 80}
    by_id = {r.id: r for r in records}
    assert by_id["pysiogame/actions/bake"].captions == ["bake"]
    assert by_id["pysiogame/animals/baby_rabbit"].captions == ["baby rabbit", "baby rabbit, animal"]
    assert by_id["pysiogame/animals/baby_rabbit"].meta["category"] == "animals"
    for record in records:
        assert record.meta["style"] == "cartoon" and record.meta["source"] == "pysiogame"
        assert record.split == assign_split(record.id, 0)
        assert record.image == str((out / "images" / "pysiogame" / record.meta["file"]).resolve())
        assert load_image(record.image).size == (200, 200)
    raw = _read_rows(out / "manifest.jsonl")
    assert all(not Path(row["image"]).is_absolute() for row in raw)
    assert set(first["splits"]) <= {"train", "val", "test"} and first["splits"]["train"] > 80

    reseeded = build_pysiogame_manifest(tmp_path / "c", root=root, limit=120, seed=1)
    assert reseeded["images_kept"] == 120
    assert [r.split for r in read_manifest(tmp_path / "c" / "manifest.jsonl")] != [r.split for r in records]

    build_pysiogame_manifest(out, root=root, limit=10)  # a smaller rebuild leaves no stale images
    assert len(list((out / "images" / "pysiogame").rglob("*.jpg"))) == 10


def _copy(root: Path, tree: Path, source: str, target: str) -> None:
    dest = tree / target
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / source, dest)


def test_drops_are_reported_with_reasons(root: Path, tmp_path: Path) -> None:
    tree = tmp_path / "art4apps"
    for name in ("actions/bake.jpg", "jobs/cook.jpg", "animals/baby_rabbit.jpg", "food/ice_cream.jpg",
                 "clothes_n_accessories/shoe.jpg", "sport/run.jpg"):
        _copy(root, tree, name, name)
    _copy(root, tree, "animals/cat.jpg", "animals/123.jpg")
    _copy(root, tree, "animals/dog.jpg", "animals/fc000.jpg")
    _copy(root, tree, "people/baby.jpg", "people/Baby-Rabbit.jpg")  # another picture of a word already kept
    _copy(root, tree, "animals/cow.jpg", "misc/cow.jpg")
    _copy(root, tree, "animals/fox.jpg", "fox.jpg")
    (tree / "food" / "cake.jpg").write_bytes((root / "food" / "cake.jpg").read_bytes()[:300])  # truncated
    (tree / "food" / "notes.txt").write_text("not an image")

    out = tmp_path / "out"
    stats = build_pysiogame_manifest(out, root=tree)
    records = {r.id: r for r in read_manifest(out / "manifest.jsonl")}
    assert set(records) == {"pysiogame/actions/bake", "pysiogame/animals/baby_rabbit", "pysiogame/food/ice_cream",
                            "pysiogame/clothes_n_accessories/shoe", "pysiogame/sport/run", "pysiogame/misc/cow"}
    assert records["pysiogame/food/ice_cream"].captions == ["ice cream", "ice cream, food"]
    assert records["pysiogame/clothes_n_accessories/shoe"].captions == ["shoe", "shoe, clothing"]
    assert records["pysiogame/sport/run"].captions == ["run"]
    assert records["pysiogame/misc/cow"].captions == ["cow"]
    assert records["pysiogame/actions/bake"].meta["aliases"] == ["jobs/cook.jpg"]

    rows = _read_rows(out / "dropped.jsonl")
    images = {row["id"]: row for row in rows if row["kind"] == "image"}
    assert {i: row["reason"] for i, row in images.items()} == {
        "pysiogame/animals/123": "name_not_a_word",
        "pysiogame/animals/fc000": "name_not_a_word",
        "pysiogame/food/cake": "unreadable_image",
        "pysiogame/jobs/cook": "duplicate_image",
        "pysiogame/people/Baby-Rabbit": "duplicate_word",
        "pysiogame/fox": "not_in_a_category_folder",
    }
    assert images["pysiogame/jobs/cook"]["duplicate_of"] == "pysiogame/actions/bake"
    assert images["pysiogame/people/Baby-Rabbit"]["duplicate_of"] == "pysiogame/animals/baby_rabbit"
    assert "food/cake.jpg" in images["pysiogame/food/cake"]["error"] and str(tree) not in images["pysiogame/food/cake"]["error"]
    captions = {row["id"]: row for row in rows if row["kind"] == "caption"}
    assert captions["pysiogame/actions/bake"]["reason"] == "category_not_visible"
    assert captions["pysiogame/actions/bake"]["why"] == NOT_VISIBLE["actions"]
    assert captions["pysiogame/sport/run"]["reason"] == "category_not_visible"
    assert captions["pysiogame/misc/cow"]["reason"] == "unknown_category"
    assert stats["images_dropped"] == {"name_not_a_word": 2, "duplicate_image": 1, "duplicate_word": 1,
                                       "not_in_a_category_folder": 1, "unreadable_image": 1}
    assert stats["files"] == len(records) + sum(stats["images_dropped"].values())


def test_missing_package_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install pysiogame"):
        build_pysiogame_manifest(tmp_path / "out", root=tmp_path / "nowhere")


def test_cli(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "pysiogame", "--out", str(tmp_path), "--limit", "5"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images_kept"] == 5 and summary["licence"] == "CC BY-SA"
    assert len(read_manifest(tmp_path / "manifest.jsonl")) == 5
