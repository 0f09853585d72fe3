"""The encode stage: input listing, parallel decoding, batched ONNX encoding, quantisation.

Both the local path (threads, here) and the Ray path (``indexer.ray_encode``) call
:func:`decode_one` and :func:`encode_decoded`, so they produce identical documents.
"""
from __future__ import annotations

import csv
import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.metadata import DocRow
from indexer.sources import Fingerprint, read_with_fingerprint
from models.preprocess import DEFAULT_MAX_PIXELS, ImageError, ImageSpec, load_image
from models.sparse import quantize_weights, sparsify

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class InputItem:
    """One image to index: a stable id, its file and optional caller metadata."""

    doc_id: str
    path: str
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Reject:
    """An input that could not be indexed and why; ``fingerprint`` is the content that was
    rejected (``None`` when the file could not be read), ``known`` that it was rejected before
    and not decoded again."""

    doc_id: str
    path: str
    reason: str
    fingerprint: Fingerprint | None = field(default=None, compare=False)
    known: bool = field(default=False, compare=False)


@dataclass
class Decoded:
    """A decoded image ready for the encoder: ``pixels`` is ``[3, S, S]`` float32."""

    item: InputItem
    pixels: np.ndarray
    width: int
    height: int
    fingerprint: Fingerprint | None = None


class InputError(ValueError):
    """A manifest or input folder that cannot be read."""


# ---- listing inputs --------------------------------------------------------------------------
def scan_inputs(source: str | Path) -> list[InputItem]:
    """Items from a folder (recursive, image extensions; id = path relative to the folder) or a
    manifest (``.jsonl`` with ``id`` and ``path`` keys -- ``image`` is read as ``path``, so a
    training manifest indexes as it is -- or ``.csv`` with an ``id,path`` header).

    Relative manifest paths are resolved against the manifest's folder. Extra manifest fields
    become the document's ``meta``. Sorted by id so runs are reproducible.
    """
    source = Path(source)
    if source.is_dir():
        items = [
            InputItem(p.relative_to(source).as_posix(), str(p.resolve()))
            for p in source.rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        ]
    elif source.suffix.lower() in (".jsonl", ".ndjson"):
        items = [_manifest_item(json.loads(line), source, n) for n, line in enumerate(source.open(), 1) if line.strip()]
    elif source.suffix.lower() == ".csv":
        with source.open(newline="") as fh:
            items = [_manifest_item(row, source, n) for n, row in enumerate(csv.DictReader(fh), 2)]
    elif not source.exists():
        raise InputError(f"input {source} does not exist")
    else:
        raise InputError(f"input {source}: expected a folder, a .jsonl or a .csv manifest")
    return sorted(items, key=lambda it: it.doc_id)


def _manifest_item(row: dict, manifest: Path, line: int) -> InputItem:
    location = row.get("path") or row.get("image")
    if not row.get("id") or not location:
        raise InputError(f"{manifest}:{line}: each entry needs non-empty 'id' and 'path' (or 'image')")
    path = Path(location)
    if not path.is_absolute():
        path = manifest.parent / path
    meta = {k: v for k, v in row.items() if k not in ("id", "path", "image")}
    return InputItem(str(row["id"]), str(path.resolve()), meta)


# ---- decoding and encoding -------------------------------------------------------------------
def decode_one(
    item: InputItem, spec: ImageSpec, max_pixels: int = DEFAULT_MAX_PIXELS, known_bad: Mapping[str, str] | None = None
) -> Decoded | Reject:
    """Read, fingerprint, load, letterbox and normalise one image; any unusable file becomes a
    :class:`Reject`. Content in ``known_bad`` (SHA-256 -> reason) is rejected again without decoding."""
    try:
        data, fp = read_with_fingerprint(item.path)
    except OSError as exc:
        return Reject(item.doc_id, item.path, f"cannot open ({exc.strerror or type(exc).__name__})")
    if known_bad and fp.sha256 in known_bad:
        return Reject(item.doc_id, item.path, known_bad[fp.sha256], fp, known=True)
    try:
        img = load_image(data, max_pixels=max_pixels)
        return Decoded(item, spec.to_array(img), img.width, img.height, fp)
    except ImageError as exc:
        return Reject(item.doc_id, item.path, exc.reason, fp)
    except Exception as exc:  # a decoder bug must not stop a million-image job
        return Reject(item.doc_id, item.path, f"unexpected {type(exc).__name__}", fp)


def encode_decoded(bundle, decoded: list[Decoded]) -> list[DocRow]:
    """Encode a batch with the bundle's image tower, keep top-k, quantise with the bundle's scale."""
    if not decoded:
        return []
    dense, _ = bundle.encode_pixels(np.stack([d.pixels for d in decoded]))  # [B, V]
    vectors = sparsify(dense, bundle.config.image_top_k)
    rows = []
    for d, vec in zip(decoded, vectors, strict=True):
        impacts = quantize_weights(vec.words(bundle.words), bundle.config.quant_scale)
        rows.append(DocRow(d.item.doc_id, d.item.path, d.width, d.height, impacts, d.item.meta, d.fingerprint))
    return rows


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for it in items:
        batch.append(it)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def encode_local(
    bundle, items: list[InputItem], batch_size: int = 32, workers: int = 2, max_pixels: int = DEFAULT_MAX_PIXELS,
    known_bad: Mapping[str, str] | None = None,
) -> Iterator[tuple[list[DocRow], list[Reject]]]:
    """Decode in a thread pool and encode batch by batch, yielding ``(docs, rejects)`` per batch.

    At most two batches are being decoded ahead of the encoder, which bounds memory to about
    ``3 * batch_size`` decoded images whatever the number of inputs. PIL releases the GIL while
    decoding and resizing, so threads use every core without pickling pixels between processes.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        pending: deque = deque()
        chunks = _batches(items, batch_size)

        def submit_next() -> bool:
            chunk = next(chunks, None)
            if chunk is None:
                return False
            pending.append([pool.submit(decode_one, it, bundle.image_spec, max_pixels, known_bad) for it in chunk])
            return True

        for _ in range(2):
            submit_next()
        while pending:
            results = [f.result() for f in pending.popleft()]
            submit_next()
            decoded = [r for r in results if isinstance(r, Decoded)]
            yield encode_decoded(bundle, decoded), [r for r in results if isinstance(r, Reject)]
