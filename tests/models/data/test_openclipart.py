"""Openclipart caption cleaning (examples taken from the real metadata) and the manifest build."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.data.manifest import read_manifest
from models.data.openclipart import (
    PNG_ROOT,
    SVG_ROOT,
    build_openclipart_manifest,
    clean_caption,
    clean_keywords,
    read_svg_meta,
    truncate,
)

ROLLANDIN = ["Architetto Francesco Rollandin"]
needs_openclipart = pytest.mark.skipif(
    not (Path(PNG_ROOT).is_dir() and Path(SVG_ROOT).is_dir()), reason="Debian openclipart-png/-svg not installed"
)


@pytest.mark.parametrize(
    ("raw", "authors", "expected"),
    [
        ("Coccinella Rollandin", ROLLANDIN, "Coccinella"),
        ("Chalet di montagna Architetto Francesco Rollandin", ROLLANDIN, "Chalet di montagna"),
        ("Architetto Francesco Rollandin", ROLLANDIN, None),
        ("Telefono (email: frollandin@email.it)", ROLLANDIN, "Telefono"),
        ("Jonathon's Duck", ["Jonathon Love"], "Jonathon's Duck"),
        ("Clipart by Nicu Buculei - piggybank", ["Nicu Buculei"], "piggybank"),
        ("Clipart by Nicu Buculei - jigsaw_red_10", ["Nicu Buculei"], "jigsaw red"),
        ("Part of the Flat Icon Collection (Wed Aug 25 23:29:46 2004)", ["Danny Allen"], "Part of the Flat Icon Collection"),
        ("SVG Gradient Collection by Alan Horkan, 2004.", ["Alan Horkan"], "SVG Gradient Collection"),
        ("AIGA_Symbol_Signs", [], "AIGA Symbol Signs"),
        ("EPS converted from  http://aiga.org", [], "EPS converted from"),
        ("jean.victor.balin@gmail.com", [], None),
        ("HASH(0x8677e2c)", [], None),
        ("boat2", [], "boat"),
        ("Samoa Tatoo Pattern 001", [], "Samoa Tatoo Pattern"),
        ("international maritime signal flag 0", ["International Code of Signals"], "international maritime signal flag 0"),
        ("Crawfish (B and W)", ["Gerald G."], "Crawfish (B and W)"),
        ("large_braces.svg", [], "large braces"),
        ("Untitled", [], None),
        ("", [], None),
        ("Mars &amp; Venus", [], "Mars & Venus"),
    ],
)
def test_clean_title(raw: str, authors: list[str], expected: str | None) -> None:
    assert clean_caption(raw, authors) == expected


@pytest.mark.parametrize(
    ("stem", "authors", "expected"),
    [
        ("armadillo_architetto_fra_01", ROLLANDIN, "armadillo"),
        ("medicina_dottore_archite_01", ROLLANDIN, "medicina dottore"),
        ("pantyhose_rollandin_fra3", ROLLANDIN, "pantyhose"),
        ("chemistry_flask_matthew__02", ["Matthew Gates"], "chemistry flask"),
        ("hotel_icon_concierge_ger_01", ["Gerald G."], "hotel icon concierge"),
        ("brain_jon_phillips_01", ["Jon Phillips"], "brain"),
        ("star_05pt02step", ["codifiedivining"], "star"),
        ("BandeMarquageSecurite", [], "Bande Marquage Securite"),
        ("people_juliane_krug_01a", ["Juliane Krug"], "people"),
        ("70a025", [], None),
    ],
)
def test_clean_file_name(stem: str, authors: list[str], expected: str | None) -> None:
    assert clean_caption(stem, authors, filename=True) == expected


def test_clean_keywords_drops_artefacts_authors_and_duplicates() -> None:
    raw = ["hash(0x8a3ecd4)", "", "insect", "lemon_theme_icon", "Animal", "insect", "architetto francesco rollandin",
           "united_nations_member", "collantcorpinorinforzatotassellocotone", "red_cross"]
    assert clean_keywords(raw, ROLLANDIN) == "insect, animal, red cross"
    assert clean_keywords(["", "hash"]) is None


def test_truncate_prefers_whole_sentences() -> None:
    text = "First sentence here. " + "word " * 60
    assert truncate(text, 40) == "First sentence here."
    assert len(truncate("word " * 60, 40)) <= 40


def test_read_svg_meta_separates_work_title_from_agents(tmp_path: Path) -> None:
    svg = tmp_path / "a.svg"
    svg.write_text(
        '<svg xmlns:dc="x"><metadata><rdf:RDF><cc:Work><dc:title>Tux &amp; friends</dc:title>'
        "<dc:description>A penguin.</dc:description><dc:subject><rdf:Bag><rdf:li>tux</rdf:li>"
        "<rdf:li>penguin</rdf:li></rdf:Bag></dc:subject><dc:publisher><cc:Agent><dc:title>Open Clip Art Library"
        "</dc:title></cc:Agent></dc:publisher><dc:creator><cc:Agent><dc:title>Larry Ewing</dc:title></cc:Agent>"
        "</dc:creator><dc:rights><cc:Agent><dc:title>Public Domain</dc:title></cc:Agent></dc:rights>"
        "</cc:Work></rdf:RDF></metadata><path d='M 0 0'/></svg>"
    )
    meta = read_svg_meta(svg)
    assert (meta.title, meta.description, meta.keywords, meta.authors) == (
        "Tux & friends", "A penguin.", ["tux", "penguin"], ["Larry Ewing"])


@needs_openclipart
def test_build_subset_is_deterministic_and_reports_drops(tmp_path: Path) -> None:
    stats = build_openclipart_manifest(tmp_path / "a", limit=400, seed=5)
    build_openclipart_manifest(tmp_path / "b", limit=400, seed=5)
    other = build_openclipart_manifest(tmp_path / "c", limit=400, seed=6)
    first, second = read_manifest(tmp_path / "a" / "manifest.jsonl"), read_manifest(tmp_path / "b" / "manifest.jsonl")
    assert first == second and len(first) == stats["images_kept"] > 100
    assert [r.split for r in first] != [r.split for r in read_manifest(tmp_path / "c" / "manifest.jsonl")]
    assert other["images_kept"] == stats["images_kept"]
    assert sum(stats["splits"].values()) == stats["images_kept"]
    assert (tmp_path / "a" / "stats.json").exists()
    for record in first:
        assert 1 <= len(record.captions) <= 3 and Path(record.image).exists()
        assert len({c.casefold() for c in record.captions}) == len(record.captions)
        assert not any(name.casefold() in c.casefold() for name in record.meta["authors"] for c in record.captions
                       if len(name) > 3)
    dropped = [json.loads(line) for line in (tmp_path / "a" / "dropped.jsonl").read_text().splitlines()]
    assert all({"path", "reason"} <= row.keys() for row in dropped)
    images_dropped = sum(stats["images_dropped"].values())
    assert sum(row["kind"] == "image" for row in dropped) == images_dropped
    assert stats["images_kept"] + images_dropped == stats["png_files"] == 400


@needs_openclipart
def test_symlinked_copies_become_aliases(tmp_path: Path) -> None:
    png = tmp_path / "png" / "cat"
    svg = tmp_path / "svg" / "cat"
    png.mkdir(parents=True)
    svg.mkdir(parents=True)
    source = next(Path(PNG_ROOT).rglob("brain_jon_phillips_01.png"))
    (png / "brain_jon_phillips_01.png").write_bytes(source.read_bytes())
    (png / "brain_copy.png").symlink_to(png / "brain_jon_phillips_01.png")
    svg_source = Path(SVG_ROOT) / source.relative_to(PNG_ROOT).with_suffix(".svg")
    (svg / "brain_jon_phillips_01.svg").write_bytes(svg_source.read_bytes())
    (png / "empty.png").write_bytes(b"not a png")
    stats = build_openclipart_manifest(tmp_path / "out", png_root=tmp_path / "png", svg_root=tmp_path / "svg")
    [record] = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert record.id == "cat/brain_jon_phillips_01" and record.meta["aliases"] == ["cat/brain_copy"]
    assert record.captions[0] == "Brain"
    assert stats["images_dropped"] == {"duplicate_image": 1, "unreadable_png": 1}


@needs_openclipart
def test_real_decompression_bomb_is_dropped_by_its_header(tmp_path: Path) -> None:
    """openclipart ships a 231-megapixel drawing; it must not reach training or indexing."""
    bomb = Path(PNG_ROOT) / "computer" / "microchip_v.2_havok_redh_01.png"
    if not bomb.exists():
        pytest.skip("this openclipart release has no such drawing")
    (tmp_path / "png").mkdir()
    (tmp_path / "svg").mkdir()
    (tmp_path / "png" / bomb.name).write_bytes(bomb.read_bytes())
    (tmp_path / "svg" / bomb.with_suffix(".svg").name).write_bytes(
        (Path(SVG_ROOT) / bomb.relative_to(PNG_ROOT).with_suffix(".svg")).read_bytes())
    stats = build_openclipart_manifest(tmp_path / "out", png_root=tmp_path / "png", svg_root=tmp_path / "svg")
    assert stats["images_dropped"] == {"too_many_pixels": 1} and stats["images_kept"] == 0
