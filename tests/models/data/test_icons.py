"""Icon corpora (tabler line icons, game-icons silhouettes) built from the real npm packages.

The packages are downloaded once into the cache the emoji tests share: ``$LEXVLA_NPM_CACHE`` or
``var/cache/npm`` in the repository (git-ignored); ``@iconify/json`` is about 70 MB.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from models.data.emoji import caption_key, fetch_npm_package
from models.data.icons import (
    ICONIFY_PACKAGE,
    TABLER_PACKAGE,
    PngJob,
    Rendered,
    build_icon_manifest,
    icon_phrase,
    iconify_svg,
    make_pngs,
    numbered_series,
)
from models.data.manifest import assign_split, read_manifest
from models.preprocess import load_image

REPO = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("LEXVLA_NPM_CACHE", REPO / "var" / "cache" / "npm"))
LIMIT = 60
needs_npm = pytest.mark.skipif(
    shutil.which("npm") is None and not (CACHE / "tabler+icons-3.51.0").is_dir(),
    reason="npm is not installed and the packages are not cached",
)
needs_rsvg = pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason="rsvg-convert (librsvg2-bin) missing")


@pytest.mark.parametrize(
    ("name", "phrase", "dropped"),
    [
        ("arrow-big-left", "arrow big left", []),
        ("bear-face", "bear face", []),
        ("bell-off", "bell", ["off"]),
        ("heart-filled", "heart", ["filled"]),
        ("moon-2", "moon", ["2"]),
        ("armchair-2-off", "armchair", ["2", "off"]),
        ("message-2-cog", "message cog", ["2"]),
        ("battery-pack-alt", "battery pack", ["alt"]),
        ("car-off-road", "car off road", []),
        ("number-1", "number 1", []),
        ("clock-hour-9", "clock hour 9", []),
        ("dice-4", "dice 4", []),
        ("error-404", "error 404", []),
        ("abstract-017", "abstract", ["017"]),
        ("3d-glasses", "3d glasses", []),
        ("h2o", "h2o", []),
    ],
)
def test_icon_phrase(name: str, phrase: str, dropped: list[str]) -> None:
    assert icon_phrase(name)[:2] == (phrase, dropped)


def test_names_that_are_not_words_and_numbered_series() -> None:
    for code in ("ak47", "mp5k", "colt-m1911", "square-f1", "mp-40", "tec-9"):
        assert icon_phrase(code) == (None, [], "name_is_a_code"), code
    for name in ("a-b", "x", "h-1"):
        assert icon_phrase(name)[0::2] == (None, "name_is_not_a_word"), name
    series = numbered_series(["abstract-001", "abstract-121", "tarot-00-the-fool", "tarot-10-wheel-of-fortune", "moon-2"])
    assert series == {"abstract", "tarot"}
    assert icon_phrase("abstract-121", series)[:2] == ("abstract", ["121"])
    assert icon_phrase("tarot-10-wheel-of-fortune", series)[0] == "tarot wheel of fortune"
    assert icon_phrase("tarot-10-wheel-of-fortune")[0] == "tarot 10 wheel of fortune"


def test_iconify_svg() -> None:
    svg = iconify_svg({"body": '<path fill="currentColor" d="M0 0h8v8H0z"/>'}, {"width": 512, "height": 512})
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"') and 'viewBox="0 0 512 512"' in svg
    assert 'color="#000000"' in svg and svg.endswith('<path fill="currentColor" d="M0 0h8v8H0z"/></svg>')
    narrow = iconify_svg({"body": "<g/>", "width": 24, "left": 2}, {"height": 16})
    assert 'width="24" height="16" viewBox="2 0 24 16"' in narrow


@needs_rsvg
def test_make_pngs_reports_failures_and_reuses_renders(tmp_path: Path) -> None:
    from models.data.emoji import render_svg

    good, bad = tmp_path / "good.svg", tmp_path / "bad.svg"
    good.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="4" height="4"/></svg>')
    bad.write_text("<svg><not closed")
    folder = tmp_path / "png"

    def jobs() -> list[PngJob]:
        return [PngJob(folder / f"{svg.stem}.png", hashlib.sha256(svg.read_bytes()).hexdigest(),
                       lambda png, svg=svg: render_svg(svg, png, 16)) for svg in (good, bad)]

    first = make_pngs(jobs(), folder)
    assert isinstance(first[0], Rendered) and not first[0].reused and not first[0].blank
    assert (first[0].width, first[0].height) == (16, 16)
    assert isinstance(first[1], str) and str(tmp_path) not in first[1]
    assert not (folder / "bad.png").exists() and not list(folder.glob("*.tmp"))
    second = make_pngs(jobs(), folder)
    assert second[0] == Rendered(16, 16, first[0].pixels, False, True) and second[1] == first[1]
    good.write_text(good.read_text().replace('width="4"', 'width="8"'))  # a changed source is rendered again
    third = make_pngs(jobs(), folder)
    assert isinstance(third[0], Rendered) and not third[0].reused and third[0].pixels != first[0].pixels


@pytest.fixture(scope="module")
def cache() -> Path:
    for package in (TABLER_PACKAGE, ICONIFY_PACKAGE):
        fetch_npm_package(*package, CACHE)
    return CACHE


@pytest.fixture(scope="module")
def tabler(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    if shutil.which("rsvg-convert") is None:
        pytest.skip("rsvg-convert (librsvg2-bin) missing")
    out = tmp_path_factory.mktemp("tabler")
    return out, build_icon_manifest(out, "tabler", cache_dir=cache, limit=LIMIT)


@pytest.fixture(scope="module")
def game_icons(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    if shutil.which("rsvg-convert") is None:
        pytest.skip("rsvg-convert (librsvg2-bin) missing")
    out = tmp_path_factory.mktemp("game-icons")
    return out, build_icon_manifest(out, "game-icons", cache_dir=cache, limit=LIMIT)


def _dropped(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines()]


def _check_common(out: Path, stats: dict, source: str, style: str) -> list:
    records = read_manifest(out / "manifest.jsonl")
    assert stats["source"] == source and stats["images_kept"] == len(records) == LIMIT
    dropped = _dropped(out)
    assert all({"id", "kind", "reason"} <= row.keys() for row in dropped)
    assert sum(row["kind"] == "image" for row in dropped) == sum(stats["images_dropped"].values())
    assert stats["images_kept"] + sum(stats["images_dropped"].values()) == stats["entries"]
    assert {row["id"] for row in dropped if row["kind"] == "caption"} <= {r.id for r in records}
    for record in records:
        assert record.id == f"{source}-{record.meta['name']}" and record.meta["style"] == style
        assert record.split == assign_split(record.id, 0)
        assert record.captions[0] == record.captions[0].casefold() and record.meta["caption_sources"][0] == "name"
        assert record.meta["width"] == record.meta["height"] == 128
    assert len({caption_key(r.captions[0]) for r in records}) == len(records)  # one phrase, one picture
    pixels = set()
    for record in records:
        path = Path(record.image)
        assert path.parent == (out / "images" / source).resolve() and path.name == f"{record.id}.png"
        with Image.open(path) as img:
            assert img.mode == "RGBA" and img.size == (128, 128) and img.getpixel((0, 0))[3] == 0
            pixels.add(hashlib.sha256(img.tobytes()).hexdigest())
        rgb = load_image(path)  # transparency composited onto white, the drawing black
        assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (255, 255, 255)
        assert min(rgb.convert("L").getdata()) < 64
    assert len(pixels) == len(records)  # no two records show the same picture
    return records


@needs_npm
@needs_rsvg
def test_tabler_manifest(tabler: tuple[Path, dict]) -> None:
    out, stats = tabler
    records = _check_common(out, stats, "tabler", "line icon")
    by_id = {r.id: r for r in records}
    abacus = by_id["tabler-abacus"]
    assert abacus.captions[0] == "abacus" and abacus.meta["category"] == "Math"
    assert abacus.captions[1].startswith("math, counting, calculation") and "abacus" not in abacus.captions[1].split(", ")
    assert all(len(r.captions) == 2 and r.meta["caption_sources"] == ["name", "keywords"] for r in records)
    dropped = _dropped(out)
    reasons = {row["reason"] for row in dropped if row["kind"] == "image"}
    assert {"brand_logo", "duplicate_caption", "name_is_a_code", "name_is_not_a_word", "over_limit"} <= reasons
    assert stats["images_dropped"]["brand_logo"] > 300
    bell_off = next(row for row in dropped if row["id"] == "tabler-bell-off")
    assert bell_off["reason"] == "duplicate_caption" and bell_off["duplicate_of"] == "tabler-bell"
    assert stats["licence"] == "MIT" and "Paweł Kuna" in stats["attribution"]
    assert stats["params"]["package"] == "@tabler/icons@3.51.0" and stats["entries"] > 5000


@needs_npm
@needs_rsvg
def test_game_icons_manifest(game_icons: tuple[Path, dict]) -> None:
    out, stats = game_icons
    records = _check_common(out, stats, "game-icons", "silhouette")
    by_id = {r.id: r for r in records}
    assert by_id["game-icons-3d-glasses"].captions == ["3d glasses"]
    assert all(len(r.captions) == 1 for r in records)
    dropped = {row["id"]: row for row in _dropped(out)}
    assert dropped["game-icons-ak47"]["reason"] == "name_is_a_code"
    assert dropped["game-icons-female-vampire"]["reason"] == "hidden_icon"
    assert dropped["game-icons-abstract-002"]["reason"] == "duplicate_caption"
    assert dropped["game-icons-abstract-002"]["duplicate_of"] == "game-icons-abstract-001"
    assert dropped["game-icons-bear-face"]["reason"] == "over_limit"
    # plain names come first: a name left without its variant number is taken after all of them
    assert dropped["game-icons-abstract-001"]["reason"] == "over_limit"
    assert all(r.meta["name_tokens_dropped"] == [] for r in records)
    assert stats["licence"] == "CC BY 3.0" and stats["licence_spdx"] == "CC-BY-3.0"
    assert stats["attribution"] == "Game Icons by GameIcons (https://github.com/game-icons/icons)"
    assert stats["authors"] == [{"name": "GameIcons", "url": "https://github.com/game-icons/icons"}]
    assert stats["params"]["package"] == "@iconify-json/game-icons@1.2.4" and stats["entries"] == 4134


@needs_npm
@needs_rsvg
@pytest.mark.parametrize("source", ["tabler", "game-icons"])
def test_builds_are_deterministic_and_rebuilds_reuse_renders(source: str, tabler: tuple[Path, dict],
                                                             game_icons: tuple[Path, dict], cache: Path,
                                                             tmp_path: Path) -> None:
    out, first = tabler if source == "tabler" else game_icons
    assert first["params"]["rendered"] == LIMIT and first["params"]["reused"] == 0
    build_icon_manifest(tmp_path, source, cache_dir=cache, limit=LIMIT)
    for name in ("manifest.jsonl", "dropped.jsonl"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()
    again = build_icon_manifest(tmp_path, source, cache_dir=cache, limit=LIMIT)
    assert again["params"]["rendered"] == 0 and again["params"]["reused"] == LIMIT
    assert (tmp_path / "manifest.jsonl").read_bytes() == (out / "manifest.jsonl").read_bytes()
    smaller = build_icon_manifest(tmp_path, source, cache_dir=cache, limit=5)
    assert len(list((tmp_path / "images" / source).glob("*.png"))) == smaller["images_kept"] == 5
    assert smaller["params"]["rendered"] == 0


def test_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source must be one of"):
        build_icon_manifest(tmp_path, "fontawesome")


@needs_rsvg
def test_render_failures_blank_and_duplicate_pictures_are_dropped(tmp_path: Path) -> None:
    """A small icon set in the package's format, in a cache of its own: every drop reason of a render."""
    square = '<path fill="currentColor" d="M64 64h384v384H64z"/>'
    icons = {
        "block": {"body": square},
        "square": {"body": square},  # the same picture as "block"
        "snowflake-1": {"body": '<circle fill="currentColor" cx="256" cy="256" r="200"/>'},
        "snowflake-2": {"body": '<circle fill="currentColor" cx="256" cy="256" r="100"/>'},
        "broken": {"body": '<path fill="currentColor" d="M0 0h9"'},  # not XML
        "empty": {"body": '<path fill="currentColor" d=""/>'},
        "ak47": {"body": square.replace("64", "32")},
        "old-name": {"body": square, "hidden": True},
    }
    info = {"name": "Game Icons", "author": {"name": "GameIcons", "url": "https://example.org/icons"},
            "license": {"title": "CC BY 3.0", "spdx": "CC-BY-3.0", "url": "https://example.org/license"}}
    package = tmp_path / "cache" / f"{ICONIFY_PACKAGE[0].lstrip('@').replace('/', '+')}-{ICONIFY_PACKAGE[1]}" / "package"
    package.mkdir(parents=True)
    (package / "info.json").write_text(json.dumps(info))
    (package / "icons.json").write_text(json.dumps(
        {"prefix": "game-icons", "icons": icons, "aliases": {"ice": {"parent": "snowflake-1"}}, "width": 512, "height": 512}))
    out = tmp_path / "out"
    stats = build_icon_manifest(out, "game-icons", cache_dir=tmp_path / "cache")
    records = {r.id: r for r in read_manifest(out / "manifest.jsonl")}
    assert {i: r.captions for i, r in records.items()} == {"game-icons-block": ["block"],
                                                            "game-icons-snowflake-1": ["snowflake"]}
    assert records["game-icons-snowflake-1"].meta["name_tokens_dropped"] == ["1"]
    rows = _dropped(out)
    assert {row["id"]: row["reason"] for row in rows if row["kind"] == "image"} == {
        "game-icons-square": "duplicate_image", "game-icons-snowflake-2": "duplicate_caption",
        "game-icons-broken": "render_failed", "game-icons-empty": "blank_render",
        "game-icons-ak47": "name_is_a_code", "game-icons-old-name": "hidden_icon",
    }
    assert [row for row in rows if row["kind"] == "caption"] == [
        {"id": "game-icons-snowflake-1", "kind": "caption", "reason": "variant_tokens_dropped", "field": "name",
         "text": "snowflake 1"}]
    failure = next(row for row in rows if row["reason"] == "render_failed")
    assert failure["error"] and str(tmp_path) not in failure["error"] and "/tmp" not in failure["error"]
    assert stats["entries"] == len(icons) and stats["params"]["aliases_not_used"] == 1
    assert stats["attribution"] == "Game Icons by GameIcons (https://example.org/icons)"
    assert sorted(p.name for p in (out / "images" / "game-icons").glob("*.png")) == [
        "game-icons-block.png", "game-icons-snowflake-1.png"]
