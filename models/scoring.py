"""Scoring a PyTorch model from cached frozen features, for evaluation without an ONNX bundle.

The frozen backbone and language model are the same in every model of one card, so the report's
many models (seeds, styles left out, variants, the untrained heads) share one pass over each
evaluation image and caption (``models.features``, cached on disk); each model then runs only its
heads. ``FeatureScorer`` answers what ``models.evaluate`` asks of a ``models.bundle.Bundle``
(``words``, ``vocab``, ``config``, ``image_vectors``, ``text_vectors``, ``encode_images_dense``)
and adds the cached paths ``dense_images`` and ``dense_texts``. Cut to top-k and sparsified by the
same ``models.sparse.sparsify`` as a bundle's vectors; the features are float16, so weights differ
from the exported bundle's by about 1e-3 (``parity`` measures it on a bundle that exists).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from models.features import image_colours, image_features, text_hidden
from models.model import LexVLA
from models.sparse import SparseVector, sparsify


class FeatureScorer:
    """A model's lexical vectors from cached backbone features and LM hidden states."""

    def __init__(self, model: LexVLA, cache_dir: Path | None, version: str = "", batch_size: int = 256):
        from models.export import bundle_config

        self.model = model.eval()
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.config = bundle_config(model, model.card.name)
        self.vocab = model.vocab
        self.image_spec = model.image_spec
        self.version = version

    @property
    def words(self) -> list[str]:
        return self.vocab.words

    @torch.no_grad()
    def dense_images(self, records) -> np.ndarray:
        """``[N, V]`` image vectors of ``records`` (an unreadable image gets an all-zero row)."""
        paths = [r.image for r in records]
        feats, _ = image_features(self.model, paths, self.cache_dir)
        colours = image_colours(self.model, paths, self.cache_dir)
        rows = []
        for s in range(0, len(records), self.batch_size):
            shares = (torch.from_numpy(colours[s : s + self.batch_size]), None) if colours.shape[1] else None
            batch = torch.from_numpy(np.asarray(feats[s : s + self.batch_size], np.float32))
            rows.append(self.model.image.from_features(batch, patches=False, colours=shares)[0].numpy())
        return np.concatenate(rows) if rows else np.zeros((0, len(self.vocab)), np.float32)

    @torch.no_grad()
    def dense_texts(self, captions: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """``[M, V]`` caption vectors and the typed-word mask (``None`` without a floor), as
        ``Bundle.encode_texts_typed`` gives them."""
        hidden, masks, ids = text_hidden(self.model, list(captions), self.cache_dir)
        text = self.model.text
        dense, typed = [], []
        for s in range(0, len(captions), self.batch_size):
            mask = torch.from_numpy(masks[s : s + self.batch_size])
            width = max(1, int(mask.sum(1).max())) if len(mask) else 1
            h = torch.from_numpy(np.asarray(hidden[s : s + self.batch_size, :width], np.float32))
            tokens = torch.from_numpy(ids[s : s + self.batch_size, :width])
            dense.append(text.from_hidden(h, mask[:, :width], tokens).numpy())
            if text.exact_floor:
                typed.append(text.typed_words(tokens, mask[:, :width]).numpy())
        empty = np.zeros((0, len(self.vocab)), np.float32)
        return (np.concatenate(dense) if dense else empty), ((np.concatenate(typed) if typed else empty) if text.exact_floor else None)

    @torch.no_grad()
    def encode_images_dense(self, images, patches: bool = False):
        """PIL images -> ``[B, V]`` (and ``[B, P, V]``): the whole tower, backbone included (uncached)."""
        pixels = torch.from_numpy(self.image_spec.batch(images))
        vec, per_patch = self.model.image(pixels)
        return vec.numpy(), (per_patch.numpy() if patches else None)

    def image_vectors(self, dense: np.ndarray, top_k: int | None = None) -> list[SparseVector]:
        return sparsify(dense, self.config.image_top_k if top_k is None else top_k)

    def text_vectors(self, dense: np.ndarray, typed: np.ndarray | None, top_k: int | None = None,
                     min_share: float = 0.0) -> list[SparseVector]:  # fmt: skip
        return sparsify(dense, self.config.text_top_k if top_k is None else top_k, keep=typed, min_share=min_share)


def parity(scorer: FeatureScorer, bundle, records) -> dict[str, float]:
    """How far a scorer's cached-feature vectors lie from the exported ``bundle``'s on ``records``:
    the largest absolute weight difference and the share of each image's 10 strongest words that
    both agree on (a spot check: the report states it for each bundle it exports)."""
    from models.preprocess import load_image

    ours = scorer.dense_images(records)
    theirs, _ = bundle.encode_images_dense([load_image(r.image) for r in records])
    agree = [len(set(np.argsort(-a)[:10]) & set(np.argsort(-b)[:10])) / 10 for a, b in zip(ours, theirs, strict=True)]
    return {"images": len(records), "max_abs_diff": float(np.abs(ours - theirs).max()) if len(records) else 0.0,
            "top10_agreement": float(np.mean(agree)) if agree else 1.0}
