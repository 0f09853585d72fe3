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
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import re
import time
from collections import Counter
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


