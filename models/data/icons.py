"""Line icons and silhouettes from npm packages as image-caption corpora (SVGs rendered to 128 px PNGs).

Two sources, fetched with ``npm pack`` into a cache folder (:func:`models.data.emoji.fetch_npm_package`):

- ``tabler``: ``@tabler/icons`` outline icons (``icons/outline/<name>.svg``, MIT): 24 px line
  drawings, stroked in ``currentColor``. ``icons.json`` gives each icon a category and tags. Two
  captions: the name as a phrase (``arrow-big-left`` -> ``arrow big left``) and a keyword list
  from the category and the tags (``arrows, large, bold, thick, direction, west, ...``).
- ``game-icons``: the ``game-icons`` set of Iconify (npm ``@iconify-json/game-icons``: ``icons.json``, ``info.json``;
  CC BY 3.0): 512 px silhouettes stored as SVG bodies, wrapped here in an ``<svg>`` element and
  drawn black on transparent. One caption: the name as a phrase (``bear-face`` -> ``bear face``).

Names become phrases with :func:`icon_phrase`: hyphens are spaces, and tokens that name a
variant of an icon rather than what it shows are left out and recorded (``bell-off`` -> ``bell``,
``moon-2`` -> ``moon``, ``abstract-017`` -> ``abstract``), while numbers that are what the icon
shows stay (``number-1``, ``dice-4``, ``clock-hour-9``, ``percentage-50``). An icon whose
phrase repeats the phrase of an icon kept before it (``bell-off`` after ``bell``) is dropped: one
caption for two pictures is an ambiguous query. Icons are taken in order of (variant tokens
dropped or not, name), so the plain icon keeps the phrase.

Dropped, with a reason in ``dropped.jsonl``: brand logos (tabler's ``Brand`` category), names
that are codes or model numbers (``ak47``, ``square-f1``, ``mp-40``), names with no word of two
letters (``a-b``, ``x``), hidden icons, repeated phrases, SVGs that ``rsvg-convert`` cannot render
or that render blank, and renders whose pixels repeat an earlier icon's. Captions left out of a
kept icon are reported too (``kind: "caption"``): the tokens removed from its name, a keyword list
that many icons share.

Rendering uses ``rsvg-convert`` (Debian ``librsvg2-bin``) in a pool of :data:`RENDER_WORKERS`
threads. A rebuild renders only what changed: ``images/<source>/.render-cache.json`` records which
source (SVG bytes, size, renderer) each PNG was made from (:func:`make_pngs`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from PIL import Image

from models.data.emoji import (
    DEFAULT_CACHE,
    MAX_KEYWORDS,
    _add_captions,
    _drop_shared_keywords,
    _finish,
    caption_key,
    fetch_npm_package,
    keyword_caption,
    render_svg,
)
from models.data.manifest import DropReport, ManifestRecord, assign_split

log = logging.getLogger(__name__)

SOURCES = ("tabler", "game-icons")
TABLER_PACKAGE = ("@tabler/icons", "3.51.0")
# Iconify publishes each set as a package of its own (the whole collection, @iconify/json, is 465 MB).
ICONIFY_PACKAGE = ("@iconify-json/game-icons", "1.2.4")
ICONIFY_SET = "game-icons"
ICON_SIZE = 128
RENDER_WORKERS = 2
RENDER_CACHE = ".render-cache.json"
STYLES = {"tabler": "line icon", "game-icons": "silhouette"}

# Name tokens that mark a variant of an icon, not something it shows, at the end of a name:
# "bell-off" is a crossed-out bell, "heart-filled" a filled heart ("car-off-road" keeps its "off").
FILLER_TOKENS = frozenset({"filled", "off"})
# Marks an alternative drawing wherever it stands: "battery-pack-alt", "route-alt-left".
ALTERNATIVE_TOKENS = frozenset({"alt"})
# Words after which a one-digit number is what the icon shows ("number 1", "dice 4", "clock hour 9");
# after any other word it numbers a variant ("moon-2", "cpu-2") and is left out. Numbers of two or
# more digits stay ("error 404", "view 360") unless zero-padded ("abstract-017").
COUNTED_WORDS = frozenset({
    "number", "hour", "dice", "percentage", "card", "tallymark", "mark", "rank", "battery", "multiple",
    "forward", "backward", "duration", "clock", "divide", "multiplier", "plus", "minus", "exposure", "h",
    "math", "sort", "temperature", "crop", "columns",
})
# A token of letters then digits is a code or model number (ak47, mp5k, m1911, d10, f1); h2o is a word.
_CODE_TOKEN = re.compile(r"^[a-z]+\d+[a-z]*$")
CODE_WORDS = frozenset({"h2o"})
# Model names spelled with a hyphen and a number (the number alone does not make them codes).
MODEL_NAMES = frozenset({"mac-10", "mp-40", "tec-9"})
BRAND_CATEGORY = "Brand"


# ----------------------------------------------------------------------------------------------
# Names


def numbered_series(names: list[str]) -> frozenset[str]:
    """Name prefixes followed by a zero-padded number somewhere in ``names`` (``abstract`` for ``abstract-017``).

    Every number after such a prefix numbers a variant (``abstract-121``, ``tarot-10-wheel-of-fortune``).
    """
    prefixes = set()
    for name in names:
        tokens = name.casefold().split("-")
        for index, token in enumerate(tokens[1:], start=1):
            if token.isdigit() and len(token) > 1 and token.startswith("0"):
                prefixes.add("-".join(tokens[:index]))
    return frozenset(prefixes)


def icon_phrase(name: str, series: frozenset[str] = frozenset()) -> tuple[str | None, list[str], str | None]:
    """An icon's file name as a caption phrase, the variant tokens left out, and why there is no phrase.

    Parameters
    ----------
    name : str
        The icon's name (``arrow-big-left``, ``bell-off``, ``moon-2``).
    series : frozenset of str
        Prefixes of numbered series (:func:`numbered_series`): a number after one is left out.

    Returns
    -------
    phrase : str or None
        Lowercase words joined by spaces (``arrow big left``, ``bell``, ``moon``); None when the
        name is a code (``ak47``, ``mp-40``) or has no word of two or more letters (``a-b``, ``h-1``).
    dropped : list of str
        Tokens left out: trailing :data:`FILLER_TOKENS`, :data:`ALTERNATIVE_TOKENS` and variant
        numbers (``["off"]``, ``["2"]``, ``["017"]``).
    reason : str or None
        ``"name_is_a_code"`` or ``"name_is_not_a_word"`` when ``phrase`` is None.

    Examples
    --------
    ``number-1`` -> ``number 1``; ``clock-hour-9`` -> ``clock hour 9``; ``message-2-cog`` ->
    ``message cog``; ``car-off-road`` -> ``car off road``; ``error-404`` -> ``error 404``;
    ``tarot-10-wheel-of-fortune`` (with the series ``tarot``) -> ``tarot wheel of fortune``.
    """
    tokens = [t for t in re.split(r"[-_\s]+", name.casefold()) if t]
    if name.casefold() in MODEL_NAMES or any(_CODE_TOKEN.match(t) and t not in CODE_WORDS for t in tokens):
        return None, [], "name_is_a_code"
    tail = len(tokens)  # tokens from here on are trailing fillers ("bell-off", "alarm-snooze-filled")
    while tail > 1 and tokens[tail - 1] in FILLER_TOKENS:
        tail -= 1
    kept: list[str] = []
    dropped: list[str] = []
    previous_dropped = False
    for index, token in enumerate(tokens):
        previous = tokens[index - 1] if index else ""
        variant_number = token.isdigit() and index > 0 and (
            (len(token) > 1 and token.startswith("0"))  # "abstract-017", "skateboarding-01"
            or "-".join(tokens[:index]) in series  # "abstract-121" after "abstract-017"
            or (previous.isdigit() and previous_dropped)
            or (len(token) == 1 and not previous.isdigit() and previous not in COUNTED_WORDS)
        )
        if variant_number or index >= tail or (index > 0 and token in ALTERNATIVE_TOKENS):
            dropped.append(token)
            previous_dropped = True
            continue
        previous_dropped = False
        kept.append(token)
    if not any(sum(c.isalpha() for c in t) >= 2 for t in kept):
        return None, dropped, "name_is_not_a_word"
    return " ".join(kept), dropped, None


# ----------------------------------------------------------------------------------------------
# Rendering with a cache


@dataclass(frozen=True)
class Rendered:
    """A PNG made by :func:`make_pngs`: its size, a hash of its RGBA pixels, and whether it was reused."""

    width: int
    height: int
    pixels: str
    blank: bool
    reused: bool


@dataclass(frozen=True)
class PngJob:
    """One PNG to make: where, from what (``key``: a hash of the source and the settings), and how."""

    png: Path
    key: str
    make: Callable[[Path], None]


def make_pngs(jobs: Sequence[PngJob], folder: Path, workers: int = RENDER_WORKERS) -> list[Rendered | str]:
    """Make the PNGs of ``jobs`` in a thread pool, reusing those already made from the same source.

    Parameters
    ----------
    jobs : sequence of PngJob
        PNGs under ``folder``; ``make(png)`` writes one (an exception is a failure).
    folder : Path
        Holds the PNGs and :data:`RENDER_CACHE`, which records each PNG's ``key``, file hash and
        pixel hash. A PNG whose file and key are unchanged is neither made nor decoded again.
    workers : int
        Threads (each ``rsvg-convert`` call is a process of its own).

    Returns
    -------
    list of Rendered or str
        In ``jobs`` order: the PNG's size and pixel hash, or why it could not be made or decoded.
    """
    folder.mkdir(parents=True, exist_ok=True)
    cache_file = folder / RENDER_CACHE
    try:
        entries = json.loads(cache_file.read_text(encoding="utf-8"))["entries"]
    except (OSError, ValueError, KeyError, TypeError):
        entries = {}

    def one(job: PngJob) -> tuple[Rendered | str, dict | None]:
        entry = entries.get(job.png.name)
        if entry and entry.get("key") == job.key and job.png.is_file() and _file_sha(job.png) == entry.get("png"):
            return Rendered(entry["width"], entry["height"], entry["pixels"], entry["blank"], True), entry
        try:
            job.make(job.png)
        except subprocess.CalledProcessError as exc:
            _remove(job.png)
            detail = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
            # no paths in the reason: dropped.jsonl must not depend on where the build ran
            return f"exit {exc.returncode}: {_PATH.sub('', detail[0]) if detail else 'no message'}", None
        except (OSError, ValueError) as exc:
            _remove(job.png)
            return f"{type(exc).__name__}: {_PATH.sub('', str(exc))}", None
        try:
            with Image.open(job.png) as img:
                rgba = img.convert("RGBA")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            return f"unreadable png: {type(exc).__name__}", None
        alpha_max = rgba.getchannel("A").getextrema()[1]
        entry = {"key": job.key, "png": _file_sha(job.png), "pixels": hashlib.sha256(rgba.tobytes()).hexdigest(),
                 "width": rgba.width, "height": rgba.height, "blank": alpha_max == 0}
        return Rendered(rgba.width, rgba.height, entry["pixels"], entry["blank"], False), entry

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(one, jobs))
    kept = {job.png.name: entry for job, (_, entry) in zip(jobs, results, strict=True) if entry is not None}
    tmp = cache_file.with_name(cache_file.name + ".tmp")
    tmp.write_text(json.dumps({"version": 1, "entries": dict(sorted(kept.items()))}, indent=0) + "\n",
                   encoding="utf-8")
    os.replace(tmp, cache_file)
    return [result for result, _ in results]


_PATH = re.compile(r"(?:[A-Za-z]:)?/\S*/")


def _remove(png: Path) -> None:
    """Remove a PNG that failed half-way (and :func:`render_svg`'s temporary file)."""
    png.unlink(missing_ok=True)
    png.with_name(png.name + ".tmp").unlink(missing_ok=True)


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@cache
def rsvg_version() -> str:
    """``rsvg-convert``'s version line (part of every render key: another version may draw differently)."""
    exe = shutil.which("rsvg-convert")
    if exe is None:
        raise RuntimeError("rsvg-convert is not installed (Debian: apt-get install librsvg2-bin)")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return proc.stdout.strip() or f"rsvg-convert (exit {proc.returncode})"


# ----------------------------------------------------------------------------------------------
# Sources


@dataclass
class _Icon:
    """One icon while the build runs."""

    id: str
    name: str
    svg: bytes
    dropped_tokens: list[str]
    captions: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    caption_rows: list[dict] = field(default_factory=list)  # reported if the icon is kept


def _tabler_icons(cache_dir: Path, report: DropReport) -> tuple[list[_Icon], int, dict, dict]:
    """Tabler's outline icons with a phrase for a name; entries, params and licence fields."""
    package = fetch_npm_package(*TABLER_PACKAGE, cache_dir)
    info = json.loads((package / "icons.json").read_text(encoding="utf-8"))
    svgs = sorted((package / "icons" / "outline").glob("*.svg"))
    series = numbered_series([svg.stem for svg in svgs])
    icons = []
    for svg in svgs:
        name = svg.stem
        ident = f"tabler-{name}"
        entry = info.get(name) or {}
        category = entry.get("category") or ""
        if category == BRAND_CATEGORY or name.startswith("brand-"):
            report.image(ident, "brand_logo", name=name)
            continue
        phrase, dropped, reason = icon_phrase(name, series)
        if phrase is None:
            assert reason is not None  # icon_phrase says why whenever it gives no phrase
            report.image(ident, reason, name=name)
            continue
        tags = [str(t).replace("-", " ") for t in entry.get("tags") or []]
        keywords = keyword_caption([category, *tags], [phrase])
        icon = _Icon(id=ident, name=name, svg=svg.read_bytes(), dropped_tokens=dropped)
        icon.captions, icon.sources = [phrase], ["name"]
        if keywords:
            captions_report = DropReport()
            _add_captions(icon, [("keywords", keywords)], captions_report)
            icon.caption_rows = captions_report.rows
        icon.meta = {"category": category or None, "tags": entry.get("tags") or [], "file": f"icons/outline/{svg.name}"}
        icons.append(icon)
    licence = json.loads((package / "package.json").read_text(encoding="utf-8")).get("license")
    copyright_line = next((line.strip() for line in (package / "LICENSE").read_text(encoding="utf-8").splitlines()
                           if line.startswith("Copyright")), "")
    extra = {"licence": licence, "attribution": f"Tabler Icons (https://tabler.io/icons), {copyright_line}".strip(", ")}
    params = {"package": "@".join(TABLER_PACKAGE), "style": "outline"}
    return icons, len(svgs), params, extra


def _game_icons(cache_dir: Path, report: DropReport) -> tuple[list[_Icon], int, dict, dict]:
    """The Iconify ``game-icons`` set's icons with a phrase for a name, wrapped as SVG documents."""
    package = fetch_npm_package(*ICONIFY_PACKAGE, cache_dir)
    data = json.loads((package / "icons.json").read_text(encoding="utf-8"))
    info = json.loads((package / "info.json").read_text(encoding="utf-8"))
    series = numbered_series(list(data["icons"]))
    icons = []
    for name in sorted(data["icons"]):
        entry = data["icons"][name]
        ident = f"{ICONIFY_SET}-{name}"
        if entry.get("hidden"):
            report.image(ident, "hidden_icon", name=name)  # kept by Iconify for old names only
            continue
        if entry.get("rotate") or entry.get("hFlip") or entry.get("vFlip"):
            report.image(ident, "transformed_icon", name=name)
            continue
        phrase, dropped, reason = icon_phrase(name, series)
        if phrase is None:
            assert reason is not None  # icon_phrase says why whenever it gives no phrase
            report.image(ident, reason, name=name)
            continue
        svg = iconify_svg(entry, data)
        icon = _Icon(id=ident, name=name, svg=svg.encode("utf-8"), dropped_tokens=dropped)
        icon.captions, icon.sources = [phrase], ["name"]
        icons.append(icon)
    author = info.get("author") or {}
    licence = info.get("license") or {}
    extra = {
        "licence": licence.get("title"),
        "licence_spdx": licence.get("spdx"),
        "licence_url": licence.get("url"),
        "attribution": f"{info.get('name', ICONIFY_SET)} by {author.get('name')} ({author.get('url')})",
        "authors": [author] if author else [],
    }
    params = {"package": "@".join(ICONIFY_PACKAGE), "set": ICONIFY_SET, "set_total": info.get("total"),
              "aliases_not_used": len(data.get("aliases") or {})}
    return icons, len(data["icons"]), params, extra


def iconify_svg(icon: dict, icon_set: dict) -> str:
    """An Iconify icon as a standalone SVG document, ``currentColor`` drawn black on transparent.

    Parameters
    ----------
    icon : dict
        The icon's entry (``body``; optional ``left``, ``top``, ``width``, ``height``).
    icon_set : dict
        The set, whose ``left``, ``top``, ``width`` and ``height`` (default 16) apply when the icon has none.
    """
    def dim(key: str, default: int) -> float:
        return icon.get(key, icon_set.get(key, default))

    left, top, width, height = dim("left", 0), dim("top", 0), dim("width", 16), dim("height", 16)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="{width}" height="{height}" viewBox="{left} {top} {width} {height}" color="#000000">'
            f'{icon["body"]}</svg>')


# ----------------------------------------------------------------------------------------------


def build_icon_manifest(
    out_dir: str | os.PathLike,
    source: str,
    *,
    cache_dir: str | os.PathLike = DEFAULT_CACHE,
    seed: int = 0,
    limit: int | None = None,
) -> dict:
    """Build an icon manifest (``manifest.jsonl``, ``dropped.jsonl``, ``stats.json``, ``images/<source>/``).

    Parameters
    ----------
    out_dir : path-like
        Output folder; 128 px PNGs go to ``out_dir/images/<source>/<id>.png``.
    source : {"tabler", "game-icons"}
        ``tabler``: outline line icons, captioned by name and by category and tags.
        ``game-icons``: silhouettes, captioned by name.
    cache_dir : path-like
        Where the npm packages are downloaded and extracted (once).
    seed : int
        Seed of the train/val/test split, a hash of the record id.
    limit : int, optional
        Render only the first N icons (in the order of :func:`icon_phrase`'s preference: plain
        names, then variants, each by name) that pass the name filters; the rest are reported
        as ``over_limit``.

    Returns
    -------
    dict
        The statistics written to ``stats.json``, with ``licence`` and ``attribution``.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    started = time.perf_counter()
    out, cache_dir = Path(out_dir), Path(cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = DropReport()
    gather = _tabler_icons if source == "tabler" else _game_icons
    icons, n_entries, params, extra = gather(cache_dir, report)

    # One phrase, one picture: plain names first, so "bell" keeps the phrase and "bell-off" goes.
    by_caption: dict[str, str] = {}
    candidates: list[_Icon] = []
    for icon in sorted(icons, key=lambda i: (bool(i.dropped_tokens), i.name)):
        key = caption_key(icon.captions[0])
        if key in by_caption:
            report.image(icon.id, "duplicate_caption", name=icon.name, caption=icon.captions[0],
                         duplicate_of=by_caption[key])
            continue
        by_caption[key] = icon.id
        candidates.append(icon)
    if limit is not None:
        for icon in candidates[limit:]:
            report.image(icon.id, "over_limit", name=icon.name)
        candidates = candidates[:limit]

    folder = out / "images" / source
    renderer = f"{rsvg_version()}; {ICON_SIZE} px"
    with tempfile.TemporaryDirectory(prefix=f"lexvla-{source}-") as tmp_name:
        jobs = [PngJob(folder / f"{icon.id}.png", hashlib.sha256(icon.svg + renderer.encode()).hexdigest(),
                       _svg_maker(icon.svg, Path(tmp_name) / f"{icon.id}.svg")) for icon in candidates]
        results = make_pngs(jobs, folder)

    kept: list[_Icon] = []
    by_pixels: dict[str, str] = {}
    for icon, result in zip(candidates, results, strict=True):  # preference order: plain names first
        if isinstance(result, str):
            report.image(icon.id, "render_failed", name=icon.name, error=result)
            continue
        if result.blank:
            report.image(icon.id, "blank_render", name=icon.name)
            continue
        if result.pixels in by_pixels:
            report.image(icon.id, "duplicate_image", name=icon.name, duplicate_of=by_pixels[result.pixels])
            continue
        by_pixels[result.pixels] = icon.id
        icon.meta.update(width=result.width, height=result.height, svg_sha256=hashlib.sha256(icon.svg).hexdigest())
        kept.append(icon)
    kept.sort(key=lambda i: i.id)
    shared = DropReport()
    _drop_shared_keywords(kept, shared)
    by_id = {i.id: i for i in kept}
    for row in shared.rows:
        by_id[row["id"]].caption_rows.append(row)

    records = []
    for icon in kept:
        if icon.dropped_tokens:
            report.caption(icon.id, "variant_tokens_dropped", "name", icon.name.replace("-", " "))
        report.rows.extend(icon.caption_rows)
        meta = {"source": source, "style": STYLES[source], "name": icon.name, "caption_sources": icon.sources,
                "name_tokens_dropped": icon.dropped_tokens, **icon.meta}
        records.append(ManifestRecord(id=icon.id, image=str(folder / f"{icon.id}.png"), captions=icon.captions,
                                      split=assign_split(icon.id, seed), meta=meta))
    params.update(seed=seed, limit=limit, size=ICON_SIZE, renderer=rsvg_version(), workers=RENDER_WORKERS,
                  max_keywords=MAX_KEYWORDS, rendered=sum(isinstance(r, Rendered) and not r.reused for r in results),
                  reused=sum(isinstance(r, Rendered) and r.reused for r in results))
    stats = _finish(out, source, records, report, n_entries, params, started, extra)
    log.info("%s: kept %d of %d icons in %.1fs", source, len(records), n_entries, stats["seconds"])
    return stats


def _svg_maker(svg: bytes, tmp_svg: Path) -> Callable[[Path], None]:
    """A :class:`PngJob` ``make``: write the SVG to ``tmp_svg`` and render it to a PNG."""
    def make(png: Path) -> None:
        tmp_svg.write_bytes(svg)
        render_svg(tmp_svg, png, ICON_SIZE)

    return make
