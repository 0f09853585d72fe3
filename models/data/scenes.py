"""Procedural scenes of coloured shapes with exact per-object masks.

Each scene is a plain light background with 1..N shapes. Every shape is rasterised once into its
own 1-bit mask and the colour is pasted *through that mask*, so image pixels and masks agree by
construction (PIL's ImageDraw does not anti-alias). Objects are drawn in order; a later object
hides earlier ones, and an object's stored mask is only its visible pixels.

The words (shapes, colours, sizes) are single BERT-uncased vocabulary words, so a lexical model
can be checked on whether ``red`` and ``circle`` light up on the right pixels.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from models.data.manifest import ManifestRecord, assign_split, write_manifest

SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "heart", "diamond", "cross", "pentagon", "moon", "ring",
)
COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "gray")
SIZES: tuple[str, ...] = ("small", "large")

RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 160, 50), "blue": (30, 70, 220), "yellow": (240, 200, 0),
    "orange": (250, 130, 0), "purple": (130, 40, 170), "pink": (245, 120, 180), "brown": (120, 70, 30),
    "black": (15, 15, 15), "gray": (128, 128, 128),
}
# Radius as a fraction of the image side; the gap between the ranges keeps "small" and "large"
# visibly different.
RADIUS_RANGE = {"small": (0.07, 0.10), "large": (0.15, 0.21)}
# An earlier object must keep this share of its pixels, or a caption would name a hidden shape.
MIN_VISIBLE = 0.5
PLACEMENT_TRIES = 30


@dataclass
class SceneObject:
    """One drawn shape.

    Attributes
    ----------
    shape, color, size : str
        Words from ``SHAPES``, ``COLORS`` and ``SIZES``.
    box : tuple of int
        ``(x0, y0, x1, y1)`` bounding box of the visible mask, ``x1``/``y1`` exclusive.
    mask : numpy.ndarray
        bool ``[H, W]``: the object's visible pixels.
    """

    shape: str
    color: str
    size: str
    box: tuple[int, int, int, int]
    mask: np.ndarray


@dataclass
class Scene:
    """An image, its caption and its objects (in drawing order)."""

    image: Image.Image
    caption: str
    objects: list[SceneObject]


def make_scene(seed: int, size: int = 224, max_objects: int = 3) -> Scene:
    """Draw a random scene; the same seed always gives the same scene.

    Parameters
    ----------
    seed : int
        Random seed (any non-negative int).
    size : int
        Image side in pixels.
    max_objects : int
        Upper bound on the number of shapes (at least 1 is drawn).

    Returns
    -------
    Scene
        RGB image, caption such as ``"a red circle and a small blue square"``, visible masks.
    """
    rng = np.random.default_rng(seed)
    background = tuple(int(v) for v in rng.integers(235, 256, size=3))
    wanted = int(rng.integers(1, max_objects + 1))
    placed = _place_objects(rng, size, wanted)
    image = Image.new("RGB", (size, size), background)
    for _, color, _, full in placed:
        image.paste(RGB[color], mask=Image.fromarray(full))
    objects = _visible_objects(placed)
    return Scene(image=image, caption=_caption(rng, objects), objects=objects)


def _place_objects(rng: np.random.Generator, size: int, wanted: int) -> list[tuple[str, str, str, np.ndarray]]:
    """Pick attributes and positions; reject placements that hide too much of earlier shapes."""
    placed: list[tuple[str, str, str, np.ndarray]] = []
    used: set[tuple[str, str]] = set()
    for _ in range(wanted):
        shape, color = _fresh_pair(rng, used)
        size_word = SIZES[int(rng.integers(len(SIZES)))]
        for _ in range(PLACEMENT_TRIES):
            full = _shape_mask(rng, shape, size_word, size)
            if _keeps_earlier_visible(placed, full):
                placed.append((shape, color, size_word, full))
                used.add((shape, color))
                break
    return placed


def _fresh_pair(rng: np.random.Generator, used: set[tuple[str, str]]) -> tuple[str, str]:
    """A (shape, colour) not yet in the scene, so every caption phrase names one object."""
    while True:
        pair = (SHAPES[int(rng.integers(len(SHAPES)))], COLORS[int(rng.integers(len(COLORS)))])
        if pair not in used:
            return pair


def _keeps_earlier_visible(placed: list, new: np.ndarray) -> bool:
    """True when every earlier object keeps ``MIN_VISIBLE`` of its pixels under ``new``."""
    later = new.copy()
    for _, _, _, full in reversed(placed):
        area = int(full.sum())
        if int((full & ~later).sum()) < MIN_VISIBLE * area:
            return False
        later |= full
    return True


def _visible_objects(placed: list) -> list[SceneObject]:
    """Subtract every later object's pixels from each object's full mask."""
    objects: list[SceneObject] = []
    if not placed:
        return objects
    covered = np.zeros_like(placed[0][3])
    for shape, color, size_word, full in reversed(placed):
        visible = full & ~covered
        covered |= full
        objects.append(SceneObject(shape, color, size_word, _bbox(visible), visible))
    return objects[::-1]


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the true pixels, exclusive end; zeros for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return (0, 0, 0, 0)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _shape_mask(rng: np.random.Generator, shape: str, size_word: str, size: int) -> np.ndarray:
    """Rasterise one shape at a random position into a bool ``[size, size]`` mask."""
    lo, hi = RADIUS_RANGE[size_word]
    r = float(rng.uniform(lo, hi)) * size
    cx, cy = (float(v) for v in rng.uniform(r + 1, size - r - 1, size=2))
    return np.asarray(draw_mask(shape, (size, size), cx, cy, r)) > 0


def draw_mask(shape: str, size: tuple[int, int], cx: float, cy: float, r: float) -> Image.Image:
    """Rasterise ``shape`` of radius ``r`` centred at ``(cx, cy)`` into a 1-bit-valued ``L`` mask.

    Parameters
    ----------
    shape : str
        A word from ``SHAPES``.
    size : tuple of int
        ``(width, height)`` of the mask.
    cx, cy, r : float
        Centre and radius in pixels.

    Returns
    -------
    PIL.Image.Image
        ``L`` image, 255 inside the shape and 0 outside (no anti-aliasing).
    """
    canvas = Image.new("L", size, 0)
    _DRAWERS[shape](ImageDraw.Draw(canvas), cx, cy, r)
    return canvas


def _box(cx: float, cy: float, r: float) -> list[float]:
    return [cx - r, cy - r, cx + r, cy + r]


def _regular(cx: float, cy: float, r: float, n: int, start: float = -math.pi / 2) -> list[tuple[float, float]]:
    return [(cx + r * math.cos(start + 2 * math.pi * k / n), cy + r * math.sin(start + 2 * math.pi * k / n)) for k in range(n)]


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    outer, inner = _regular(cx, cy, r, 5), _regular(cx, cy, r * 0.45, 5, -math.pi / 2 + math.pi / 5)
    return [p for pair in zip(outer, inner, strict=True) for p in pair]


def _heart(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    # The classic parametric heart spans about 32 x 29 units; scale it into the radius.
    pts = []
    for k in range(48):
        t = 2 * math.pi * k / 48
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((cx + x * r / 16, cy - (y + 2.5) * r / 16))
    return pts


def _cross(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    a = r * 0.35
    return [(cx - a, cy - r), (cx + a, cy - r), (cx + a, cy - a), (cx + r, cy - a), (cx + r, cy + a), (cx + a, cy + a),
            (cx + a, cy + r), (cx - a, cy + r), (cx - a, cy + a), (cx - r, cy + a), (cx - r, cy - a), (cx - a, cy - a)]


def _draw_moon(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float) -> None:
    draw.ellipse(_box(cx, cy, r), fill=255)
    draw.ellipse(_box(cx + r * 0.45, cy - r * 0.15, r * 0.85), fill=0)


def _draw_ring(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float) -> None:
    draw.ellipse(_box(cx, cy, r), fill=255)
    draw.ellipse(_box(cx, cy, r * 0.55), fill=0)  # the hole shows whatever lies beneath


_DRAWERS = {
    "circle": lambda d, x, y, r: d.ellipse(_box(x, y, r), fill=255),
    "square": lambda d, x, y, r: d.rectangle(_box(x, y, r * 0.85), fill=255),
    "triangle": lambda d, x, y, r: d.polygon(_regular(x, y + r * 0.2, r * 1.1, 3), fill=255),
    "star": lambda d, x, y, r: d.polygon(_star(x, y, r), fill=255),
    "heart": lambda d, x, y, r: d.polygon(_heart(x, y, r), fill=255),
    "diamond": lambda d, x, y, r: d.polygon([(x, y - r), (x + r * 0.7, y), (x, y + r), (x - r * 0.7, y)], fill=255),
    "cross": lambda d, x, y, r: d.polygon(_cross(x, y, r), fill=255),
    "pentagon": lambda d, x, y, r: d.polygon(_regular(x, y, r, 5), fill=255),
    "moon": _draw_moon,
    "ring": _draw_ring,
}


def _caption(rng: np.random.Generator, objects: list[SceneObject]) -> str:
    """Natural caption: objects in random order, size named about half the time."""
    phrases = []
    for index in rng.permutation(len(objects)):
        obj = objects[int(index)]
        words = ([obj.size] if rng.random() < 0.5 else []) + [obj.color, obj.shape]
        article = "an" if words[0][0] in "aeiou" else "a"
        phrases.append(" ".join([article, *words]))
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def write_scene_set(
    out_dir: str | os.PathLike,
    n: int,
    seed: int = 0,
    size: int = 224,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> Path:
    """Render ``n`` scenes to ``out_dir`` with masks and a manifest.

    Parameters
    ----------
    out_dir : path-like
        Destination; gets ``images/<id>.png``, ``masks/<id>.npz`` and ``manifest.jsonl``.
    n : int
        Number of scenes.
    seed : int
        Seed of the whole set; scene ``i`` uses a seed derived from ``(seed, i)``.
    size : int
        Image side in pixels.
    split_fractions : tuple of float
        ``(train, val, test)`` shares; assigned by a seeded hash of the id.

    Returns
    -------
    pathlib.Path
        The written ``manifest.jsonl``.
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    _, val_fraction, test_fraction = split_fractions
    records = []
    for i in range(n):
        scene_id = f"scene_{seed}_{i:06d}"
        scene = make_scene(scene_seed(seed, i), size=size)
        records.append(_save_scene(out_dir, scene_id, scene, assign_split(scene_id, seed, val_fraction, test_fraction)))
    manifest = out_dir / "manifest.jsonl"
    write_manifest(manifest, records)
    return manifest


def scene_seed(seed: int, index: int) -> int:
    """Independent per-scene seed for scene ``index`` of a set seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _save_scene(out_dir: Path, scene_id: str, scene: Scene, split: str) -> ManifestRecord:
    """Write the PNG and mask file of one scene; return its manifest record."""
    image_path = out_dir / "images" / f"{scene_id}.png"
    scene.image.save(image_path, compress_level=1)
    arrays: dict[str, np.ndarray] = {}
    for index, obj in enumerate(scene.objects):
        arrays[f"mask_{index}"] = obj.mask
        arrays[f"shape_{index}"] = np.array(obj.shape)
    # numpy's stubs let **arrays fill allow_pickle (numpy >= 2.1); passing it would save an
    # "allow_pickle" array under numpy < 2.1, which pyproject allows
    np.savez_compressed(out_dir / "masks" / f"{scene_id}.npz", **arrays)  # type: ignore[arg-type]
    objects = [{"shape": o.shape, "color": o.color, "size": o.size, "box": list(o.box)} for o in scene.objects]
    meta = {"source": "scenes", "masks": f"masks/{scene_id}.npz", "objects": objects}
    return ManifestRecord(id=scene_id, image=str(image_path), captions=[scene.caption], split=split, meta=meta)


def load_masks(record: ManifestRecord, root: str | os.PathLike | None = None) -> list[tuple[str, np.ndarray]]:
    """Load the per-object visible masks of a scene record.

    Parameters
    ----------
    record : ManifestRecord
        A record written by ``write_scene_set``; ``meta["masks"]`` is relative to the manifest folder.
    root : path-like, optional
        The manifest folder; by default the nearest parent folder of the image holding the mask file.

    Returns
    -------
    list of (str, numpy.ndarray)
        ``(shape word, bool mask [H, W])`` per object, in drawing order.
    """
    path = _mask_path(record, root)
    with np.load(path) as data:
        count = sum(1 for key in data.files if key.startswith("mask_"))
        return [(str(data[f"shape_{i}"]), data[f"mask_{i}"].astype(bool)) for i in range(count)]


def _mask_path(record: ManifestRecord, root: str | os.PathLike | None) -> Path:
    """Resolve ``meta["masks"]``; the record only carries the image's absolute path."""
    rel = Path(record.meta["masks"])
    if rel.is_absolute():
        return rel
    if root is not None:
        return Path(root) / rel
    for parent in Path(record.image).parents:
        if (parent / rel).exists():
            return parent / rel
    raise FileNotFoundError(f"{record.id}: mask file {rel} not found above {record.image}")
