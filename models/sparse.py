"""Sparse lexical vectors: the one place where a dense activation becomes indexed word weights.

The towers end in ``log(1 + relu(.))`` (``models.towers.lexical_activation``), a non-negative
vocabulary-sized vector. Everything downstream -- the index, the service, evaluation -- goes
through :func:`sparsify` (keep the top-k words, L2-normalise) and :func:`quantize` (integer
impacts for Lucene). Training uses the same normalisation on the dense vectors, so the dot
product Lucene computes is the cosine the model was trained on, up to top-k and rounding.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

K = TypeVar("K", int, str)


@dataclass(frozen=True)
class SparseVector:
    """Word ids (lexical dimensions) and their weights, sorted by weight, largest first."""

    ids: np.ndarray  # [n] int64
    weights: np.ndarray  # [n] float32, > 0

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def to_dict(self) -> dict[int, float]:
        return {int(i): float(w) for i, w in zip(self.ids, self.weights, strict=True)}

    def words(self, vocab_words: list[str]) -> dict[str, float]:
        """``{word: weight}`` in weight order."""
        return {vocab_words[int(i)]: float(w) for i, w in zip(self.ids, self.weights, strict=True)}

    @classmethod
    def from_dict(cls, weights: dict[int, float]) -> SparseVector:
        items = sorted(((int(i), float(w)) for i, w in weights.items() if w > 0), key=lambda t: -t[1])
        ids = np.array([i for i, _ in items], dtype=np.int64)
        return cls(ids=ids, weights=np.array([w for _, w in items], dtype=np.float32))


def l2_normalize(dense: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation of ``[B, V]``; all-zero rows stay zero."""
    norms = np.linalg.norm(dense, axis=-1, keepdims=True)
    return dense / np.maximum(norms, eps)


def sparsify(dense: np.ndarray, top_k: int, normalize: bool = True, keep: np.ndarray | None = None,
             min_share: float = 0.0) -> list[SparseVector]:  # fmt: skip
    """Keep the ``top_k`` largest positive weights of each row of ``[B, V]``, then L2-normalise.

    Parameters
    ----------
    dense : array ``[B, V]`` of non-negative lexical activations.
    top_k : words kept per vector (``<= 0`` keeps every positive word).
    normalize : L2-normalise the kept weights (the index and training assume it).
    keep : optional ``[B, V]`` mask of words kept beside the top-k whatever their rank (a query's
        own typed words, ``Bundle.encode_texts``); they still need a positive weight.
    min_share : words under this share of their row's strongest weight are cut first, except the
        ``keep`` words (a query's weak expansion words: docs/query-cuts.md).
    """
    dense = np.asarray(dense, dtype=np.float32)
    if dense.ndim != 2:
        raise ValueError(f"expected [batch, vocab], got shape {dense.shape}")
    if min_share > 0:
        kept = dense >= min_share * dense.max(axis=1, keepdims=True)
        dense = np.where(kept if keep is None else kept | (keep > 0), dense, np.float32(0.0))
    batch, vocab = dense.shape
    k = vocab if top_k <= 0 else min(top_k, vocab)
    # argpartition is O(V); only the k survivors are sorted.
    part = np.argpartition(-dense, k - 1, axis=1)[:, :k] if k < vocab else np.tile(np.arange(vocab), (batch, 1))
    out: list[SparseVector] = []
    for b, (row, cand) in enumerate(zip(dense, part, strict=True)):
        if keep is not None:
            cand = np.union1d(cand, np.flatnonzero(keep[b]))
        vals = row[cand]
        positive = vals > 0
        cand, vals = cand[positive], vals[positive]
        order = np.argsort(-vals, kind="stable")
        ids, vals = cand[order].astype(np.int64), vals[order].astype(np.float32)
        if normalize and vals.size:
            vals = vals / np.float32(np.linalg.norm(vals))
        out.append(SparseVector(ids=ids, weights=vals))
    return out


def quantize_weights(weights: Mapping[K, float], scale: float) -> dict[K, int]:
    """Integer impacts ``round(weight * scale)`` for Lucene; keys whose impact rounds to 0 are dropped.

    This is the only place a weight is quantised, for documents and queries alike. The scale is a
    property of the bundle (``BundleConfig.quant_scale``) recorded in each index, never a constant.
    """
    out: dict[K, int] = {}
    for key, weight in weights.items():
        impact = int(np.rint(float(weight) * scale))
        if impact > 0:
            out[key] = impact
    return out


def quantize(vec: SparseVector, scale: float) -> dict[int, int]:
    """:func:`quantize_weights` of a :class:`SparseVector` (dimension id -> impact)."""
    return quantize_weights(vec.to_dict(), scale)


def dequantize(impacts: dict[int, int], scale: float) -> SparseVector:
    return SparseVector.from_dict({i: v / scale for i, v in impacts.items()})
