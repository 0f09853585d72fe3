"""Generated images and small indexes for the test suite and the benches.

Every picture is drawn with :mod:`models.data.scenes` (its shapes, colour words and rasteriser),
so test images speak the same words as the training scenes:

* :func:`draw_shape`: one shape of one colour on white (any size, for upload and limit tests);
* :func:`draw_centred_shape`: the one exception, drawn with PIL alone (the training checks' pictures);
* :func:`shape_images`: a folder of labelled shapes, ``red_circle_0.png``, for retrieval tests;
* :func:`scene_images`: a folder of numbered random scenes, ``img0000.png``, for indexing tests;
* :func:`bad_images`: files the indexer must reject;
* :func:`build_index`: the real index job (Anserini on the JVM) with test-friendly defaults;
* :func:`anserini_processes`: the Anserini builds running now, for kill-and-resume tests.
"""
from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw

from models.data.scenes import RGB, draw_mask, make_scene, scene_seed

if TYPE_CHECKING:
    from indexer.publish import JobReport

# The colours and shapes of shape_images: distinct words the lexvla-mini vocabulary knows.
SHAPE_COLORS = ("red", "green", "blue", "yellow", "black")
SHAPE_NAMES = ("circle", "square", "triangle", "star")


def draw_shape(shape: str, color: str, size: int | tuple[int, int] = 96, seed: int = 0) -> Image.Image:
    """One ``color`` ``shape`` on white; ``seed`` moves and scales it a little.

    Parameters
    ----------
    shape, color : str
        Words of ``models.data.scenes.SHAPES`` and ``COLORS``.
    size : int or (int, int)
        Side, or ``(width, height)``, in pixels.
    seed : int
        Any int; the same seed draws the same picture.
    """
    w, h = (size, size) if isinstance(size, int) else size
    r = min(w, h) * (0.25 + 0.05 * (seed % 3))
    cx, cy = w / 2 + (seed % 5 - 2) * w * 0.05, h / 2 + (seed % 4 - 1.5) * h * 0.05
    img = Image.new("RGB", (w, h), "white")
    img.paste(RGB[color], mask=draw_mask(shape, (w, h), cx, cy, r))
    return img


def draw_centred_shape(shape: str, color: str, size: int = 96) -> Image.Image:
    """One large ``color`` ``shape`` centred on white, in PIL's named colours and PIL's own
    polygons rather than :mod:`models.data.scenes`'s: the pictures of the 8-image training checks
    in ``tests/models`` (tiny-random overfit, lexvla-mini word loss), which are tuned to them and
    fail on :func:`draw_shape`'s at any of its sizes. ``shape``: circle, square, triangle, else a star.
    """
    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    box = (size // 6, size // 6, size - size // 6, size - size // 6)
    if shape == "circle":
        d.ellipse(box, fill=color)
    elif shape == "square":
        d.rectangle(box, fill=color)
    elif shape == "triangle":
        d.polygon([(size // 2, box[1]), (box[2], box[3]), (box[0], box[3])], fill=color)
    else:
        c = size // 2
        d.polygon([(c, 8), (c + 10, c - 8), (size - 8, c), (c + 10, c + 8), (c, size - 8), (c - 10, c + 8), (8, c), (c - 10, c - 8)], fill=color)
    return img


def shape_images(folder: Path, n_per: int = 2) -> list[Path]:
    """``SHAPE_COLORS`` x ``SHAPE_NAMES`` x ``n_per`` PNGs named ``<color>_<shape>_<i>.png``.

    Every fourth one (counting over colour, shape and i) lies in the sub-folder ``more/``; sizes
    vary between 160 x 128 and 208 x 176, so no two neighbours share an aspect ratio.
    """
    paths = []
    for ci, color in enumerate(SHAPE_COLORS):
        for si, shape in enumerate(SHAPE_NAMES):
            for i in range(n_per):
                sub = folder / ("more" if (ci + si + i) % 4 == 0 else "")
                sub.mkdir(parents=True, exist_ok=True)
                size = (160 + 24 * ((ci + i) % 3), 128 + 24 * ((si + i) % 3))
                path = sub / f"{color}_{shape}_{i}.png"
                draw_shape(shape, color, size, ci * 7 + si * 3 + i).save(path)
                paths.append(path)
    return paths


def scene_images(folder: Path, n: int, seed: int = 0, prefix: str = "img", size: int = 96) -> list[Path]:
    """``n`` random scenes ``<prefix><i:04d>``, each of a different size near ``size``.

    Image ``i`` is ``models.data.scenes.make_scene`` of a seed derived from ``(seed, i)``, stretched
    to its own width and height. Every third lies in the sub-folder ``nested/``; every fourth
    (``i % 4 == 1``) is a JPEG, the rest PNGs.
    """
    rng = random.Random(seed)
    paths = []
    for i in range(n):
        w, h = size + rng.randrange(-20, 40), size + rng.randrange(-20, 40)
        img = make_scene(scene_seed(seed, i), size=size).image.resize((w, h), Image.Resampling.NEAREST)
        sub = folder / ("nested" if i % 3 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"{prefix}{i:04d}.{'jpg' if i % 4 == 1 else 'png'}"
        img.save(path)
        paths.append(path)
    return paths


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bad_images(folder: Path) -> dict[str, Path]:
    """Random bytes, a truncated PNG and a 20000 x 20000 header-only PNG (a decompression bomb).

    Returns ``{"random": path, "truncated": path, "bomb": path}`` (``bad_<name>.png``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    random_bytes = folder / "bad_random.png"
    random_bytes.write_bytes(random.Random(1).randbytes(2000))
    truncated = folder / "bad_truncated.png"
    Image.effect_noise((200, 200), 80).convert("RGB").save(truncated)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    bomb = folder / "bad_bomb.png"
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))
    return {"random": random_bytes, "truncated": truncated, "bomb": bomb}


def build_index(bundle: Path, source: str | Path, root: Path, **config: Any) -> JobReport:
    """Run the real index job on ``source`` (a folder, a manifest or a manifest's URL) into ``root``.

    ``config`` overrides fields of :class:`indexer.job.IndexJobConfig`; by default the job runs on
    the CPU without a progress bar. Returns the job's :class:`indexer.publish.JobReport`.
    """
    from indexer.job import run_index_job
    from indexer.job_config import IndexJobConfig

    defaults: dict[str, Any] = {"progress": False, "device": "cpu"}
    source = str(source) if "://" in str(source) else Path(source)  # an fsspec URL stays as it is
    return run_index_job(IndexJobConfig(bundle=Path(bundle), input=source, root=Path(root), **(defaults | config)))


def index_build_processes(path_part: str) -> list[tuple[int, str]]:
    """``(pid, command line)`` of running index builds (``indexer.lucene.build_impact_index``'s java:
    ``ImpactIndexer`` or Anserini's ``IndexCollection``) whose command line holds ``path_part``
    (Linux ``/proc``)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process ended while we looked
        if ("lexvla.index.ImpactIndexer" in args or "IndexCollection" in args) and path_part in args:
            found.append((int(cmdline.parent.name), args))
    return found


def indexed_rows(root: Path) -> list[dict]:
    """What the published generation of ``root`` holds, shard by shard: ``{doc_id: (path, width,
    height, impacts, meta)}`` per shard, in shard order (one dict for an unsharded index)."""
    from indexer.layout import require_generation, shard_dirs
    from indexer.metadata import META_FILE, MetadataReader

    out = []
    for shard in shard_dirs(require_generation(root)):
        reader = MetadataReader(shard / META_FILE)
        try:
            out.append({r.doc_id: (r.path, r.width, r.height, r.impacts, r.meta) for r in reader})
        finally:
            reader.close()
    return out
