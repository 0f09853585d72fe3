"""Microsoft's Fluent Emoji 3D renders (npm ``@lobehub/fluent-emoji-3d``) as an image-caption corpus.

The package holds 3,391 renders, 256 px WebP files named by code point
(``assets/1f34e.webp``, ``assets/1f3c3-1f3fd-200d-2640-fe0f.webp``). Each file is joined with
the emoji metadata of ``emoji-datasource-google`` (:data:`models.data.emoji.GOOGLE_PACKAGE`) by
its hexcode, normalised as :func:`models.data.emoji.normalize_hexcode` does after repairing three
spellings of the file names: code points without leading zeros (``23-fe0f-20e3`` is ``0023``),
underscores between tags and subdivision flags without their CANCEL TAG (``1f3f4-e0067_e0062_
e0065_e006e_e0067`` is England's flag). Each render gets the captions the Google builder gives
that emoji (:func:`models.data.emoji._google_captions`): its name as a phrase, its CLDR label
from ``emojibase-data`` when that says something else, and a keyword list; a keyword list that
:data:`models.data.emoji.SHARED_KEYWORDS_MIN` or more renders share is left out.

Renders are converted to 128 px PNGs with their transparency (premultiplied Lanczos resampling);
a rebuild converts only files whose source changed (:func:`models.data.icons.make_pngs`).

Dropped, with a reason in ``dropped.jsonl``: skin-tone variants (as in the Google and OpenMoji
sources: one drawing per concept, no tone words in captions), a second file of one emoji (another
spelling of its code point), files whose code point is not in ``emoji.json``, components, byte-
identical renders, emoji without a caption, and files that do not decode.

Splits: a seeded hash of :func:`models.data.emoji.concept_key`, so gender and hair variants of
a concept share a split (the same split the Google builder gives an emoji it keeps). Concepts
that the emoji sources hold out for evaluation (:func:`models.data.emoji.heldout_concept`) are
kept as ``test`` records (``meta["heldout_concept"]`` marks them): no training run sees another
artist's drawing of a concept that OpenMoji's drawings test.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import PIL
from PIL import Image

from models.data.emoji import (
    DEFAULT_CACHE,
    EMOJIBASE_PACKAGE,
    GOOGLE_PACKAGE,
    SKIN_TONES,
    _add_captions,
    _datasource_entries,
    _drop_shared_keywords,
    _emojibase,
    _finish,
    _google_captions,
    concept_key,
    fetch_npm_package,
    heldout_concept,
    normalize_hexcode,
    split_group,
)
from models.data.icons import PngJob, Rendered, make_pngs
from models.data.manifest import DropReport, ManifestRecord, assign_split

log = logging.getLogger(__name__)

SOURCE = "fluent3d"
PACKAGE = ("@lobehub/fluent-emoji-3d", "1.1.0")
STYLE = "3d"
SIZE = 128
ATTRIBUTION = ("Fluent Emoji 3D renders by Microsoft (Fluent Emoji, https://github.com/microsoft/fluentui-emoji), "
               "packaged as @lobehub/fluent-emoji-3d by LobeHub (https://github.com/lobehub/fluent-emoji)")
CANCEL_TAG = "E007F"


def file_hexcode(stem: str) -> str:
    """A render's file name (without ``.webp``) as a normalised hexcode.

    ``0023-fe0f-20e3`` and ``23-fe0f-20e3`` -> ``0023-20E3``; ``1f3f4-e0067_e0062_e0065_e006e_e0067``
    -> ``1F3F4-E0067-E0062-E0065-E006E-E0067-E007F`` (the CANCEL TAG that ends a tag sequence);
    ``1F3C3-1F3FD-200D-2640-FE0F`` -> ``1F3C3-1F3FD-200D-2640``.
    """
    parts = [p.upper().zfill(4) for p in re.split(r"[-_\s]+", stem.strip()) if p]
    if parts and parts[0] == "1F3F4" and len(parts) > 1 and all(p.startswith("E00") for p in parts[1:]) \
            and parts[-1] != CANCEL_TAG:
        parts.append(CANCEL_TAG)
    return normalize_hexcode("-".join(parts))


@dataclass
class _Render:
    """One render while the build runs."""

    id: str
    hexcode: str
    file: Path
    sha256: str
    entry: dict
    captions: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    caption_rows: list[dict] = field(default_factory=list)  # reported if the render is kept


def _emoji_index(entries: list[dict]) -> dict[str, tuple[int, dict, str]]:
    """Normalised hexcode -> (sort position, emoji.json entry, ``"emoji"`` or ``"skin_tone"``)."""
    index: dict[str, tuple[int, dict, str]] = {}
    for position, entry in enumerate(entries):
        for code in filter(None, (entry["unified"], entry.get("non_qualified"))):
            index.setdefault(normalize_hexcode(code), (position, entry, "emoji"))
        for variant in (entry.get("skin_variations") or {}).values():
            for code in filter(None, (variant.get("unified"), variant.get("non_qualified"))):
                index.setdefault(normalize_hexcode(code), (position, entry, "skin_tone"))
    return index


def _file_order(path: Path, index: dict[str, tuple[int, dict, str]]) -> tuple[str, bool, str]:
    """Sort key of a render file: by hexcode, the spelling ``emoji.json`` uses before any other."""
    hexcode = file_hexcode(path.stem)
    unified = index[hexcode][1]["unified"] if hexcode in index else None
    return hexcode, path.stem.upper() != unified, path.name


def build_fluent3d_manifest(
    out_dir: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike = DEFAULT_CACHE,
    seed: int = 0,
    limit: int | None = None,
) -> dict:
    """Build the Fluent Emoji 3D manifest (``manifest.jsonl``, ``dropped.jsonl``, ``stats.json``, ``images/fluent3d/``).

    Parameters
    ----------
    out_dir : path-like
        Output folder; 128 px PNGs go to ``out_dir/images/fluent3d/fluent3d-<hexcode>.png``.
    cache_dir : path-like
        Where the npm packages (the renders, ``emoji-datasource-google``, ``emojibase-data``) are
        downloaded and extracted (once).
    seed : int
        Seed of the train/val/test split (a hash of the emoji's concept) and of
        ``meta["heldout_concept"]``.
    limit : int, optional
        Convert only the first N renders, in ``emoji.json`` sort order (the Google builder's
        order), that pass the metadata filters; the rest are reported as ``over_limit``. Captions
        do not depend on it: shared keyword lists are counted over every render.

    Returns
    -------
    dict
        The statistics written to ``stats.json``, with ``licence`` and ``attribution``.
    """
    started = time.perf_counter()
    out, cache_dir = Path(out_dir), Path(cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    package = fetch_npm_package(*PACKAGE, cache_dir)
    google = fetch_npm_package(*GOOGLE_PACKAGE, cache_dir)
    cldr = _emojibase(cache_dir)
    index = _emoji_index(_datasource_entries(google))
    files = sorted((package / "assets").glob("*.webp"), key=lambda f: _file_order(f, index))
    report = DropReport()
    renders: list[_Render] = []
    by_code: dict[str, str] = {}
    by_sha: dict[str, str] = {}
    for path in files:
        hexcode = file_hexcode(path.stem)
        ident = f"{SOURCE}-{hexcode.lower()}"
        if hexcode in by_code:  # "23-fe0f-20e3" after "0023-fe0f-20e3"
            report.image(ident, "duplicate_hexcode", file=path.name, duplicate_of=by_code[hexcode])
            continue
        by_code[hexcode] = ident
        found = index.get(hexcode)
        if found is None:
            report.image(ident, "not_in_emoji_datasource", file=path.name)
            continue
        _, entry, kind = found
        if kind == "skin_tone" or SKIN_TONES & set(hexcode.split("-")):
            report.image(ident, "skin_tone_variant", file=path.name, name=entry["name"])
            continue
        if entry.get("category") == "Component":
            report.image(ident, "component", file=path.name, name=entry["name"])
            continue
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        if sha in by_sha:
            report.image(ident, "duplicate_image", file=path.name, name=entry["name"], duplicate_of=by_sha[sha])
            continue
        by_sha[sha] = ident
        render = _Render(id=ident, hexcode=hexcode, file=path, sha256=sha, entry=entry)
        candidates, _ = _google_captions(entry, cldr.get(hexcode))
        captions_report = DropReport()
        if candidates[0][1] is None:
            captions_report.caption(ident, "name_is_a_code", "name", entry["name"])
        _add_captions(render, candidates, captions_report)
        render.caption_rows = captions_report.rows
        if not render.captions:
            report.image(ident, "no_captions", file=path.name, name=entry["name"])
            continue
        renders.append(render)
    shared = DropReport()
    _drop_shared_keywords(renders, shared)
    by_id = {r.id: r for r in renders}
    for row in shared.rows:
        by_id[row["id"]].caption_rows.append(row)
    captioned = []
    for render in renders:
        if not render.captions:
            report.image(render.id, "no_captions", file=render.file.name, name=render.entry["name"])
        else:
            captioned.append(render)
    captioned.sort(key=lambda r: (index[r.hexcode][0], r.id))  # the Google builder's order
    if limit is not None:
        for render in captioned[limit:]:
            report.image(render.id, "over_limit", file=render.file.name)
        captioned = captioned[:limit]

    folder = out / "images" / SOURCE
    converter = f"Pillow {PIL.__version__}; RGBA premultiplied Lanczos to {SIZE} px; PNG"
    jobs = [PngJob(folder / f"{r.id}.png", hashlib.sha256(f"{r.sha256}; {converter}".encode()).hexdigest(),
                   _converter(r.file)) for r in captioned]
    results = make_pngs(jobs, folder)
    records = []
    for render, result in sorted(zip(captioned, results, strict=True), key=lambda pair: pair[0].id):
        if not isinstance(result, Rendered):
            report.image(render.id, "unreadable_webp", file=render.file.name, error=result)
            continue
        entry = render.entry
        concept = concept_key(render.hexcode)
        meta = {
            "source": SOURCE, "style": STYLE, "hexcode": render.hexcode, "caption_sources": render.sources,
            "concept": concept, "split_group": split_group(render.hexcode),
            "heldout_concept": heldout_concept(concept, seed), "name": entry["name"],
            "cldr_label": (cldr.get(render.hexcode) or {}).get("label"), "category": entry.get("category"),
            "subcategory": entry.get("subcategory"), "short_names": entry.get("short_names", []),
            "file": f"assets/{render.file.name}", "sha256": render.sha256,
            "width": result.width, "height": result.height,
        }
        records.append(ManifestRecord(id=render.id, image=str(folder / f"{render.id}.png"), captions=render.captions,
                                      split="test" if meta["heldout_concept"] else assign_split(concept, seed), meta=meta))
        report.rows.extend(render.caption_rows)
    licence = json.loads((package / "package.json").read_text(encoding="utf-8")).get("license")
    params = {"package": "@".join(PACKAGE), "captions_from": "@".join(GOOGLE_PACKAGE),
              "cldr": "@".join(EMOJIBASE_PACKAGE), "seed": seed, "limit": limit, "size": SIZE,
              "converter": converter, "heldout_concepts_kept": sum(r.meta["heldout_concept"] for r in records),
              "converted": sum(isinstance(r, Rendered) and not r.reused for r in results),
              "reused": sum(isinstance(r, Rendered) and r.reused for r in results)}
    extra = {"licence": licence, "attribution": ATTRIBUTION}
    stats = _finish(out, SOURCE, records, report, len(files), params, started, extra)
    log.info("fluent3d: kept %d of %d renders in %.1fs", len(records), len(files), stats["seconds"])
    return stats


def _converter(webp: Path) -> Callable[[Path], None]:
    """A :class:`~models.data.icons.PngJob` ``make``: the WebP render as a ``SIZE`` px RGBA PNG."""
    def make(png: Path) -> None:
        with Image.open(webp) as img:
            rgba = img.convert("RGBA")
        if rgba.width != rgba.height:  # centre on a transparent square rather than stretch
            square = Image.new("RGBA", (max(rgba.size),) * 2, (0, 0, 0, 0))
            square.paste(rgba, ((square.width - rgba.width) // 2, (square.height - rgba.height) // 2))
            rgba = square
        # Premultiplied, so transparent pixels' colours do not bleed into the edges.
        small = rgba.convert("RGBa").resize((SIZE, SIZE), Image.Resampling.LANCZOS).convert("RGBA")
        png.parent.mkdir(parents=True, exist_ok=True)
        tmp = png.with_name(png.name + ".tmp")
        small.save(tmp, format="PNG")
        os.replace(tmp, png)

    return make
