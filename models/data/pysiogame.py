"""Art4Apps cartoon drawings (Debian ``pysiogame``) as an image-caption corpus in a cartoon style.

The package installs 585 drawings of single words, 200x200 JPEGs, one folder per category
(``art4apps/actions/bake.jpg``, ``art4apps/animals/baby_rabbit.jpg``). The file name is the word
and the folder its category, so each drawing gets up to two captions:

- the word as a short phrase (``baby_rabbit`` -> ``baby rabbit``, ``ice_cream`` -> ``ice cream``);
- a keyword caption ``"<word>, <category>"`` (``baby rabbit, animal``) when the folder names a
  visible kind of thing; folder names are mapped to plain words (:data:`CATEGORY_WORDS`:
  ``clothes_n_accessories`` -> ``clothing``, ``construction`` -> ``building``). Folders that
  group words by what they are about rather than by what they show (``actions``: verbs,
  ``jobs``: occupations, ``sport``: activities such as ``stand`` or ``win``) give no keyword
  caption; :data:`NOT_VISIBLE` says why, and every caption left out is reported.

Dropped (``dropped.jsonl``, with a reason): file names that are not words (numbers, codes),
images that do not decode, drawings whose pixels repeat an earlier drawing (the package stores
``actions/bake.jpg`` and ``jobs/cook.jpg`` as one picture), and drawings of a word already kept
from another folder (one caption, two pictures: an ambiguous query). Images are copied
unchanged to ``<out>/images/pysiogame/<category>/``.

Licence: pysiogame's ``CREDITS.txt`` credits the drawings to Art4Apps under CC BY-SA
(:data:`ATTRIBUTION` quotes it); Debian's ``copyright`` file lists the package's ``images/*`` as
public domain, so the stricter of the two is recorded in ``stats.json``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from models.data.manifest import (
    DropReport,
    ManifestRecord,
    assign_split,
    corpus_stats,
    write_jsonl,
    write_manifest,
)
from models.preprocess import ImageError, decode_image

log = logging.getLogger(__name__)

SOURCE = "pysiogame"
ROOT = "/usr/share/games/pysiogame/res/images/art4apps"
CREDITS = "/usr/share/doc/pysiogame/CREDITS.txt.gz"
DEBIAN_PACKAGE = "pysiogame"
STYLE = "cartoon"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
LICENCE = "CC BY-SA"
CREDITS_QUOTE = ("Art4Apps is a database of images and audio files of words created by Smart4Kids "
                 "under a Creative Commons License (CC BY-SA)")
ATTRIBUTION = f'Images from Art4Apps, http://www.art4apps.org/ (pysiogame CREDITS.txt: "{CREDITS_QUOTE}")'
LICENCE_NOTE = ("Debian's copyright file for pysiogame lists images/* as public domain; its CREDITS.txt "
                "credits the art4apps drawings to Art4Apps under CC BY-SA, the licence recorded here.")
# Category folder -> the plain word for the kind of thing its drawings show.
CATEGORY_WORDS = {
    "animals": "animal",
    "body": "body part",
    "clothes_n_accessories": "clothing",
    "construction": "building",
    "food": "food",
    "fruit_n_veg": "fruit or vegetable",
    "nature": "landscape",
    "people": "people",
    "transport": "vehicle",
}
# Category folders whose name says nothing about what is drawn, and why.
NOT_VISIBLE = {
    "actions": "verbs (bake, cry, sleep): an action, not a kind of thing",
    "jobs": "occupations (doctor, judge) and a few objects (badge, office): a role, not a kind of thing",
    "sport": "activities (run, stand, win) and gear (helmet, rope): an activity, not a kind of thing",
}
_WORD_PART = re.compile(r"[^\W\d_]+")


def word_phrase(stem: str) -> str | None:
    """A file name as a short lowercase phrase, or None when it is not a word.

    ``baby_rabbit`` -> ``baby rabbit``; ``Ice-Cream`` -> ``ice cream``; ``fc000``, ``123``,
    ``img_01`` and single letters -> None. Every part between underscores, hyphens and spaces
    must be letters only.

    Parameters
    ----------
    stem : str
        File name without its extension.

    Returns
    -------
    str or None
        The phrase, or None.
    """
    text = unicodedata.normalize("NFC", stem).casefold()
    parts = [p for p in re.split(r"[\s_\-]+", text) if p]
    if not parts or not all(_WORD_PART.fullmatch(p) for p in parts):
        return None
    if max(len(p) for p in parts) < 2:
        return None
    return " ".join(parts)


def category_word(folder: str) -> str | None:
    """The plain word for a category folder (``fruit_n_veg`` -> ``fruit or vegetable``), or None.

    None for the folders of :data:`NOT_VISIBLE` and for folders this module does not know.
    """
    return CATEGORY_WORDS.get(folder)


def _key(text: str) -> str:
    """Comparison key: casefolded letters and digits only (``ice-cream`` = ``ice cream``)."""
    return re.sub(r"[\W_]+", "", text.casefold())


@dataclass
class _Drawing:
    """One drawing while the build runs."""

    id: str
    file: Path
    rel: str
    category: str
    word: str
    size: tuple[int, int]
    sha256: str
    captions: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)


def build_pysiogame_manifest(
    out_dir: str | os.PathLike,
    *,
    root: str | os.PathLike = ROOT,
    seed: int = 0,
    limit: int | None = None,
    val_fraction: float = 0.05,
    test_fraction: float = 0.10,
) -> dict:
    """Build the pysiogame (Art4Apps) manifest, a report of what was dropped, and statistics.

    Parameters
    ----------
    out_dir : path-like
        Gets ``manifest.jsonl``, ``dropped.jsonl``, ``stats.json`` and ``images/pysiogame/``.
    root : path-like
        The ``art4apps`` folder of the Debian package, one sub-folder per category.
    seed : int
        Seeds the train/val/test split hash of the record ids.
    limit : int, optional
        Only the first ``limit`` image files in path order (for tests).
    val_fraction, test_fraction : float
        Split shares; the rest is train.

    Returns
    -------
    dict
        The statistics written to ``stats.json``.

    Raises
    ------
    FileNotFoundError
        When ``root`` is not a folder (the Debian package is not installed).
    """
    started = time.perf_counter()
    root, out = Path(root), Path(out_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: no art4apps drawings; install the Debian package {DEBIAN_PACKAGE!r} (apt-get install {DEBIAN_PACKAGE})")
    out.mkdir(parents=True, exist_ok=True)
    report = DropReport()
    files = sorted((p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                   key=lambda p: p.relative_to(root).as_posix())[:limit]
    drawings = _open_drawings(files, root, report)
    for drawing in drawings:
        _caption(drawing, report)
    records = [_record(d, out, seed, val_fraction, test_fraction) for d in sorted(drawings, key=lambda d: d.id)]
    _remove_stale(out, records)
    write_manifest(out / "manifest.jsonl", records)
    write_jsonl(out / "dropped.jsonl", report.rows)
    params = {"root": str(root), "seed": seed, "limit": limit, "val_fraction": val_fraction,
              "test_fraction": test_fraction, "category_words": CATEGORY_WORDS, "categories_not_visible": NOT_VISIBLE}
    # seconds vary between runs; manifest.jsonl and dropped.jsonl are byte-identical.
    stats = {
        "source": SOURCE,
        "files": len(files),
        **corpus_stats(records, report.counts("image"), report.counts("caption")),
        "categories": dict(sorted(Counter(r.meta["category"] for r in records).items())),
        "image_bytes": sum(Path(r.image).stat().st_size for r in records),
        "licence": LICENCE,
        "attribution": ATTRIBUTION,
        "licence_note": LICENCE_NOTE,
        "params": params,
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info("pysiogame: kept %d of %d drawings in %.1fs", len(records), len(files), stats["seconds"])
    return stats


def _open_drawings(files: list[Path], root: Path, report: DropReport) -> list[_Drawing]:
    """Drawings with a word for a name, a decodable image, and pixels and a word not seen before."""
    drawings: list[_Drawing] = []
    by_pixels: dict[str, _Drawing] = {}
    by_word: dict[str, _Drawing] = {}
    for path in files:
        rel = path.relative_to(root).as_posix()
        ident = f"{SOURCE}/{path.relative_to(root).with_suffix('').as_posix()}"
        if len(path.relative_to(root).parts) != 2:
            report.image(ident, "not_in_a_category_folder", file=rel)
            continue
        category = path.parent.name
        word = word_phrase(path.stem)
        if word is None:
            report.image(ident, "name_not_a_word", file=rel, name=path.stem)
            continue
        data = path.read_bytes()
        try:
            image, _ = decode_image(data, name=rel)
        except ImageError as exc:
            report.image(ident, "unreadable_image", file=rel, error=str(exc))
            continue
        pixels = hashlib.sha256(f"{image.size}".encode() + image.tobytes()).hexdigest()
        if pixels in by_pixels:  # actions/bake.jpg is jobs/cook.jpg: keep the first in path order
            first = by_pixels[pixels]
            first.aliases.append(rel)
            report.image(ident, "duplicate_image", file=rel, word=word, duplicate_of=first.id)
            continue
        if _key(word) in by_word:
            report.image(ident, "duplicate_word", file=rel, word=word, duplicate_of=by_word[_key(word)].id)
            continue
        drawing = _Drawing(id=ident, file=path, rel=rel, category=category, word=word, size=image.size,
                           sha256=hashlib.sha256(data).hexdigest())
        by_pixels[pixels] = by_word[_key(word)] = drawing
        drawings.append(drawing)
    return drawings


def _caption(drawing: _Drawing, report: DropReport) -> None:
    """The word, and ``"<word>, <category word>"`` when the folder names a visible kind of thing."""
    drawing.captions, drawing.sources = [drawing.word], ["word"]
    folder = drawing.category
    plain = category_word(folder)
    if plain is None:
        reason = "category_not_visible" if folder in NOT_VISIBLE else "unknown_category"
        report.caption(drawing.id, reason, "category", folder, why=NOT_VISIBLE.get(folder, "folder not in CATEGORY_WORDS"))
        return
    if _key(plain) == _key(drawing.word):
        report.caption(drawing.id, "duplicate_caption", "category", plain)
        return
    drawing.captions.append(f"{drawing.word}, {plain}")
    drawing.sources.append("category")


def _record(drawing: _Drawing, out: Path, seed: int, val_fraction: float, test_fraction: float) -> ManifestRecord:
    dest = out / "images" / SOURCE / drawing.category / f"{drawing.file.stem}{drawing.file.suffix.lower()}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    data = drawing.file.read_bytes()
    if not dest.exists() or dest.read_bytes() != data:
        dest.write_bytes(data)
    meta = {
        "source": SOURCE,
        "category": drawing.category,
        "category_word": category_word(drawing.category),
        "style": STYLE,
        "word": drawing.word,
        "file": drawing.rel,
        "caption_sources": drawing.sources,
        "sha256": drawing.sha256,
        "width": drawing.size[0],
        "height": drawing.size[1],
    }
    if drawing.aliases:
        meta["aliases"] = drawing.aliases
    split = assign_split(drawing.id, seed, val_fraction, test_fraction)
    return ManifestRecord(id=drawing.id, image=str(dest), captions=drawing.captions, split=split, meta=meta)


def _remove_stale(out: Path, records: list[ManifestRecord]) -> None:
    """Delete images an earlier build (with another ``limit`` or root) left under ``images/pysiogame/``."""
    keep = {Path(r.image).resolve() for r in records}
    for stale in sorted((out / "images" / SOURCE).rglob("*")):
        if stale.is_file() and stale.resolve() not in keep:
            stale.unlink()


