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


def mixed_queries(rows, words: list[str], n: int = 30, seed: int = 3) -> list[dict[str, int]]:
    """Parts of document vectors (many distinct scores) and one- or two-word queries (many ties)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        impacts = rng.choice(rows).impacts
        out.append({w: impacts[w] for w in rng.sample(sorted(impacts), 6)})
    out += [{w: 1} for w in words[:10]] + [{words[i]: 2, words[i + 1]: 1} for i in range(10, 20)]
    return out


def brute_force(rows, query: dict[str, int]) -> dict[str, int]:
    """``{doc_id: integer dot product}`` of ``query`` with every ``DocRow`` of ``rows``, by a scipy
    sparse matrix: the exact answer the Lucene searches are checked against."""
    import numpy as np
    from scipy import sparse

    words = sorted({w for r in rows for w in r.impacts} | set(query))
    col = {w: i for i, w in enumerate(words)}
    data, ri, ci = [], [], []
    for n, r in enumerate(rows):
        for w, v in r.impacts.items():
            data.append(v)
            ri.append(n)
            ci.append(col[w])
    docs = sparse.csr_matrix((data, (ri, ci)), shape=(len(rows), len(words)), dtype=np.int64)
    q = np.zeros(len(words), dtype=np.int64)
    for w, v in query.items():
        q[col[w]] = v
    return {r.doc_id: int(s) for r, s in zip(rows, docs @ q, strict=True)}


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
