"""Image work: uploads decoded, encoded and embedded; indexed images served, thumbnailed and heatmapped.

Everything here decodes or encodes images, so the routes run it on the image work queue
(:class:`service.limits.WorkQueue`). A route that serves an indexed image looks it up through one
snapshot of the index (:meth:`Images.locate`): its record, its file and the index version its
caches key on come from one generation, however the index is reloaded meanwhile.
"""
from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import numpy as np
from PIL import Image

from indexer.metadata import DocRow
from indexer.protocols import Searcher
from models.bundle import Bundle
from models.preprocess import decode_image
from models.sparse import quantize_weights
from service import heatmap
from service.cache import ResilientCache, cache_key
from service.config import PILLOW_MAX_PIXELS, Settings
from service.echo import echo
from service.exceptions import ImageError, ImageTooLarge, InputError, NotFound, UploadTooLarge
from service.limits import check_batch
from service.results import EncodeResult, WordHeatmap
from service.search import vocabulary_entry
from service.timing import StageTimer

__all__ = ["Images", "IndexedImage", "image_urls", "declared_size", "pixel_limit_error"]

log = logging.getLogger(__name__)
HEATMAP_SIDE = 512  # long side of the image a heatmap is drawn over


def image_urls(doc_id: str) -> tuple[str, str]:
    """Image and thumbnail URLs of an indexed document (the id is percent-encoded, slashes too)."""
    quoted = quote(doc_id, safe="")
    return f"/images/{quoted}", f"/images/{quoted}/thumb"


@dataclass(frozen=True)
class IndexedImage:
    """An indexed image as one snapshot of the index saw it."""

    doc_id: str
    record: DocRow
    path: Path  # the file (it existed when looked up)
    index_version: str  # the generation it was read from


class Images:
    """Decodes, encodes and draws images: uploads, and the indexed images the index records.

    Parameters
    ----------
    settings : service settings (upload and decoding limits, thumbnail size, cache prefix).
    bundle, searcher, cache : the engine's open components.
    """

    def __init__(self, settings: Settings, bundle: Bundle, searcher: Searcher, cache: ResilientCache):
        self.settings, self.bundle, self.searcher, self.cache = settings, bundle, searcher, cache
        self._thumbs = _LRU(512)

    # ---- uploads ----------------------------------------------------------------------------
    def decode_upload(self, source: bytes | BinaryIO) -> tuple[Image.Image, tuple[int, int]]:
        """An uploaded image (its bytes or an open file) -> ``(RGB image, the file's size)``.

        Decoded at reduced size (``decode_side``) within one image worker's share of the memory
        budget; ``ImageError`` names what is wrong.
        """
        s = self.settings
        data = source if isinstance(source, bytes) else source.read(s.max_upload_bytes + 1)
        if len(data) > s.max_upload_bytes:
            raise UploadTooLarge(f"upload is over {s.max_upload_bytes} bytes, the limit")
        if not data:
            raise InputError("empty upload: no image bytes", "file")
        try:
            return decode_image(data, s.max_pixels, max_side=s.decode_side, max_bytes=s.decode_bytes, name="upload")
        except ImageError as exc:
            over = pixel_limit_error(data, s.max_pixels, "upload") if _pillow_refused(exc) else None
            if over is None:
                exc.field = "file"
                raise
            over.field = "file"
            raise over from exc

    def check_heatmaps(self, words: list[str], top_n_maps: int) -> None:
        """Refuse more than ``max_heatmaps`` heatmaps in one request."""
        n, limit = len(dict.fromkeys(words)) + top_n_maps, self.settings.max_heatmaps
        if n > limit:
            raise InputError(f"{n} heatmaps asked for (heatmaps + heatmap_top_n); the limit is {limit} (LEXVLA_MAX_HEATMAPS)", "heatmaps")

    def encode_image(
        self, image: Image.Image, size: tuple[int, int], words: list[str], top_n_maps: int, fmt: str, top_n: int
    ) -> EncodeResult:
        """``/encode``: the image's sparse vector, plus heatmaps for ``words`` and the top ``top_n_maps`` words.

        ``size`` is the uploaded file's (``image`` may have been decoded at reduced size).
        """
        timer = StageTimer()
        self.check_heatmaps(words, top_n_maps)
        want_maps = bool(words or top_n_maps)
        with timer("encode"):
            dense, patches = self.bundle.encode_images_dense([image], patches=want_maps)  # [1,V], [1,P,V]
            vec = self.bundle.image_vectors(dense)[0]
        weights = vec.words(self.bundle.words)
        maps = []
        if want_maps:
            with timer("heatmaps"):
                targets = list(dict.fromkeys([*words, *list(weights)[:top_n_maps]]))
                maps = self._heatmaps(image, patches[0], targets, fmt)
        grid_h, grid_w = self.bundle.config.patch_grid
        return EncodeResult(list(weights.items())[:top_n], self.bundle.version, (grid_h, grid_w),
                            size[0], size[1], maps, timer.total())  # fmt: skip

    def _heatmaps(self, image: Image.Image, patch_lexical: np.ndarray, words: list[str], fmt: str) -> list[WordHeatmap]:
        _, box = self.bundle.image_spec.letterbox(image)
        shown = heatmap.fit(image, HEATMAP_SIDE)
        out = []
        for raw in words:
            entry = vocabulary_entry(self.bundle, raw)
            if entry is None:
                out.append(WordHeatmap(raw, False))
                continue
            dim, word = entry
            grid = self.bundle.word_heatmaps(patch_lexical, [dim])[0]  # [gh, gw]
            if fmt == "array":
                out.append(WordHeatmap(word, True, float(grid.max()), grid=grid.astype(float).round(6).tolist()))
            else:
                png = heatmap.data_url(heatmap.to_png(heatmap.overlay(shown, grid, box, self.bundle.config.image_size)))
                out.append(WordHeatmap(word, True, float(grid.max()), png=png))
        return out

    def embed_images(self, sources: Sequence[tuple[str, bytes | BinaryIO]], quantized: bool = False) -> list[Mapping[str, float]]:
        """Each uploaded image's ``{word: weight}`` as the indexer computes it (the image top-k), or
        its integer impacts -- what the index stores -- with ``quantized``.

        ``sources`` are ``(name, file)`` pairs; an image that cannot be used fails the request
        with its position and name.
        """
        check_batch(len(sources), self.settings.max_embed_images, "images", "LEXVLA_MAX_EMBED_IMAGES")
        pixels = []
        for i, (name, source) in enumerate(sources):
            try:
                image, _ = self.decode_upload(source)
            except InputError as exc:
                exc.args = (f"file {i} ({echo(name)}): {exc}",)
                raise
            pixels.append(self.bundle.image_spec.to_array(image))  # [3, S, S]; the decoded image is let go
        dense, _ = self.bundle.encode_pixels(np.stack(pixels))  # [B, V]
        scale = self.bundle.config.quant_scale
        weights = [vec.words(self.bundle.words) for vec in self.bundle.image_vectors(dense)]
        return [quantize_weights(w, scale) if quantized else w for w in weights]

    # ---- indexed images ---------------------------------------------------------------------
    def locate(self, doc_id: str) -> IndexedImage:
        """``doc_id``'s record, file and index version, read through one snapshot of the index.

        Only ever a path the index recorded, resolved against ``settings.image_root`` where the
        images are mounted, or the root recorded at indexing. :class:`NotFound` for an id that is
        not indexed, or whose file is gone.
        """
        with self.searcher.snapshot() as snap:
            record = snap.document(doc_id) if doc_id else None
            if record is None:
                raise NotFound(f"no indexed image with id {echo(doc_id)}")
            path = snap.image_file(record, self.settings.image_root)
            version = snap.version
        if not path.is_file():
            raise NotFound(f"the file of indexed image {echo(doc_id)} is gone")
        return IndexedImage(doc_id, record, path, version)

    def image_file(self, doc_id: str) -> Path:
        """The file of an indexed image (:meth:`locate`)."""
        return self.locate(doc_id).path

    def decode_indexed(self, found: IndexedImage) -> Image.Image:
        """Decode an indexed image at reduced size. The upload limit does not apply: the indexer
        accepted this file at its recorded size, and that size (not more) is what may be decoded
        now. Errors name the id, never the server's path (the log has it)."""
        s, record = self.settings, found.record
        try:
            return decode_image(found.path, max(1, record.width * record.height), max_side=s.decode_side,
                                max_bytes=s.decode_bytes, name=f"indexed image {echo(found.doc_id)}")[0]  # fmt: skip
        except ImageError as exc:
            log.warning("indexed image %r (%s) cannot be decoded: %s", found.doc_id, found.path, exc.reason)
            raise

    def thumbnail(self, doc_id: str) -> bytes:
        """A JPEG no larger than ``thumb_size`` (the last 512 kept in memory, per index version)."""
        found = self.locate(doc_id)
        key = (found.index_version, doc_id, self.settings.thumb_size)
        jpeg = self._thumbs.get(key)
        if jpeg is None:
            image = heatmap.fit(self.decode_indexed(found), self.settings.thumb_size)
            buf = io.BytesIO()
            image.save(buf, format="JPEG", quality=85)
            jpeg = self._thumbs.put(key, buf.getvalue())
        return jpeg

    def clear_thumbnails(self) -> None:
        """Forget the thumbnails kept in memory (after a switch to another index generation)."""
        self._thumbs.clear()

    def heatmap_png(self, doc_id: str, word: str) -> bytes:
        """PNG of an indexed image with ``word``'s activation drawn over it.

        The word's patch grid is cached (keyed by bundle, index version, id and word), so a page
        that toggles heatmaps on a result list encodes each image once; only the drawing is redone.
        """
        entry = vocabulary_entry(self.bundle, word)
        if entry is None:
            raise InputError(f"{echo(word)} is not a word of the vocabulary", "word")
        dim, canonical = entry
        found = self.locate(doc_id)
        image = self.decode_indexed(found)
        key = cache_key(self.settings.cache_prefix, "heat", (self.bundle.version, found.index_version),
                        {"id": doc_id, "word": canonical})  # fmt: skip
        cached = self.cache.get(key, "heatmap")
        if cached is not None:
            grid = np.asarray(cached, dtype=np.float32)  # [gh, gw]
        else:
            _, patches = self.bundle.encode_images_dense([image], patches=True)  # [1, P, V]
            grid = self.bundle.word_heatmaps(patches[0], [dim])[0]
            self.cache.set(key, grid.astype(float).tolist(), "heatmap")
        _, box = self.bundle.image_spec.letterbox(image)
        return heatmap.to_png(heatmap.overlay(heatmap.fit(image, HEATMAP_SIDE), grid, box, self.bundle.config.image_size))


class _LRU:
    """The last ``maxsize`` values put, by key (thread-safe)."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple, value: bytes) -> bytes:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# Pillow refuses an image over twice its MAX_IMAGE_PIXELS (178,956,970 pixels by default) when it
# opens it, in its own words and before any limit of ours is asked. The settings keep max_pixels
# under that ceiling, and such an image is answered in the words of the service's own limit.
_BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)


def _pillow_refused(exc: ImageError) -> bool:
    return isinstance(exc.__cause__, _BOMB)


def declared_size(data: bytes) -> tuple[int, int] | None:
    """The width and height an image file's header declares, read by the format's Pillow plugin as
    ``Image.open`` reads it but without Pillow's pixel check; ``None`` when no format reads it."""
    Image.init()
    prefix = data[:16]
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        try:
            if accept is not None:
                taken = accept(prefix)
                if not taken or isinstance(taken, str):
                    continue
            with factory(io.BytesIO(data), "") as img:
                return img.size
        except Exception:  # not this format (plugins raise SyntaxError, struct.error, ...), or a plugin that checks itself
            continue
    return None


def pixel_limit_error(data: bytes, max_pixels: int, name: str) -> ImageTooLarge | None:
    """The service's "too large" answer for an image Pillow refused by its size, in the words
    :func:`models.preprocess.decode_image` uses for ``max_pixels``: with the declared size, or
    "over" Pillow's ceiling where no header can be read without Pillow's check. ``None`` when the
    declared size is within ``max_pixels`` (a frame, not the image, was too large: Pillow's
    answer stands)."""
    size = declared_size(data)
    if size is None:
        return ImageTooLarge(name, f"too large: over {PILLOW_MAX_PIXELS} pixels exceeds the limit of {max_pixels}")
    if size[0] * size[1] <= max_pixels:
        return None
    return ImageTooLarge(name, f"too large: {size[0]}x{size[1]} pixels exceeds the limit of {max_pixels}")
