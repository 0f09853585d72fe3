"""Emoji corpora built from the real npm packages (downloaded once into a cache that tests share).

The cache is ``$LEXVLA_NPM_CACHE`` or ``var/cache/npm`` in the repository (git-ignored); the
first run downloads about 90 MB with ``npm pack``, later runs only read it.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from models.data.emoji import (
    GOOGLE_PACKAGE,
    HELDOUT_REASON,
    SKIN_TONES,
    NpmError,
    build_emoji_manifest,
    caption_key,
    clean_annotation,
    concept_key,
    fetch_npm_package,
    google_concepts,
    heldout_concept,
    heldout_google_captions,
    keyword_caption,
    name_caption,
    normalize_hexcode,
    region_code,
    split_group,
)
from models.data.manifest import read_manifest

REPO = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("LEXVLA_NPM_CACHE", REPO / "var" / "cache" / "npm"))
needs_npm = pytest.mark.skipif(
    shutil.which("npm") is None and not (CACHE / "-".join(GOOGLE_PACKAGE)).is_dir(),
    reason="npm is not installed and the packages are not cached",
)
needs_rsvg = pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason="rsvg-convert (librsvg2-bin) missing")


@pytest.mark.parametrize(
    ("name", "flag", "expected"),
    [
        ("RED APPLE", False, "red apple"),
        ("FACE WITH TEARS OF JOY", False, "face with tears of joy"),
        ("Germany Flag", True, "flag of germany"),
        ("flag: Germany", False, "flag of germany"),
        ("St. Kitts & Nevis Flag", True, "flag of st. kitts and nevis"),
        ("PIRATE FLAG", False, "pirate flag"),
        ("MAN: RED HAIR", False, "man with red hair"),
        ("WOMAN: BALD", False, "bald woman"),
        ("FAMILY: MAN, WOMAN, BOY", False, "family of man, woman and boy"),
        ("KISS: WOMAN, MAN", False, "kiss of woman and man"),
        ("CLOCK FACE NINE OCLOCK", False, "clock face nine o'clock"),
        ("SQUARED CJK UNIFIED IDEOGRAPH-7121", False, None),
    ],
)
def test_name_caption(name: str, flag: bool, expected: str | None) -> None:
    assert name_caption(name, flag=flag) == expected


def test_annotations_keywords_and_codes() -> None:
    assert clean_annotation("Japanese “free of charge” button") == "japanese free of charge button"
    assert clean_annotation("four o’clock") == "four o'clock"
    assert clean_annotation("castile and le\ufffdn flag", flag=True, alternatives="castile, castile and leon") == (
        "flag of castile and leon")
    assert clean_annotation("navarra chartered community", flag=True) == "flag of navarra chartered community"
    assert clean_annotation("red flag") == "red flag"
    assert keyword_caption(["apple", "fruit", "red_apple", "Apple"], ["red apple"]) == "apple, fruit"
    assert keyword_caption(["man-boy-boy", "family", "+1", "u7121", "b"], ["family of man, boy and boy"],
                           hyphenated=1) == "family"
    assert keyword_caption(["VC", "flag"], ["flag of st. vincent"], codes=frozenset({"vc"})) == "flag"
    assert region_code("1F1FB-1F1E8") == "vc"
    assert region_code("1F3F4-E0067-E0062-E0065-E006E-E0067-E007F") == "gbeng"
    assert normalize_hexcode("2764-fe0f-200d-1f525") == "2764-200D-1F525"
    assert split_group("1F3C3-200D-2640-FE0F") == split_group("1F3C3") == split_group("1F3C3-200D-2642-FE0F")
    assert caption_key("Wheel chair") == caption_key("wheelchair")


def test_heldout_concept_is_shared_by_variants_and_stable() -> None:
    running = ["1F3C3", "1F3C3-200D-2640-FE0F", "1F3C3-1F3FD-200D-2642-FE0F", "1f3c3-1f3ff"]
    assert {concept_key(h) for h in running} == {"1F3C3"}
    assert concept_key("1F468-1F3FB-200D-1F9B0") == concept_key("1F9D1-200D-1F9B0") == concept_key("1F469") == "1F9D1"
    assert concept_key("1F1E9-1F1EA") != concept_key("1F1EB-1F1F7")  # each flag is its own concept
    for seed in (0, 1):
        assert len({heldout_concept(h, seed) for h in running}) == 1
    keys = [f"{code:X}" for code in range(0x1F300, 0x1F300 + 2000)]
    share = sum(map(heldout_concept, keys)) / len(keys)
    assert 0.22 < share < 0.28 and [heldout_concept(k) for k in keys] == [heldout_concept(k) for k in keys]
    assert [heldout_concept(k, 1) for k in keys] != [heldout_concept(k) for k in keys]
    assert sum(heldout_concept(k, fraction=0.5) for k in keys) > sum(map(heldout_concept, keys))


@pytest.fixture(scope="session")
def cache() -> Path:
    for package in ("emoji-datasource-google@16.0.0", "emoji-datasource-twitter@16.0.0", "emojibase-data@16.0.3",
                    "openmoji@17.0.0"):
        fetch_npm_package(*package.rsplit("@", 1), CACHE)
    return CACHE


@pytest.fixture(scope="session")
def google(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("google")
    return out, build_emoji_manifest(out, "google", cache_dir=cache, limit=600)


@pytest.fixture(scope="session")
def openmoji(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    if shutil.which("rsvg-convert") is None:
        pytest.skip("rsvg-convert (librsvg2-bin) missing")
    out = tmp_path_factory.mktemp("openmoji")
    return out, build_emoji_manifest(out, "openmoji", cache_dir=cache, limit=60)


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_fetch_into_a_relative_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The demo's cache is ``var/cache/npm``, relative to the working directory; npm runs elsewhere."""
    monkeypatch.chdir(tmp_path)
    package = fetch_npm_package("is-number", "7.0.0", Path("var/cache/npm"))
    assert (tmp_path / "var/cache/npm/is-number-7.0.0/package/package.json").is_file()
    assert package.resolve() == (tmp_path / "var/cache/npm/is-number-7.0.0/package").resolve()


@needs_npm
def test_fetch_is_cached_and_reports_npm_errors(cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    first = fetch_npm_package(*GOOGLE_PACKAGE, cache)
    assert (first / "emoji.json").is_file() and first.name == "package"
    with monkeypatch.context() as patch:
        patch.setenv("PATH", "")  # no npm: the cached copy is all it may use
        assert fetch_npm_package(*GOOGLE_PACKAGE, cache) == first
        with pytest.raises(NpmError, match="npm is not installed"):
            fetch_npm_package("emoji-datasource-google", "15.1.2", tmp_path)
    if shutil.which("npm"):
        with pytest.raises(NpmError, match="npm pack emoji-datasource-google@0.0.0-no-such-version failed"):
            fetch_npm_package("emoji-datasource-google", "0.0.0-no-such-version", tmp_path)
    assert not list(tmp_path.iterdir()) and not list(cache.glob(".emoji-*"))  # no leftover temporary folders


@needs_npm
def test_google_manifest(google: tuple[Path, dict]) -> None:
    out, stats = google
    records = read_manifest(out / "manifest.jsonl")
    assert len(records) == stats["images_kept"] > 350
    assert set(stats["splits"]) == {"train", "val", "test"}
    by_id = {r.id: r for r in records}
    assert by_id["1f602"].captions[0] == "face with tears of joy"
    # no held-out concept in any split; the held-out ones are reported
    assert not any(heldout_concept(r.meta["hexcode"]) or heldout_concept(r.meta["concept"]) for r in records)
    assert all(r.meta["concept"] == concept_key(r.meta["hexcode"]) for r in records)
    assert stats["images_dropped"][HELDOUT_REASON] > 100
    for record in records:
        assert Path(record.image).is_file() and record.image.startswith(str(out.resolve()))
        assert not SKIN_TONES & set(record.meta["hexcode"].split("-")), record.id
        assert record.meta["category"] != "Component"
        assert 1 <= len(record.captions) <= 3 and record.captions[0] == record.captions[0].casefold()
        assert len({caption_key(c) for c in record.captions}) == len(record.captions)
        assert not any(code in c.split(", ") for c in record.captions for code in ("u7121", "+1", "flag-de"))
    assert len({r.meta["sha256"] for r in records}) == len(records)
    # variants of one emoji never straddle splits
    groups: dict[str, set[str]] = {}
    for record in records:
        groups.setdefault(record.meta["split_group"], set()).add(record.split)
    assert all(len(splits) == 1 for splits in groups.values())
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines()]
    assert all({"id", "kind", "reason"} <= row.keys() for row in dropped)
    assert sum(row["kind"] == "image" for row in dropped) == sum(stats["images_dropped"].values())
    assert stats["images_kept"] + sum(stats["images_dropped"].values()) == stats["entries"] == 600
    assert stats["params"]["skin_tone_variants_not_used"] > 100


@needs_npm
def test_twitter_manifest_is_a_second_drawing_of_the_training_concepts(cache: Path, google: tuple[Path, dict],
                                                                      tmp_path: Path) -> None:
    """Twemoji drawings: Google's captions, concepts and splits, other pictures, ids of their own."""
    stats = build_emoji_manifest(tmp_path, "twitter", cache_dir=cache, limit=600)
    twitter = read_manifest(tmp_path / "manifest.jsonl")
    assert len(twitter) == stats["images_kept"] > 350 and stats["source"] == "twitter"
    assert stats["params"]["package"] == "emoji-datasource-twitter@16.0.0"
    assert not any(heldout_concept(r.meta["concept"]) for r in twitter)
    assert stats["images_dropped"][HELDOUT_REASON] > 100
    by_code = {r.meta["hexcode"]: r for r in read_manifest(google[0] / "manifest.jsonl")}
    shared = [(r, by_code[r.meta["hexcode"]]) for r in twitter if r.meta["hexcode"] in by_code]
    assert len(shared) > 300
    for tw, go in shared:
        assert tw.id == f"twitter-{go.id}" and tw.meta["source"] == "twitter" and "/twitter/" in tw.image
        assert tw.captions == go.captions and tw.split == go.split  # one concept, one split, in every set
        assert tw.meta["sha256"] != go.meta["sha256"]  # another artist's drawing
    assert {r.id for r in twitter}.isdisjoint(by_code[c].id for c in by_code)


@needs_npm
def test_google_full_captions_examples(cache: Path) -> None:
    """Examples from the whole package (the session build is limited): captions of far-apart emoji."""
    out_codes, keys = google_concepts(cache)
    assert {"1F34E", "1F1E9-1F1EA", "2764-200D-1F525"} <= out_codes
    assert {caption_key("red apple"), caption_key("flag of germany"), caption_key("apple")} <= keys
    heldout = heldout_google_captions(cache)
    assert 400 < len(heldout) < 550 and heldout["1F40A"] == "crocodile"
    assert all(heldout_concept(code) for code in heldout)
    assert all(caption == caption.casefold() and caption_key(caption) in keys for caption in heldout.values())


@needs_npm
@needs_rsvg
def test_openmoji_is_held_out(openmoji: tuple[Path, dict], cache: Path, google: tuple[Path, dict]) -> None:
    out, stats = openmoji
    records = read_manifest(out / "manifest.jsonl")
    assert len(records) == stats["images_kept"] == 60
    codes, _ = google_concepts(cache)
    training_concepts = {concept_key(c) for c in codes if not heldout_concept(c)}  # whole Google package
    google_records = read_manifest(google[0] / "manifest.jsonl")
    training_concepts |= {r.meta["concept"] for r in google_records}
    heldout = heldout_google_captions(cache)
    for record in records:
        assert record.split == "test" and record.meta["source"] == "openmoji"
        concept = record.meta["concept"]
        assert concept == concept_key(record.meta["hexcode"]) and heldout_concept(concept)
        assert concept not in training_concepts
        assert record.captions == [heldout[normalize_hexcode(record.meta["hexcode"])]]  # Google's caption
        assert record.meta["group"] and not record.meta["group"].startswith("extras")
        assert record.meta["width"] == record.meta["height"] == 128 and Path(record.image).is_file()
    assert len({caption_key(r.captions[0]) for r in records}) == len(records)
    dropped = {row["reason"] for row in map(json.loads, (out / "dropped.jsonl").read_text().splitlines())}
    assert {"concept in training source", "skin_tone_variant", "component", "over_limit",
            "OpenMoji extra: not a Unicode emoji"} <= dropped
    assert stats["images_dropped"]["concept in training source"] > 1200
    assert stats["images_dropped"]["OpenMoji extra: not a Unicode emoji"] > 400
    # unlimited, about as many as Google drops as held out
    assert 400 < stats["images_kept"] + stats["images_dropped"]["over_limit"] <= len(heldout)


@needs_npm
@needs_rsvg
def test_builds_are_deterministic(cache: Path, google: tuple[Path, dict], openmoji: tuple[Path, dict],
                                  tmp_path: Path) -> None:
    build_emoji_manifest(tmp_path / "g", "google", cache_dir=cache, limit=600)
    build_emoji_manifest(tmp_path / "o", "openmoji", cache_dir=cache, limit=60)
    for name in ("manifest.jsonl", "dropped.jsonl"):
        assert (tmp_path / "g" / name).read_bytes() == (google[0] / name).read_bytes()
        assert (tmp_path / "o" / name).read_bytes() == (openmoji[0] / name).read_bytes()
    build_emoji_manifest(tmp_path / "g1", "google", cache_dir=cache, limit=600, seed=1)
    assert (tmp_path / "g1" / "manifest.jsonl").read_bytes() != (google[0] / "manifest.jsonl").read_bytes()
    other = read_manifest(tmp_path / "g1" / "manifest.jsonl")
    assert not any(heldout_concept(r.meta["concept"], 1) for r in other)
    assert any(heldout_concept(r.meta["concept"]) for r in other)  # another seed holds out other concepts


def test_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source must be one of"):
        build_emoji_manifest(tmp_path, "twemoji")
