"""Cached outputs of the frozen parts: image backbone patch features and (frozen-LM) text hidden states.

With a frozen backbone, every epoch would recompute identical features; caching them turns a
training step into the adapter/mapper/codebook work only. The cache key covers the card's
backbone settings and the exact inputs, so a change of either recomputes. Each file is written
atomically (``models.files.save_atomically``): a killed run never leaves a torn cache entry.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from models.files import save_atomically
from models.model import LexVLA
from models.preprocess import ImageError, load_image

log = logging.getLogger(__name__)


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _pixels(model: LexVLA, path: str) -> np.ndarray | ImageError:
    try:
        return model.image_spec.to_array(load_image(path))
    except ImageError as exc:
        return exc


def image_features(model: LexVLA, paths: Sequence[str], cache_dir: Path | None, batch_size: int = 32,
                   device: str = "cpu") -> tuple[np.ndarray, list[ImageError]]:
    """Backbone patch features ``[N, P, d]`` (float16) for ``paths``, cached under ``cache_dir``.

    An image that cannot be used does not stop the run: its row stays zero and its error is
    returned (in path order), so the caller can leave it out and say why.
    """
    vision = model.card.vision
    key = _key("image", vision.backbone, vision.path, vision.config, vision.image_size, vision.mean, vision.std, list(paths))
    cached = cache_dir / f"image-{key}.npy" if cache_dir else None
    failed_file = cache_dir / f"image-{key}.failed.json" if cache_dir else None
    if cached and failed_file and cached.is_file() and failed_file.is_file():
        failed = [ImageError(**e) for e in json.loads(failed_file.read_text())]
        return np.load(cached, mmap_mode="r"), failed
    backbone = model.image.backbone.to(device).eval()
    chunks, failed = [], []
    with ThreadPoolExecutor(max_workers=2) as pool, torch.no_grad():
        for start in tqdm(range(0, len(paths), batch_size), desc="image features", unit="batch"):
            batch = list(pool.map(lambda p: _pixels(model, p), paths[start : start + batch_size]))
            failed += [b for b in batch if isinstance(b, ImageError)]
            size = model.image_spec.size
            pixels = np.stack([np.zeros((3, size, size), np.float32) if isinstance(b, ImageError) else b for b in batch])
            chunks.append(backbone.patch_features(torch.from_numpy(pixels).to(device)).half().cpu().numpy())  # [b, P, d]
    feats = np.concatenate(chunks) if chunks else np.zeros((0, 1, 1), np.float16)
    for err in failed:
        log.warning("left out of training: %s", err)
    if cached and failed_file:
        cached.parent.mkdir(parents=True, exist_ok=True)
        save_atomically(cached, lambda tmp: np.save(tmp, feats))
        save_atomically(failed_file, lambda tmp: tmp.write_text(json.dumps([{"source": e.source, "reason": e.reason} for e in failed])))
    return feats, failed


def text_hidden(model: LexVLA, captions: Sequence[str], cache_dir: Path | None, batch_size: int = 256,
                device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frozen-LM hidden states ``[C, L, d]`` (float16), attention masks and token ids ``[C, L]`` for ``captions``."""
    text = model.card.text
    key = _key("text-ids", text.backbone, text.path, text.config, text.prompt, text.max_caption_tokens, list(captions))
    cached = cache_dir / f"text-{key}.npz" if cache_dir else None
    if cached and cached.is_file():
        data = np.load(cached)
        return data["hidden"], data["mask"], data["ids"]
    width = max((len(model.text_preprocessor.encode(c)) for c in captions), default=1)
    hidden = np.zeros((len(captions), width, model.text.codebook.shape[1]), np.float16)
    masks = np.zeros((len(captions), width), np.int64)
    token_ids = np.full((len(captions), width), model.text_preprocessor.pad_id, np.int64)
    lm = model.text.to(device).eval()
    with torch.no_grad():
        for start in tqdm(range(0, len(captions), batch_size), desc="text features", unit="batch"):
            ids, mask = model.text_preprocessor.batch(list(captions[start : start + batch_size]))
            out = lm.hidden_states(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))
            hidden[start : start + len(ids), : ids.shape[1]] = out.half().cpu().numpy()
            masks[start : start + len(ids), : ids.shape[1]] = mask
            token_ids[start : start + len(ids), : ids.shape[1]] = ids
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        save_atomically(cached, lambda tmp: np.savez(tmp, hidden=hidden, mask=masks, ids=token_ids))
    return hidden, masks, token_ids


def text_hidden_groups(model: LexVLA, groups: Sequence[Sequence[str]], cache_dir: Path | None,
                       device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``text_hidden`` of each group of captions (one cache entry each), concatenated in order.

    Groups are the training manifests' captions: a run that adds or leaves out one manifest
    reuses the others' hidden states. Shorter groups are padded to the widest (mask 0, pad id).
    """
    parts = [text_hidden(model, list(g), cache_dir, device=device) for g in groups if len(g)]
    if not parts:
        return text_hidden(model, [], cache_dir, device=device)
    width = max(p[0].shape[1] for p in parts)
    pad_id = model.text_preprocessor.pad_id

    def padded(a: np.ndarray, value) -> np.ndarray:
        widths = [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
        return np.pad(a, widths, constant_values=value)

    return (np.concatenate([padded(h, 0) for h, _, _ in parts]), np.concatenate([padded(m, 0) for _, m, _ in parts]),
            np.concatenate([padded(i, pad_id) for _, _, i in parts]))


def image_colours(model: LexVLA, paths: Sequence[str], cache_dir: Path | None, batch_size: int = 64) -> np.ndarray:
    """Each image's colour shares ``[N, C]`` (``models.colours.ColourWords``; ``[N, 0]`` for a model
    without colour words), cached under ``cache_dir``. An unreadable image gets zeros."""
    from models import colours

    tower = model.image
    if tower.colours is None:
        return np.zeros((len(paths), 0), np.float32)
    vision = model.card.vision
    key = _key("colours", colours.PROTOTYPES, colours.GRID, colours.RING, vision.image_size, vision.mean, vision.std, list(paths))
    cached = cache_dir / f"colours-{key}.npy" if cache_dir else None
    if cached and cached.is_file():
        return np.load(cached)
    size = model.image_spec.size
    out = np.zeros((len(paths), len(colours.COLOURS)), np.float32)
    with ThreadPoolExecutor(max_workers=2) as pool, torch.no_grad():
        for start in tqdm(range(0, len(paths), batch_size), desc="image colours", unit="batch"):
            batch = list(pool.map(lambda p: _pixels(model, p), paths[start : start + batch_size]))
            pixels = np.stack([np.zeros((3, size, size), np.float32) if isinstance(b, ImageError) else b for b in batch])
            shares, _ = tower.colour_shares(torch.from_numpy(pixels), patches=False)  # type: ignore[misc]
            ok = np.array([not isinstance(b, ImageError) for b in batch], np.float32)[:, None]
            out[start : start + len(batch)] = shares.numpy() * ok
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        save_atomically(cached, lambda tmp: np.save(tmp, out))
    return out
