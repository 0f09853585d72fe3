"""Fixtures for the indexer tests: generated images (coloured shapes), bad files, built indexes."""
from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "cyan", "magenta", "brown"]


def make_images(folder: Path, n: int, seed: int = 0, prefix: str = "img", size: int = 96) -> list[Path]:
    """``n`` PNG/JPEG drawings of random coloured shapes; a third of them in a sub-folder."""
    rng = random.Random(seed)
    paths = []
    for i in range(n):
        w, h = size + rng.randrange(-20, 40), size + rng.randrange(-20, 40)
        img = Image.new("RGB", (w, h), rng.choice(COLOURS))
        draw = ImageDraw.Draw(img)
        for _ in range(rng.randrange(1, 4)):
            box = sorted(rng.sample(range(w), 2)), sorted(rng.sample(range(h), 2))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((box[0][0], box[1][0], box[0][1], box[1][1]), fill=rng.choice(COLOURS))
        sub = folder / ("nested" if i % 3 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"{prefix}{i:04d}.{'jpg' if i % 4 == 1 else 'png'}"
        img.save(path)
        paths.append(path)
    return paths


def vector_rows(words: list[str], n: int, start: int = 0, seed: int = 0, terms: int = 12, top: int = 300) -> list:
    """``n`` documents with precomputed vectors: ``terms`` words of ``words``, impacts 1..``top``."""
    from indexer.metadata import DocRow

    rng = random.Random(seed)
    rows = []
    for i in range(start, start + n):
        impacts = {w: rng.randint(1, top) for w in rng.sample(words, terms)}
        rows.append(DocRow(f"vec/{i:04d}", f"/data/img{i:04d}.jpg", 100 + i, 50 + i, impacts, {"source": "elsewhere", "i": i}))
    return rows


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def make_bad_files(folder: Path) -> dict[str, Path]:
    """Random bytes, a truncated PNG and a 20000x20000 header-only PNG (decompression bomb)."""
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


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    """60 good images plus the three bad files."""
    folder = tmp_path_factory.mktemp("shapes")
    make_images(folder, 60, seed=7)
    make_bad_files(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_index(tmp_path_factory, bundle_dir, shapes_dir) -> Path:
    """An index root built from ``shapes_dir`` with the tiny-random bundle (read-only for tests)."""
    from indexer.job import IndexJobConfig, run_index_job

    root = tmp_path_factory.mktemp("tiny_index")
    run_index_job(IndexJobConfig(bundle=bundle_dir, input=shapes_dir, root=root, batch_size=8, progress=False))
    return root
