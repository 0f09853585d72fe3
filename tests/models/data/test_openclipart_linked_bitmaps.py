"""Openclipart drawings whose SVG links a bitmap the package lacks: their PNG is a placeholder."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from models.data.openclipart import PNG_ROOT, SVG_ROOT, build_openclipart_manifest, links_missing_bitmap
from models.data.wordnet import WORDNET_DIR

HAS_PACKAGE = Path(PNG_ROOT).is_dir() and Path(SVG_ROOT).is_dir()
needs_package = pytest.mark.skipif(not HAS_PACKAGE, reason="Debian openclipart-png/-svg not installed")
needs_build = pytest.mark.skipif(
    not (HAS_PACKAGE and (WORDNET_DIR / "data.noun").is_file()),
    reason="Debian openclipart-png/-svg or wordnet-base not installed",
)
HEAD = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10">'
PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAcCBlCwAAAABJRU5ErkJggg=="


def _svg(tmp_path: Path, body: str, name: str = "drawing.svg") -> Path:
    path = tmp_path / name
    path.write_text(HEAD + body + "</svg>", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (f'<image width="1" height="1" xlink:href="{PIXEL}"/>', None),  # embedded: kept
        ('<image xlink:href="sibling.png" width="1" height="1"/>', None),  # shipped next to the SVG: kept
        ('<image xlink:href="missing.png" width="1" height="1"/>', "missing.png"),
        ('<path d="M 0 0 L 5 5"/><text>image</text>', None),  # no <image> element
        ('<g><image href="photo.jpg"/></g>', "photo.jpg"),  # SVG 2 href
        ('<svg:image xmlns:svg="http://www.w3.org/2000/svg"\n  width="1"\n  ns1:href=\'gone.gif\' />', "gone.gif"),
        ('<image xlink:href="C:\\Documents and Settings\\me\\dell_opti.jpg"/>', "C:\\Documents and Settings\\me\\dell_opti.jpg"),
        ('<image xlink:href="/home/andy/Desktop/ant.png"/>', "/home/andy/Desktop/ant.png"),
        ('<image xlink:href="http://example.org/a.png"/>', "http://example.org/a.png"),
        ('<image xlink:href="Cloud&#32;002.jpg"/>', "Cloud 002.jpg"),  # entities decoded
        ('<image xlink:href="sub/../sibling.png" title="a > b"/>', None),  # ">" inside a value
        ('<image xlink:href="FILE_URI"/>', None),  # file: URI naming the sibling
        ('<image xlink:href="/nowhere/sibling.png" sodipodi:absref="ABSREF"/>', None),  # Inkscape's fallback
        ('<image sodipodi:absref="/gone/a.jpg" xlink:href="a.jpg"/>', "a.jpg"),  # the href is what is reported
        ('<!-- <image xlink:href="missing.png"/> --><rect width="1" height="1"/>', None),  # commented out
        ('<image xlink:href="missing.png"/><image xlink:href="sibling.png"/>', "missing.png"),  # any one is enough
        ('<image width="1"/>', None),  # links nothing
    ],
)
def test_links_missing_bitmap(tmp_path: Path, body: str, expected: str | None) -> None:
    (tmp_path / "sibling.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "sub").mkdir()
    body = body.replace("FILE_URI", (tmp_path / "sibling.png").as_uri()).replace("ABSREF", str(tmp_path / "sibling.png"))
    assert links_missing_bitmap(_svg(tmp_path, body)) == expected


def test_links_to_files_outside_the_package_count_as_missing(tmp_path: Path) -> None:
    """``/usr/share/icons/...`` may exist on this machine; it is not in the package, the PNG is a placeholder."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "wine.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "svg" / "icons").mkdir(parents=True)
    (tmp_path / "svg" / "icons" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    outside = _svg(tmp_path / "svg" / "icons", f'<image xlink:href="{tmp_path / "elsewhere" / "wine.png"}"/>', "a.svg")
    inside = _svg(tmp_path / "svg" / "icons", '<image xlink:href="logo.png"/>', "b.svg")
    assert links_missing_bitmap(outside) is None
    assert links_missing_bitmap(outside, root=tmp_path / "svg") == str(tmp_path / "elsewhere" / "wine.png")
    assert links_missing_bitmap(inside, root=tmp_path / "svg") is None


def test_unreadable_or_malformed_svgs_do_not_raise(tmp_path: Path) -> None:
    assert links_missing_bitmap(tmp_path / "absent.svg") is None
    (tmp_path / "folder.svg").mkdir()
    assert links_missing_bitmap(tmp_path / "folder.svg") is None
    (tmp_path / "binary.svg").write_bytes(b"\xff\xfe\x00<image \x00 xlink:href='\x00\xff.png' wid")  # cut mid-tag
    assert links_missing_bitmap(tmp_path / "binary.svg") == "\x00\ufffd.png"
    (tmp_path / "cut.svg").write_bytes(b"<svg><image xlink:href='missing.pn")  # cut mid-value: nothing to check
    assert links_missing_bitmap(tmp_path / "cut.svg") is None
    (tmp_path / "huge.svg").write_bytes(b"<svg><image " + b"x" * 5_000_000)  # unclosed, no link
    assert links_missing_bitmap(tmp_path / "huge.svg") is None


@needs_package
def test_real_package_svgs_linking_missing_bitmaps() -> None:
    """The package ships 100 such drawings (``/home/andy/ant.png``, ``C:\\...\\dell_opti.jpg``, ``529064AC.png``)."""
    started = time.perf_counter()
    svgs = sorted(Path(SVG_ROOT).rglob("*.svg"))
    flagged = {svg: href for svg in svgs if (href := links_missing_bitmap(svg, root=SVG_ROOT)) is not None}
    seconds = time.perf_counter() - started
    print(f"{len(flagged)} of {len(svgs)} SVGs link a missing bitmap; scan took {seconds:.2f} s")
    assert 50 <= len(flagged) <= 200
    for svg, href in flagged.items():
        assert not href.startswith("data:")
        assert (Path(PNG_ROOT) / svg.relative_to(SVG_ROOT)).with_suffix(".png").exists(), svg
    known = {"people/stylized_yoga_person_ger_01": "529064AC.png", "animals/bugs/ant": "/home/andy/Desktop/ant.png",
             "signs_and_symbols/clouds_jon_phillips_04": "Cloud 002.jpg"}
    for id_, href in known.items():
        if (Path(SVG_ROOT) / f"{id_}.svg").exists():
            assert flagged[Path(SVG_ROOT) / f"{id_}.svg"] == href
    embedded = Path(SVG_ROOT) / "shapes" / "fancy_red_button_matt_to_01.svg"  # <image> with a data: URI
    if embedded.exists():
        assert embedded not in flagged and b"data:" in embedded.read_bytes()


@needs_build
def test_build_drops_placeholder_pngs_and_says_why(tmp_path: Path) -> None:
    """A yoga figure over a "Linked Image Not Found" box goes, with the link in ``dropped.jsonl``; a brain stays."""
    ids = ["people/stylized_yoga_person_ger_01", "people/bodypart/brain_jon_phillips_01"]
    for id_ in ids:
        for kind in ("png", "svg"):
            source = Path(PNG_ROOT if kind == "png" else SVG_ROOT) / f"{id_}.{kind}"
            if not source.exists():
                pytest.skip(f"this openclipart release has no {source}")
            (tmp_path / kind / id_).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / kind / f"{id_}.{kind}").write_bytes(source.read_bytes())
    # An SVG that cannot be read is reported, not a crash.
    (tmp_path / "png" / "broken").mkdir()
    (tmp_path / "png" / "broken" / "unreadable.png").write_bytes((tmp_path / "png" / f"{ids[1]}.png").read_bytes())
    (tmp_path / "svg" / "broken" / "unreadable.svg").mkdir(parents=True)
    stats = build_openclipart_manifest(tmp_path / "out", png_root=tmp_path / "png", svg_root=tmp_path / "svg")
    assert stats["images_dropped"] == {"linked_bitmap_missing": 1, "unreadable_svg": 1}
    assert stats["images_kept"] == 1
    rows = [json.loads(line) for line in (tmp_path / "out" / "dropped.jsonl").read_text().splitlines()]
    [row] = [r for r in rows if r["reason"] == "linked_bitmap_missing"]
    assert row["path"] == str(tmp_path / "png" / f"{ids[0]}.png") and row["kind"] == "image"
    assert row["href"] == "529064AC.png" and row["svg"] == str(tmp_path / "svg" / f"{ids[0]}.svg")
    assert row["detail"] == ("links a bitmap the package lacks (529064AC.png): "
                             "its PNG is a 'Linked Image Not Found' placeholder")
