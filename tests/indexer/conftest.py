"""Fixtures for the indexer tests: generated scenes with bad files among them, and an index of them."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from lexvla.testing import bad_images, build_index, scene_images


def vector_rows(words: list[str], n: int, start: int = 0, seed: int = 0, terms: int = 12, top: int = 300) -> list:
    """``n`` documents with precomputed vectors: ``terms`` words of ``words``, impacts 1..``top``."""
    from indexer.metadata import DocRow

    rng = random.Random(seed)
    rows = []
    for i in range(start, start + n):
        impacts = {w: rng.randint(1, top) for w in rng.sample(words, terms)}
        rows.append(DocRow(f"vec/{i:04d}", f"/data/img{i:04d}.jpg", 100 + i, 50 + i, impacts, {"source": "elsewhere", "i": i}))
    return rows


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    """60 good images plus the three bad files."""
    folder = tmp_path_factory.mktemp("shapes")
    scene_images(folder, 60, seed=7)
    bad_images(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_index(tmp_path_factory, bundle_dir, shapes_dir) -> Path:
    """An index root built from ``shapes_dir`` with the tiny-random bundle (read-only for tests)."""
    root = tmp_path_factory.mktemp("tiny_index")
    build_index(bundle_dir, shapes_dir, root, batch_size=8)
    return root
