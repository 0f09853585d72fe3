"""The encode stage: parallel decoding, batched ONNX encoding, quantisation.

Inputs are listed by ``indexer.manifest`` (re-exported here: ``InputItem``, ``scan_inputs``).

Both the local path (threads, here) and the Ray path (``indexer.ray_encode``) call
:func:`decode_one` and :func:`encode_decoded`, so they produce identical documents.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from indexer.manifest import IMAGE_EXTENSIONS, InputItem, chunked, iter_inputs, scan_inputs  # noqa: F401 (re-exported)
from indexer.metadata import DocRow
from indexer.sources import Fingerprint, read_with_fingerprint
from models.preprocess import DEFAULT_MAX_PIXELS, ImageError, ImageSpec, load_image
from models.sparse import quantize_weights


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
    vectors = bundle.image_vectors(dense)
    rows = []
    for d, vec in zip(decoded, vectors, strict=True):
        impacts = quantize_weights(vec.words(bundle.words), bundle.config.quant_scale)
        rows.append(DocRow(d.item.doc_id, d.item.path, d.width, d.height, impacts, d.item.meta, d.fingerprint))
    return rows


def encode_local(
    bundle, items: Iterable[InputItem], batch_size: int = 32, workers: int = 2, max_pixels: int = DEFAULT_MAX_PIXELS,
    known_bad: Mapping[str, str] | None = None,
) -> Iterator[tuple[list[DocRow], list[Reject]]]:
    """Decode in a thread pool and encode batch by batch, yielding ``(docs, rejects)`` per batch.

    At most two batches are being decoded ahead of the encoder, which bounds memory to about
    ``3 * batch_size`` decoded images whatever the number of inputs. PIL releases the GIL while
    decoding and resizing, so threads use every core without pickling pixels between processes.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        pending: deque = deque()
        chunks = chunked(items, batch_size)

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
