"""Fashion-MNIST product photos (Debian ``dataset-fashion-mnist``) as an evaluation-only photo style.

The package installs Zalando's 70,000 28x28 grayscale article photos as gzipped IDX files
(``train-*`` 60,000, ``t10k-*`` 10,000) and names the ten classes only in its README's label
table (:data:`CLASSES`; :func:`readme_classes` reads the table so a build can check it).

:func:`build_fashion_manifest` draws a balanced sample from the test file: ``per_class`` images
of each class, chosen by a seeded hash of the image index (not by file order), skipping images
whose pixels repeat one already drawn. Fashion-MNIST stores each photo with its intensities
negated (a light article on black); it is written back as the photo was, a dark article on a
white background, as a 28x28 grayscale PNG under
``<out>/images/fashion-mnist/`` (the model's preprocessing resizes it) and gets two captions: a
plain phrase a person would type (``an ankle boot``) and keywords with synonyms (``sneaker,
shoe, trainer``). Every record is ``test``: the style is for evaluation only. Images not drawn
are listed in ``dropped.jsonl`` as ``not_sampled``.

:func:`build_named_photos_manifest` adds real photographs that packages ship with names or notes
saying what they show (:data:`NAMED_PHOTOS`, each with a caption, keywords, licence and author):
scikit-learn's and matplotlib's sample photos (in the project's lock), scikit-image's data folder
(PyPI ``scikit-image``, or Debian ``python3-skimage``) and the photographs among the Debian
wallpaper packages ``mate-backgrounds``, ``plasma-workspace-wallpapers`` and
``lomiri-wallpapers-16.04``/``-20.04``. Whatever of these is installed is decoded, shrunk and
copied under ``<out>/images/named-photos/``; what is not is listed in ``dropped.jsonl``.
:func:`build_photos_manifest` writes both parts as one manifest.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import logging
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from models.data.manifest import DropReport, ManifestRecord, corpus_stats, write_jsonl, write_manifest

log = logging.getLogger(__name__)

SOURCE = "fashion-mnist"
ROOT = "/usr/share/datasets/fashion-mnist"
README = "/usr/share/doc/dataset-fashion-mnist/README.md.gz"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
STYLE = "photo"
IMAGES_FILE = "t10k-images-idx3-ubyte.gz"
LABELS_FILE = "t10k-labels-idx1-ubyte.gz"
LICENCE = "MIT"
ATTRIBUTION = ("Fashion-MNIST by Zalando Research (Han Xiao, Kashif Rasul, Roland Vollgraf), "
               "Copyright (c) 2017 Zalando SE, https://github.com/zalandoresearch/fashion-mnist")
# Label -> class name, as the README's label table spells it.
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# Class -> (the phrase a person would type, keywords with synonyms). No synonym names another class.
CAPTIONS = {
    "T-shirt/top": ("a t-shirt", "t-shirt, tee, top"),
    "Trouser": ("trousers", "trousers, pants, jeans"),
    "Pullover": ("a pullover", "pullover, sweater, jumper"),
    "Dress": ("a dress", "dress, gown, frock"),
    "Coat": ("a coat", "coat, jacket, overcoat"),
    "Sandal": ("a sandal", "sandal, flip-flop, summer footwear"),
    "Shirt": ("a shirt", "shirt, blouse, button-down"),
    "Sneaker": ("a sneaker", "sneaker, shoe, trainer"),
    "Bag": ("a bag", "bag, handbag, purse"),
    "Ankle boot": ("an ankle boot", "ankle boot, boot, bootie"),
}
# IDX type codes (the third byte of the magic number) -> numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IdxError(ValueError):
    """A file that is not a well-formed IDX array; the message names the file."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped when its name ends in ``.gz``) into an array.

    Parameters
    ----------
    path : path-like
        ``*-images-idx3-ubyte[.gz]`` (shape ``(n, rows, cols)``) or ``*-labels-idx1-ubyte[.gz]``
        (shape ``(n,)``).

    Returns
    -------
    numpy.ndarray
        The array, in its stored dtype (``uint8`` for Fashion-MNIST).

    Raises
    ------
    IdxError
        When the magic number, the dimensions or the data length are wrong.
    """
    path = Path(path)
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise IdxError(f"{path}: cannot read ({exc})") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_DTYPES:
        raise IdxError(f"{path}: not an IDX file (magic {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise IdxError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise IdxError(f"{path}: {len(data) - header} data bytes for shape {shape}, expected {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def readme_classes(path: str | os.PathLike = README) -> tuple[str, ...]:
    """Class names from the ``| Label | Description |`` table of the Fashion-MNIST README.

    Parameters
    ----------
    path : path-like
        ``README.md`` or ``README.md.gz``.

    Returns
    -------
    tuple of str
        Names in label order; empty when the file has no such table.
    """
    path = Path(path)
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")
    rows = dict((int(m.group(1)), m.group(2).strip()) for m in re.finditer(r"^\|\s*(\d+)\s*\|\s*([^|\n]+?)\s*\|\s*$", text, re.M))
    return tuple(rows[i] for i in range(len(rows))) if set(rows) == set(range(len(rows))) else ()


def sample_key(index: int, seed: int) -> bytes:
    """The seeded hash that orders the test images of a class for sampling."""
    return hashlib.sha1(f"{seed}:{SOURCE}:t10k:{index}".encode()).digest()


def png_bytes(pixels: np.ndarray) -> bytes:
    """A 2-D ``uint8`` array as grayscale PNG bytes (the same bytes for the same pixels)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def build_fashion_manifest(
    out_dir: str | os.PathLike,
    *,
    root: str | os.PathLike = ROOT,
    per_class: int = 100,
    seed: int = 0,
    readme: str | os.PathLike | None = README,
) -> dict:
    """Build the Fashion-MNIST test manifest, a report of what was not kept, and statistics.

    Parameters
    ----------
    out_dir : path-like
        Gets ``manifest.jsonl``, ``dropped.jsonl``, ``stats.json`` and ``images/fashion-mnist/``.
    root : path-like
        Folder of the Debian package's IDX files (``t10k-images-idx3-ubyte.gz``,
        ``t10k-labels-idx1-ubyte.gz``).
    per_class : int
        Images drawn from each class (all of a class when it has fewer).
    seed : int
        Seeds which images are drawn.
    readme : path-like, optional
        The package's README; when it exists its label table must name the classes as
        :data:`CLASSES` does. None skips the check.

    Returns
    -------
    dict
        The statistics written to ``stats.json``.

    Raises
    ------
    FileNotFoundError
        When the IDX files are missing (the Debian package is not installed).
    IdxError
        When an IDX file is malformed, or images and labels disagree.
    ValueError
        When ``per_class`` is below 1, or the README names other classes.
    """
    started = time.perf_counter()
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, not {per_class}")
    root, out = Path(root), Path(out_dir)
    images_file, labels_file = root / IMAGES_FILE, root / LABELS_FILE
    for needed in (images_file, labels_file):
        if not needed.is_file():
            raise FileNotFoundError(
                f"{needed}: missing; install the Debian package {DEBIAN_PACKAGE!r} (apt-get install {DEBIAN_PACKAGE})")
    if readme is not None and Path(readme).is_file() and readme_classes(readme) != CLASSES:
        raise ValueError(f"{readme}: label table {readme_classes(readme)} differs from {CLASSES}")
    images, labels = read_idx(images_file), read_idx(labels_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels) or images.dtype != np.uint8:
        raise IdxError(f"{images_file}, {labels_file}: shapes {images.shape} and {labels.shape} do not pair up")
    if labels.size and int(labels.max()) >= len(CLASSES):
        raise IdxError(f"{labels_file}: label {int(labels.max())} has no class name")
    out.mkdir(parents=True, exist_ok=True)
    report = DropReport()
    chosen = _sample(images, labels, per_class, seed, report)
    records = [_record(index, images[index], int(labels[index]), out) for index in sorted(chosen)]
    _remove_stale(out, records)
    write_manifest(out / "manifest.jsonl", records)
    write_jsonl(out / "dropped.jsonl", sorted(report.rows, key=lambda r: r["id"]))
    drawn = Counter(int(labels[i]) for i in chosen)
    short = [name for label, name in enumerate(CLASSES) if drawn[label] < per_class]
    if short:
        log.warning("fashion-mnist: fewer than %d images of %s", per_class, ", ".join(short))
    params = {"root": str(root), "images": IMAGES_FILE, "labels": LABELS_FILE, "per_class": per_class, "seed": seed,
              "captions": {name: list(pair) for name, pair in CAPTIONS.items()}}
    # seconds vary between runs; manifest.jsonl and dropped.jsonl are byte-identical.
    stats = {
        "source": SOURCE,
        "entries": int(len(labels)),
        **corpus_stats(records, report.counts("image"), {}),
        "classes": {name: sum(r.meta["class"] == name for r in records) for name in CLASSES},
        "image_bytes": sum(Path(r.image).stat().st_size for r in records),
        "licence": LICENCE,
        "attribution": ATTRIBUTION,
        "params": params,
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info("fashion-mnist: kept %d of %d test images in %.1fs", len(records), len(labels), stats["seconds"])
    return stats


def _ident(index: int) -> str:
    return f"{SOURCE}-{index:05d}"


def _sample(images: np.ndarray, labels: np.ndarray, per_class: int, seed: int, report: DropReport) -> list[int]:
    """``per_class`` indices of each class in seeded-hash order, skipping repeated pixels."""
    chosen: list[int] = []
    for label, name in enumerate(CLASSES):
        members = sorted(np.flatnonzero(labels == label).tolist(), key=lambda i: sample_key(i, seed))
        seen: dict[bytes, int] = {}
        taken = 0
        for index in members:
            if taken >= per_class:
                report.image(_ident(index), "not_sampled", **{"class": name})
                continue
            pixels = hashlib.sha256(images[index].tobytes()).digest()
            if pixels in seen:
                report.image(_ident(index), "duplicate_image", duplicate_of=_ident(seen[pixels]), **{"class": name})
                continue
            seen[pixels] = index
            chosen.append(index)
            taken += 1
    return chosen


def _record(index: int, pixels: np.ndarray, label: int, out: Path) -> ManifestRecord:
    ident = _ident(index)
    name = CLASSES[label]
    dest = out / "images" / SOURCE / f"{ident}.png"
    dest.parent.mkdir(parents=True, exist_ok=True)
    data = png_bytes(255 - pixels)  # undo the dataset's negated intensities: the article on white, as photographed
    if not dest.exists() or dest.read_bytes() != data:
        dest.write_bytes(data)
    phrase, keywords = CAPTIONS[name]
    meta = {
        "source": SOURCE,
        "class": name,
        "style": STYLE,
        "label": label,
        "index": index,
        "file": IMAGES_FILE,
        "caption_sources": ["phrase", "keywords"],
        "width": int(pixels.shape[1]),
        "height": int(pixels.shape[0]),
    }
    return ManifestRecord(id=ident, image=str(dest), captions=[phrase, keywords], split="test", meta=meta)


def _remove_stale(out: Path, records: list[ManifestRecord]) -> None:
    """Delete PNGs an earlier build (with another ``per_class`` or seed) left under ``images/fashion-mnist/``."""
    keep = {Path(r.image).name for r in records}
    for stale in sorted((out / "images" / SOURCE).glob("*.png")):
        if stale.name not in keep:
            stale.unlink()




# --------------------------------------------------------------------------------------------
# Named photographs: real photos that packages ship under names (or with notes) saying what they show.
# --------------------------------------------------------------------------------------------

NAMED_SOURCE = "named-photos"
# Longest side of the copies written under ``images/named-photos/`` (the sources run up to 6028 px).
NAMED_MAX_SIDE = 1024
NAMED_JPEG_QUALITY = 90


@dataclass(frozen=True)
class PhotoOrigin:
    """A package that installs named photos, and where its files lie.

    ``module``: the Python package whose folder holds ``subdir`` (found with ``importlib``'s
    ``find_spec``, never imported); ``roots``: absolute folders tried after it, in order (the
    Debian copies). Each photo is taken from the first of these folders that has its file.
    """

    name: str
    registry: str  # "pypi" or "debian"
    install: str  # the command that installs it
    module: str | None = None
    subdir: str = ""
    roots: tuple[str, ...] = ()


@dataclass(frozen=True)
class NamedPhoto:
    """One photo: its file under its origin's folder, two captions, its licence and author.

    ``file`` is a path under the origin's folder; for ``plasma-workspace-wallpapers`` it is a
    wallpaper's folder, whose ``contents/images/<W>x<H>.<ext>`` sizes are picked from at build
    time. ``named_by`` says what names the subject: ``"file name"``, ``"docstring"`` (the
    package's description of the file) or ``"metadata"`` (its ``metadata.json``); ``"viewed"``
    where the name says little and the caption was written from looking at the photo. Every
    caption was checked against the photo.
    """

    origin: str
    file: str
    caption: str
    keywords: str
    licence: str
    author: str
    named_by: str = "file name"


PHOTO_ORIGINS = {
    o.name: o
    for o in (
        PhotoOrigin("scikit-learn", "pypi", "pip install scikit-learn", "sklearn", "datasets/images"),
        PhotoOrigin("matplotlib", "pypi", "pip install matplotlib", "matplotlib", "mpl-data/sample_data",
                    ("/usr/share/matplotlib/mpl-data/sample_data",)),
        # Debian's python3-skimage (0.19) has the same files.
        PhotoOrigin("scikit-image", "pypi", "pip install scikit-image", "skimage", "data",
                    ("/usr/lib/python3/dist-packages/skimage/data",)),
        PhotoOrigin("mate-backgrounds", "debian", "apt-get install mate-backgrounds", roots=("/usr/share/backgrounds/mate",)),
        PhotoOrigin("plasma-workspace-wallpapers", "debian", "apt-get install plasma-workspace-wallpapers",
                    roots=("/usr/share/wallpapers",)),
        PhotoOrigin("lomiri-wallpapers-16.04", "debian", "apt-get install lomiri-wallpapers-16.04", roots=("/usr/share/backgrounds",)),
        PhotoOrigin("lomiri-wallpapers-20.04", "debian", "apt-get install lomiri-wallpapers-20.04", roots=("/usr/share/backgrounds",)),
    )
}

_SKL, _MPL, _SKI = "scikit-learn", "matplotlib", "scikit-image"
_MATE, _KDE, _L16, _L20 = "mate-backgrounds", "plasma-workspace-wallpapers", "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04"
_GPL, _LGPL = "GPL-2+", "LGPL-3"
# Real photos only: the packages' drawings, renders, abstract wallpapers, textures of text, silhouettes
# and synthetic test patterns are left out, and so are photos whose licence the package does not state
# (scikit-image's moon.png, and its motorcycle pair from the Middlebury stereo benchmark).
NAMED_PHOTOS: tuple[NamedPhoto, ...] = (
    # scikit-learn: sklearn/datasets/images/README.txt (Flickr, CC BY 2.0).
    NamedPhoto(_SKL, "china.jpg", "a Chinese pagoda on a hill by a lake",
               "pagoda, temple, tower, Chinese architecture, lake, trees", "CC-BY-2.0", "danielbuechele (Flickr)"),
    NamedPhoto(_SKL, "flower.jpg", "an orange dahlia flower", "flower, dahlia, orange, blossom, petals",
               "CC-BY-2.0", "vultilion (Flickr)", "viewed"),
    # matplotlib: an official U.S. Navy portrait (a work of the U.S. federal government).
    NamedPhoto(_MPL, "grace_hopper.jpg", "a portrait of Grace Hopper in navy uniform",
               "Grace Hopper, woman, portrait, navy officer, uniform, American flag", "public-domain", "U.S. Navy"),
    # scikit-image: the licence and author each skimage.data function's docstring gives.
    NamedPhoto(_SKI, "astronaut.png", "the astronaut Eileen Collins in an orange spacesuit",
               "astronaut, woman, spacesuit, NASA, space shuttle, American flag", "public-domain", "NASA", "docstring"),
    NamedPhoto(_SKI, "camera.png", "a man with a camera on a tripod",
               "cameraman, photographer, camera, tripod, black and white", "CC0-1.0", "Lav Varshney", "docstring"),
    NamedPhoto(_SKI, "chelsea.png", "a tabby cat", "cat, tabby, kitten, pet, face", "CC0-1.0", "Stefan van der Walt", "docstring"),
    NamedPhoto(_SKI, "clock_motion.png", "a motion-blurred wall clock", "clock, wall clock, motion blur, black and white",
               "public-domain", "Stefan van der Walt", "docstring"),
    NamedPhoto(_SKI, "coffee.png", "a cup of coffee on a saucer", "coffee, espresso, cup, saucer, spoon, wooden table",
               "CC0-1.0", "Rachel Michetti", "docstring"),
    NamedPhoto(_SKI, "coins.png", "ancient Greek coins", "coins, Greek coins, Pompeii, money, black and white",
               "no-known-copyright-restrictions", "Brooklyn Museum", "docstring"),
    NamedPhoto(_SKI, "brick.png", "a brick wall", "brick wall, bricks, wall, texture, black and white",
               "CC0-1.0", "CC0Textures", "docstring"),
    NamedPhoto(_SKI, "grass.png", "a close-up of grass", "grass, lawn, blades of grass, texture, black and white",
               "CC0-1.0", "linolafett (DeviantArt)", "docstring"),
    NamedPhoto(_SKI, "gravel.png", "gravel", "gravel, stones, pebbles, texture, black and white",
               "CC0-1.0", "CC0Textures", "docstring"),
    NamedPhoto(_SKI, "hubble_deep_field.jpg", "galaxies in the Hubble deep field",
               "galaxies, space, stars, universe, telescope, Hubble", "public-domain", "NASA", "docstring"),
    NamedPhoto(_SKI, "ihc.png", "a microscope image of stained colon tissue",
               "microscopy, tissue, cells, histology, stain", "no-known-copyright-restrictions",
               "Center for Microscopy And Molecular Imaging", "docstring"),
    NamedPhoto(_SKI, "retina.jpg", "a photograph of a human retina", "retina, eye, fundus, blood vessels, medical",
               "CC0-1.0", "Mikael Häggström", "docstring"),
    NamedPhoto(_SKI, "rocket.jpg", "a rocket on its launch pad at night",
               "rocket, launch pad, SpaceX, Falcon 9, night, spaceflight", "public-domain", "SpaceX", "docstring"),
    # mate-backgrounds: nature/ (debian/copyright: GPL-2+, authors per file).
    NamedPhoto(_MATE, "nature/Aqua.jpg", "a drop of water splashing into water",
               "water drop, splash, water, droplet, ripple", _GPL, "Charles Barbin", "viewed"),
    NamedPhoto(_MATE, "nature/Blinds.jpg", "a close-up of a green leaf", "leaf, green, leaf veins, plant, macro",
               _GPL, "Lennart Poettering, Andrea Cimitan", "viewed"),
    NamedPhoto(_MATE, "nature/Dune.jpg", "dune grass by the sea", "dune, grass, beach, sea, coast", _GPL, "Marco Cogoni, Hylke Bons"),
    NamedPhoto(_MATE, "nature/FreshFlower.jpg", "an orange flower in close-up", "flower, orange, petals, blossom, macro",
               _GPL, "Jens Ansorg"),
    NamedPhoto(_MATE, "nature/Garden.jpg", "a red and yellow marigold flower", "marigold, flower, garden, red, yellow",
               _GPL, "Charles Barbin", "viewed"),
    NamedPhoto(_MATE, "nature/GreenMeadow.jpg", "blades of green grass", "grass, meadow, lawn, green",
               _GPL, "Timothy Schellhase, Lapo Calamandrei"),
    NamedPhoto(_MATE, "nature/LadyBird.jpg", "a ladybird on a grass stem among blue flowers",
               "ladybird, ladybug, beetle, insect, forget-me-not, flowers", _GPL, "Charles Barbin"),
    NamedPhoto(_MATE, "nature/RainDrops.jpg", "raindrops on green leaves", "raindrops, water drops, leaves, grass, green",
               _GPL, "blackcombwhistler07"),
    NamedPhoto(_MATE, "nature/Storm.jpg", "storm clouds over a road", "storm, clouds, dark sky, road, highway",
               _GPL, "Sergey Nazarov"),
    NamedPhoto(_MATE, "nature/TwoWings.jpg", "two dandelion seeds", "dandelion, seeds, fluff, macro, orange flowers",
               _GPL, "Charles Barbin, Hylke Bons", "viewed"),
    NamedPhoto(_MATE, "nature/Wood.jpg", "a weathered wooden plank", "wood, plank, board, wood grain, texture",
               _GPL, "Jean-François Fortin Tam"),
    NamedPhoto(_MATE, "nature/YellowFlower.jpg", "a yellow flower in close-up", "flower, yellow, petals, daisy, blossom",
               _GPL, "Charles Barbin"),
    # plasma-workspace-wallpapers: each folder's metadata.json (name, author, licence LGPLv3).
    NamedPhoto(_KDE, "BytheWater", "wooden boards by a lake", "pier, boardwalk, planks, lake, water, sunlight",
               _LGPL, "Maciej Wiklo", "metadata"),
    NamedPhoto(_KDE, "ColdRipple", "a wooden jetty on a misty lake in black and white",
               "jetty, pier, lake, fog, black and white", _LGPL, "Risto Saukonpää", "viewed"),
    NamedPhoto(_KDE, "ColorfulCups", "rows of colourful cups seen from above", "cups, plastic cups, colourful, pattern",
               _LGPL, "Dmitri Popov", "metadata"),
    NamedPhoto(_KDE, "DarkestHour", "a misty lake at dusk", "lake, fog, mist, dusk, blue, islands",
               _LGPL, "Risto Saukonpää", "viewed"),
    NamedPhoto(_KDE, "EveningGlow", "rowing boats on a lake shore at sunset",
               "boats, rowing boats, lake, sunset, mountains, shore", _LGPL, "Ian Hex", "viewed"),
    NamedPhoto(_KDE, "FallenLeaf", "fallen autumn leaves on the ground", "autumn, fall, leaves, maple leaf, forest floor",
               _LGPL, "Martin Klapetek", "metadata"),
    NamedPhoto(_KDE, "Grey", "the curved facade of a modern building in black and white",
               "architecture, building, facade, curves, black and white", _LGPL, "Sigi Sagi", "viewed"),
    NamedPhoto(_KDE, "Kite", "a kite in a blue sky", "kite, sky, clouds, blue, flying", _LGPL, "Risto Saukonpää", "metadata"),
    NamedPhoto(_KDE, "OneStandsOut", "green moss with one orange sprig", "moss, plants, green, close-up, orange",
               _LGPL, "Risto Saukonpää", "viewed"),
    NamedPhoto(_KDE, "Path", "a path through a pine forest", "forest, path, trail, trees, pines, woods",
               _LGPL, "Risto Saukonpää", "metadata"),
    NamedPhoto(_KDE, "summer_1am", "a calm lake at dusk under a pink sky", "lake, dusk, twilight, pink sky, reeds, summer night",
               _LGPL, "Risto Saukonpää", "viewed"),
    # lomiri-wallpapers-16.04 / -20.04: debian/copyright gives each file's author and licence.
    NamedPhoto(_L16, "Bridge_by_Sander_Klootwijk.jpg", "the cables of a bridge against a blue sky",
               "bridge, cables, sky, estuary, sand flats", "CC-BY-SA-4.0", "Sander Klootwijk"),
    NamedPhoto(_L16, "Dragonfly_by_Bolly.jpg", "a dragonfly on a twig", "dragonfly, insect, twig, leaves, blue sky",
               "CC-BY-SA-4.0", "Bolly"),
    NamedPhoto(_L16, "Picture_0B_by_freespace.jpg", "half a fig in a red bowl", "fig, fruit, bowl, red, food",
               "CC-BY-4.0", "Trevor \"Freespace\"", "viewed"),
    NamedPhoto(_L16, "Picture_1A_by_freespace.jpg", "paint brushes with colourful bristles",
               "paintbrushes, brushes, paint, colours, art supplies", "CC-BY-4.0", "Trevor \"Freespace\"", "viewed"),
    NamedPhoto(_L16, "Wine_by_Jakkub_Mede.jpg", "a bottle of wine and a glass on a small table, a drum on a beanbag",
               "wine, bottle, wine glass, table, drum, djembe, beanbag, room", "CC-BY-4.0", "Jakkub Mede"),
    NamedPhoto(_L16, "aitzgorri_by_Aitzol_Berasategi.jpg", "a mountain above an autumn forest and a green meadow",
               "mountain, Aitzgorri, autumn, forest, meadow, landscape", "CC-BY-4.0", "Aitzol Berasategi"),
    NamedPhoto(_L16, "free_by_Peter_Nerlich.jpg", "a toy bird hanging from a ceiling lamp",
               "bird, wooden bird, figurine, lamp, ceiling", "CC-BY-SA-4.0", "Peter Nerlich", "viewed"),
    NamedPhoto(_L16, "friends_by_Aitzol_Berasategi.jpg", "two spaniel dogs looking out of a window",
               "dogs, spaniels, cocker spaniel, pets, window, wooden house", "CC-BY-4.0", "Aitzol Berasategi", "viewed"),
    NamedPhoto(_L16, "greentock_by_Peter_Nerlich.jpg", "a close-up of a wall clock", "clock, clock face, clock hands, wall clock",
               "CC-BY-SA-4.0", "Peter Nerlich", "viewed"),
    NamedPhoto(_L16, "life_by_Aitzol_Berasategi.jpg", "a stream flowing over rocks in a forest",
               "stream, creek, rocks, forest, water", "CC-BY-4.0", "Aitzol Berasategi", "viewed"),
    NamedPhoto(_L16, "picosdeeuropa_by_Aitzol_Berasategi.jpg", "a path across a meadow below rocky mountains",
               "mountains, Picos de Europa, path, meadow, snow, clouds", "CC-BY-4.0", "Aitzol Berasategi"),
    NamedPhoto(_L16, "seeding_by_Clements_Engelhardt.jpg", "dandelion seed heads in a meadow",
               "dandelion, seed heads, meadow, grass, sunlight", "CC0-1.0", "Clemens Engelhardt", "viewed"),
    NamedPhoto(_L16, "sunset_by_Aitzol_Berasategi.jpg", "the sun setting over mountains",
               "sunset, sun, mountains, sky, landscape", "CC-BY-4.0", "Aitzol Berasategi"),
    NamedPhoto(_L20, "Kleiber_by_Lukas_Baubkus.jpg", "a nuthatch on a tree trunk", "nuthatch, bird, tree trunk, bark",
               "CC-BY-SA-3.0", "Lukas Baubkus"),
)
_ORIGIN_TAGS = {_SKL: "sklearn", _MPL: "matplotlib", _SKI: "skimage", _MATE: "mate", _KDE: "plasma", _L16: "lomiri", _L20: "lomiri"}


def named_photo_id(photo: NamedPhoto) -> str:
    """``photo-<origin>-<name>``: ``photo-skimage-chelsea``, ``photo-lomiri-kleiber``."""
    stem = Path(photo.file).stem.split("_by_")[0]
    return f"photo-{_ORIGIN_TAGS[photo.origin]}-" + re.sub(r"[^a-z0-9]+", "-", stem.casefold()).strip("-")


def origin_folders(origin: PhotoOrigin) -> list[Path]:
    """The folders ``origin``'s files may lie in, in the order tried; only those that exist."""
    folders = []
    if origin.module:
        spec = importlib.util.find_spec(origin.module)
        for location in (spec.submodule_search_locations or []) if spec else []:
            folders.append(Path(location) / origin.subdir)
    folders += [Path(root) for root in origin.roots]
    return [f for f in dict.fromkeys(folders) if f.is_dir()]


def _wallpaper_image(folder: Path, max_side: int) -> Path | None:
    """A KDE wallpaper package's ``contents/images/<W>x<H>.<ext>``: the smallest at least ``max_side``
    on its long side, else the largest."""
    sizes = []
    for path in (folder / "contents" / "images").glob("*"):
        match = re.fullmatch(r"(\d+)x(\d+)", path.stem)
        if match and path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            sizes.append((int(match.group(1)), int(match.group(2)), path.name, path))
    if not sizes:
        return None
    big = sorted(s for s in sizes if max(s[:2]) >= max_side)
    return big[0][3] if big else max(sizes)[3]


def find_named_photo(photo: NamedPhoto, folders: list[Path], max_side: int = NAMED_MAX_SIDE) -> Path | None:
    """The file of ``photo`` in the first of ``folders`` that has it; None when none does."""
    for folder in folders:
        if photo.origin == _KDE:
            found = _wallpaper_image(folder / photo.file, max_side) if (folder / photo.file).is_dir() else None
        else:
            found = folder / photo.file if (folder / photo.file).is_file() else None
        if found is not None:
            return found
    return None


def jpeg_bytes(image: Image.Image, quality: int = NAMED_JPEG_QUALITY) -> bytes:
    """An RGB image as baseline JPEG bytes (the same bytes for the same pixels)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def build_named_photos_manifest(
    out_dir: str | os.PathLike,
    *,
    roots: dict[str, list[str | os.PathLike]] | None = None,
    limit: int | None = None,
    seed: int = 0,
    max_side: int = NAMED_MAX_SIDE,
) -> dict:
    """Build the test manifest of :data:`NAMED_PHOTOS` found on this machine, with a drop report and statistics.

    Each photo found is decoded, shrunk to at most ``max_side`` pixels on its long side and written
    as ``<out>/images/named-photos/<id>.jpg`` (so the manifest holds relative paths and does not
    depend on where the packages are installed); its record has two captions (a phrase and
    keywords), split ``test``, and meta naming the package, the source file, the licence and the
    author. Photos whose package is not installed, whose file is missing, that do not decode or
    that repeat another's pixels are listed in ``dropped.jsonl`` and left out.

    Parameters
    ----------
    out_dir : path-like
        Gets ``manifest.jsonl``, ``dropped.jsonl``, ``stats.json`` and ``images/named-photos/``.
    roots : dict, optional
        ``{origin: [folders]}`` used instead of :func:`origin_folders` for those origins (tests).
    limit : int, optional
        Keep at most this many photos, the first in a seeded-hash order of their ids.
    seed : int
        Seeds that order.
    max_side : int
        Longest side of the written copies.

    Returns
    -------
    dict
        The statistics written to ``stats.json``.

    Raises
    ------
    FileNotFoundError
        When no photo is found at all; the message says what to install.
    ValueError
        When ``limit`` or ``max_side`` is below 1.
    """
    from models.preprocess import ImageError, decode_image

    started = time.perf_counter()
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, not {max_side}")
    out = Path(out_dir)
    folders = {name: [Path(p) for p in roots[name] if Path(p).is_dir()] if roots and name in roots else origin_folders(origin)
               for name, origin in PHOTO_ORIGINS.items()}
    report = DropReport()
    found: list[tuple[NamedPhoto, Path]] = []
    for photo in NAMED_PHOTOS:
        ident, origin = named_photo_id(photo), PHOTO_ORIGINS[photo.origin]
        path = find_named_photo(photo, folders[photo.origin], max_side) if folders[photo.origin] else None
        if path is None:
            reason = "missing_file" if folders[photo.origin] else "not_installed"
            report.image(ident, reason, origin=photo.origin, file=photo.file, install=origin.install)
        else:
            found.append((photo, path))
    if not found:
        hints = sorted({PHOTO_ORIGINS[p.origin].install for p in NAMED_PHOTOS})
        raise FileNotFoundError(f"no named photo found: install one of the packages ({'; '.join(hints)})")
    # Decoded in catalogue order (of two photos with the same pixels the first listed stays), then
    # sampled in a seeded-hash order of the ids.
    decoded: list[tuple[NamedPhoto, Path, bytes, tuple[int, int], tuple[int, int]]] = []
    seen: dict[bytes, str] = {}
    for photo, path in found:
        ident = named_photo_id(photo)
        try:
            image, size = decode_image(path, max_side=max_side)
        except ImageError as exc:
            report.image(ident, "undecodable", origin=photo.origin, file=str(path), error=str(exc))
            continue
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        digest = hashlib.sha256(image.tobytes()).digest()
        if digest in seen:
            report.image(ident, "duplicate_image", origin=photo.origin, file=str(path), duplicate_of=seen[digest])
            continue
        seen[digest] = ident
        decoded.append((photo, path, jpeg_bytes(image), image.size, size))  # the JPEG, not the pixels: little memory
    decoded.sort(key=lambda item: hashlib.sha1(f"{seed}:{NAMED_SOURCE}:{named_photo_id(item[0])}".encode()).digest())
    (out / "images" / NAMED_SOURCE).mkdir(parents=True, exist_ok=True)
    records: list[ManifestRecord] = []
    for photo, path, data, shape, size in decoded:
        if limit is not None and len(records) >= limit:
            report.image(named_photo_id(photo), "not_sampled", origin=photo.origin, file=str(path))
        else:
            records.append(_named_record(photo, path, data, shape, size, out))
    records.sort(key=lambda r: r.id)
    _remove_stale_files(out / "images" / NAMED_SOURCE, {Path(r.image).name for r in records}, "*.jpg")
    write_manifest(out / "manifest.jsonl", records)
    write_jsonl(out / "dropped.jsonl", sorted(report.rows, key=lambda r: r["id"]))
    by_origin = Counter(r.meta["origin"] for r in records)
    stats = {
        "source": NAMED_SOURCE,
        "entries": len(NAMED_PHOTOS),
        **corpus_stats(records, report.counts("image"), {}),
        "origins": {name: {"kept": by_origin[name], "registry": o.registry, "install": o.install,
                           "folders": [str(f) for f in folders[name]]} for name, o in PHOTO_ORIGINS.items()},
        "licences": dict(sorted(Counter(r.meta["licence"] for r in records).items())),
        "image_bytes": sum(Path(r.image).stat().st_size for r in records),
        "params": {"limit": limit, "seed": seed, "max_side": max_side, "quality": NAMED_JPEG_QUALITY},
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info("named photos: kept %d of %d in %.1fs (%s)", len(records), len(NAMED_PHOTOS), stats["seconds"],
             ", ".join(f"{k} {v}" for k, v in sorted(by_origin.items())))
    return stats


def _named_record(photo: NamedPhoto, path: Path, data: bytes, shape: tuple[int, int], size: tuple[int, int],
                  out: Path) -> ManifestRecord:
    ident = named_photo_id(photo)
    dest = out / "images" / NAMED_SOURCE / f"{ident}.jpg"
    if not dest.exists() or dest.read_bytes() != data:
        dest.write_bytes(data)
    origin = PHOTO_ORIGINS[photo.origin]
    meta = {
        "source": NAMED_SOURCE,
        "origin": photo.origin,
        "registry": origin.registry,
        "file": str(path),
        "style": STYLE,
        "licence": photo.licence,
        "author": photo.author,
        "named_by": photo.named_by,
        "keywords": [k.strip() for k in photo.keywords.split(",")],
        "caption_sources": ["phrase", "keywords"],
        "width": shape[0],
        "height": shape[1],
        "source_size": list(size),
    }
    return ManifestRecord(id=ident, image=str(dest), captions=[photo.caption, photo.keywords], split="test", meta=meta)


def _remove_stale_files(folder: Path, keep: set[str], pattern: str) -> None:
    for stale in sorted(folder.glob(pattern)):
        if stale.name not in keep:
            stale.unlink()


def build_photos_manifest(
    out_dir: str | os.PathLike,
    *,
    per_class: int = 100,
    seed: int = 0,
    root: str | os.PathLike = ROOT,
    readme: str | os.PathLike | None = README,
    named_roots: dict[str, list[str | os.PathLike]] | None = None,
    named_limit: int | None = None,
) -> dict:
    """The whole photo style in one manifest: the Fashion-MNIST sample and the named photos.

    The parts are built by :func:`build_fashion_manifest` into ``<out>/fashion-mnist/`` and
    :func:`build_named_photos_manifest` into ``<out>/named-photos/``; ``<out>/manifest.jsonl``
    lists both (Fashion-MNIST first), ``<out>/dropped.jsonl`` both parts' drops, and
    ``<out>/stats.json`` the combined counts with each part's statistics under ``parts``.

    Raises
    ------
    FileNotFoundError
        When the Fashion-MNIST package is missing, or no named photo is found.
    """
    from models.data.manifest import read_manifest

    started = time.perf_counter()
    out = Path(out_dir)
    parts = {
        SOURCE: build_fashion_manifest(out / SOURCE, root=root, per_class=per_class, seed=seed, readme=readme),
        NAMED_SOURCE: build_named_photos_manifest(out / NAMED_SOURCE, roots=named_roots, limit=named_limit, seed=seed),
    }
    records = [r for name in parts for r in read_manifest(out / name / "manifest.jsonl")]
    dropped = [json.loads(line) for name in parts
               for line in (out / name / "dropped.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    write_manifest(out / "manifest.jsonl", records)
    write_jsonl(out / "dropped.jsonl", dropped)
    images_dropped: Counter[str] = Counter()
    for stats in parts.values():
        images_dropped.update(stats["images_dropped"])
    stats = {
        "source": "photos",
        **corpus_stats(records, dict(sorted(images_dropped.items(), key=lambda kv: (-kv[1], kv[0]))), {}),
        "parts": parts,
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return stats
