"""The search engine behind the routes: one bundle, one searcher, one cache.

Routes stay thin; everything that touches the model, the index or the cache is here, in small
synchronous methods that the routes run in a thread pool (ONNX and Lucene work is CPU-bound).
"""
from __future__ import annotations

import io
import logging
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import numpy as np
from PIL import Image

from models.batching import MicroBatcher
from models.bundle import Bundle, BundleError
from models.preprocess import ImageError, InputError, TextPreprocessor, decode_image
from models.sparse import SparseVector, quantize_weights
from service import heatmap, metrics
from service.cache import ResilientCache, cache_key
from service.config import PILLOW_MAX_PIXELS, Settings
from service.echo import echo, echo_words
from service.query import EditedQuery, QueryEdits, apply_edits, merge_edits, parse_inline
from service.results import (
    EncodeResult,
    ImageHit,
    ImageSearchResult,
    ReadinessResult,
    TextQuery,
    TextSearchResult,
    Versions,
    WordHeatmap,
)
from service.timing import StageTimer

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The service cannot start: missing bundle or index, or versions that do not match."""


class NotFound(LookupError):
    """An id that is not in the published index."""


def image_urls(doc_id: str) -> tuple[str, str]:
    """Image and thumbnail URLs of an indexed document (the id is percent-encoded, slashes too)."""
    quoted = quote(doc_id, safe="")
    return f"/images/{quoted}", f"/images/{quoted}/thumb"


def open_searcher(index_root: Path, replicas: int = 0, jvm_heap: str | None = None):
    """The searcher of ``index_root``, one shard or many (StartupError when absent): in-process
    (:class:`indexer.sharded.ShardedSearcher`, in this process's JVM, started with ``jvm_heap`` as
    its ``-Xmx``), or with ``replicas`` Ray actors per shard (:class:`indexer.ray_search.RaySearcher`,
    on the cluster ``ray.init`` finds, each actor with its own JVM). Both have one interface."""
    try:
        from indexer.info import IndexFormatError
        from indexer.searcher import IndexNotFoundError
        from indexer.sharded import ShardedSearcher
    except ImportError as exc:
        raise StartupError(f"the index reader (indexer.sharded) cannot be imported: {exc}") from exc
    try:
        if replicas:
            from indexer.ray_search import RaySearcher

            return RaySearcher(index_root, replicas=replicas)
        from indexer.jvm import start_jvm

        start_jvm(jvm_heap)  # before the searcher opens the index: the heap is fixed when the JVM starts
        return ShardedSearcher(index_root)
    except (IndexNotFoundError, IndexFormatError) as exc:
        raise StartupError(str(exc)) from exc


def check_versions(bundle: Bundle, info) -> None:
    """Raise :class:`StartupError` when the index does not fit the bundle (``bundle_mismatch``)."""
    from indexer.metadata import bundle_mismatch

    problem = bundle_mismatch(info, bundle)
    if problem is not None:
        raise StartupError(
            f"index {info.index_version} was {problem} (the bundle the service loaded); "
            "serve the bundle the index was built with, or rebuild the index"
        )


class Engine:
    """Encodes queries, searches the published index and explains the hits.

    Parameters
    ----------
    settings : service settings.
    bundle, searcher, cache : already-open components (``Engine.load`` opens them from settings).
    """

    def __init__(self, settings: Settings, bundle: Bundle, searcher, cache: ResilientCache):
        self.settings, self.bundle, self.searcher, self.cache = settings, bundle, searcher, cache
        check_versions(bundle, searcher.info)
        metrics.BUILD_INFO.clear()  # one label set: what this process serves now
        metrics.BUILD_INFO.labels(metrics.package_version(), bundle.config.name, bundle.version).set(1)
        metrics.INDEX_DOCUMENTS.set(searcher.info.doc_count)
        self._reload_lock = threading.Lock()
        self._thumbs = lru_cache(maxsize=512)(self._make_thumbnail)
        # concurrent queries are encoded together, in one ONNX call (dynamic micro-batching)
        self._text_encoder = MicroBatcher(
            self._encode_batch, settings.encode_max_batch, settings.encode_max_wait_ms / 1000, name="encode"
        )

    @classmethod
    def load(cls, settings: Settings) -> Engine:
        """Open bundle, index and cache; fail fast with one clear message."""
        try:
            bundle = Bundle(settings.bundle, device=settings.device, threads=settings.threads, spinning=settings.ort_spinning,
                            text_precision=settings.text_precision)  # fmt: skip
        except BundleError as exc:
            raise StartupError(str(exc)) from exc
        searcher = open_searcher(settings.index, settings.search_replicas, settings.jvm_heap)
        cache = ResilientCache(
            settings.redis_url, settings.cache_ttl_s, settings.cache_socket_timeout_s, settings.cache_probe_interval_s,
            settings.cache_max_entry_bytes,
        )  # fmt: skip
        try:
            engine = cls(settings, bundle, searcher, cache)
        except StartupError:
            searcher.close()
            raise
        bundle.text_session, bundle.image_session  # noqa: B018 -- create ONNX sessions before the first request
        return engine

    # ---- versions and words -----------------------------------------------------------------
    def versions(self) -> dict[str, str]:
        """``{"bundle": ..., "index": ...}`` of what is being served right now."""
        return {"bundle": self.bundle.version, "index": self.searcher.info.index_version}

    def canonical(self, word: str) -> str | None:
        """The vocabulary's spelling of ``word`` or ``None`` when it is not a dimension."""
        dim = self.bundle.vocab.index(word.strip())
        return None if dim is None else self.bundle.words[dim]

    def check_k(self, k: int | None) -> int:
        """``k`` or the default, validated against the configured range."""
        s = self.settings
        k = s.k_default if k is None else k
        if not s.k_min <= k <= s.k_max:
            raise InputError(f"k must be between {s.k_min} and {s.k_max}, got {k}", "k")
        return k

    # ---- text search ------------------------------------------------------------------------
    def encode_text(self, text: str) -> tuple[dict[str, float], str]:
        """``({word: weight}, cache outcome)`` of a caption, through the encoding cache."""
        return self.encode_texts([text])[0]

    def encode_texts(self, texts: list[str]) -> list[tuple[dict[str, float], str]]:
        """``({word: weight}, cache outcome)`` of each caption, through the encoding cache; the
        captions not in the cache are encoded in one batch. The query top-k applies: these are the
        vectors text search sends to the index."""
        top_k = self.settings.query_top_k or self.bundle.config.text_top_k
        keys = [cache_key(self.settings.cache_prefix, "enc", (self.bundle.text_encoder_id,), {"text": t, "top_k": top_k}) for t in texts]
        out: list[tuple[dict[str, float], str] | None] = []
        for key in keys:
            cached = self.cache.get(key, "encode")
            out.append(None if cached is None else (dict(cached), "hit"))
        missing = [i for i, found in enumerate(out) if found is None]
        if missing:
            # one query: through the micro-batcher, with the queries of other requests; a batch
            # request is one ONNX call already
            vectors = ([self._text_encoder(texts[missing[0]])] if len(missing) == 1
                       else self.bundle.encode_texts([texts[i] for i in missing], top_k=top_k))
            outcome = "miss" if self.cache.available else "off"
            for i, vec in zip(missing, vectors, strict=True):
                weights = vec.words(self.bundle.words)
                self.cache.set(keys[i], list(weights.items()), "encode")
                out[i] = (weights, outcome)
        return out

    def _encode_batch(self, texts: list[str]) -> list[SparseVector | InputError]:
        """One ONNX call for the captions of a batch; a caption the preprocessor refuses fails alone."""
        top_k = self.settings.query_top_k or self.bundle.config.text_top_k
        try:
            return self.bundle.encode_texts(texts, top_k=top_k)
        except InputError:
            if len(texts) == 1:
                raise
        out: list[SparseVector | InputError] = []
        for text in texts:
            try:
                out.append(self.bundle.encode_texts([text], top_k=top_k)[0])
            except InputError as exc:
                out.append(exc)
        return out

    # ---- sparse vectors as they are (/embed_sparse) ----------------------------------------
    def check_batch(self, n: int, limit: int, what: str, setting: str) -> None:
        """Refuse an empty batch (422) or one over ``limit`` (413, the message names the setting)."""
        if n == 0:
            raise InputError(f"no {what} given: send 1 to {limit}", "inputs" if what == "texts" else "file")
        if n > limit:
            raise BatchTooLarge(f"{n} {what} in one request; the limit is {limit} ({setting})")

    def embed_texts(self, texts: list[str], quantized: bool = False, truncate: bool = False) -> list[dict[str, float]]:
        """Each text's ``{word: weight}`` exactly as text search queries the index (the text as it
        is: no query operators), or its integer impacts with ``quantized``.

        A text longer than the text encoder reads (:meth:`not_encoded`) is refused (422, naming
        the token budget and the words left over) unless ``truncate``: then its first tokens are
        encoded, as TEI's ``truncate`` does.
        """
        self.check_batch(len(texts), self.settings.max_embed_texts, "texts", "LEXVLA_MAX_EMBED_TEXTS")
        for i, text in enumerate(texts):
            if len(text) > self.settings.max_query_chars:
                raise InputError(f"inputs[{i}] is {len(text)} characters; the limit is {self.settings.max_query_chars} "
                                 "(LEXVLA_MAX_QUERY_CHARS)", "inputs")  # fmt: skip
            if not text.strip():
                raise InputError(f"inputs[{i}] is empty: each text needs at least one word", "inputs")
            if not truncate and (left := self.not_encoded(text)):
                raise InputError(
                    f"inputs[{i}] is longer than the text encoder reads ({self.token_budget} tokens): {len(left)} words "
                    f"would not be encoded ({echo_words(left)}); shorten it, or send truncate: true to encode what fits",
                    "inputs",
                )
        return [self._embedding(weights, quantized) for weights, _ in self.encode_texts(texts)]

    @property
    def token_budget(self) -> int:
        """Tokens of a text the text encoder reads (the bundle's ``max_caption_tokens``)."""
        return self.bundle.text_preprocessor.max_caption_tokens

    def not_encoded(self, text: str) -> list[str]:
        """The words of ``text`` past the text encoder's token budget (:func:`unencoded_words`)."""
        return unencoded_words(self.bundle.text_preprocessor, text)

    def embed_images(self, sources: list[tuple[str, bytes | BinaryIO]], quantized: bool = False) -> list[dict[str, float]]:
        """Each uploaded image's ``{word: weight}`` as the indexer computes it (the image top-k), or
        its integer impacts -- what the index stores -- with ``quantized``.

        ``sources`` are ``(name, file)`` pairs; an image that cannot be used fails the request
        with its position and name.
        """
        self.check_batch(len(sources), self.settings.max_embed_images, "images", "LEXVLA_MAX_EMBED_IMAGES")
        pixels = []
        for i, (name, source) in enumerate(sources):
            try:
                image, _ = self.decode_upload(source)
            except InputError as exc:
                exc.args = (f"file {i} ({echo(name)}): {exc}",)
                raise
            pixels.append(self.bundle.image_spec.to_array(image))  # [3, S, S]; the decoded image is let go
        dense, _ = self.bundle.encode_pixels(np.stack(pixels))  # [B, V]
        vectors = self.bundle.image_vectors(dense)
        return [self._embedding(vec.words(self.bundle.words), quantized) for vec in vectors]

    def _embedding(self, weights: dict[str, float], quantized: bool) -> dict[str, float]:
        return quantize_weights(weights, self.bundle.config.quant_scale) if quantized else weights

    def dimension(self, word: str) -> int:
        """The vocabulary dimension of a word the encoder produced."""
        return self.bundle.vocab.index(word)

    def parse(
        self, query: str, boost: dict[str, float] | None = None, exclude: list[str] | tuple[str, ...] = (),
        require: list[str] | tuple[str, ...] = (),
    ) -> QueryEdits:  # fmt: skip
        """Validate a query and split it into text and word-space edits."""
        if len(query) > self.settings.max_query_chars:
            raise InputError(f"query is {len(query)} characters; the limit is {self.settings.max_query_chars} "
                             "(LEXVLA_MAX_QUERY_CHARS)", "query")  # fmt: skip
        edits = merge_edits(parse_inline(query), boost, exclude, require)
        if not edits.text and not edits.boosts:
            raise InputError("empty query: give at least one word (or a +word to search for)", "query")
        self.check_words(len(edits.boosts) + len(edits.excludes), "boosted or excluded words")
        return edits

    def check_words(self, n: int, what: str) -> None:
        """Refuse a query of more than ``max_query_words`` words (each one is a Lucene clause)."""
        limit = self.settings.max_query_words
        if n > limit:
            raise InputError(f"the query has {n} {what}; the limit is {limit} words (LEXVLA_MAX_QUERY_WORDS)", "query")

    def search_text(
        self, query: str, k: int | None = None, boost: dict[str, float] | None = None, exclude: list[str] | tuple[str, ...] = (),
        require: list[str] | tuple[str, ...] = (),
    ) -> TextSearchResult:  # fmt: skip
        """Encode ``query`` (inline ``+word``/``-word``/``word^2`` edits apply), edit, search, explain.

        The words of the text past the encoder's token budget are not encoded; the result lists
        them (``query.not_encoded``).
        """
        timer = StageTimer()
        k = self.check_k(k)
        edits = self.parse(query, boost, exclude, require)
        left_out = self.not_encoded(edits.text) if edits.text else []
        with self.searcher.snapshot() as snap:  # one generation for the whole request, reloads or not
            versions = Versions(self.bundle.version, snap.version)
            key = cache_key(
                self.settings.cache_prefix, "hits", (self.bundle.text_encoder_id, versions.index), {**edits.normalized(), "k": k}
            )
            with timer("cache"):
                cached = self.cache.get(key, "results")
            if cached is not None:
                return TextSearchResult.from_cache(cached, timer.total(), {"encode": "skipped", "results": "hit"}, left_out)
            with timer("encode"):
                encoded, enc_outcome = self.encode_text(edits.text) if edits.text else ({}, "skipped")
            with timer("edit"):
                edited = apply_edits(encoded, edits, self.canonical)
            if not edited.weights:
                raise InputError("the query has no words left after the edits" + _ignored_note(edited), "query")
            self.check_words(len(edited.weights) + len(edited.excluded), "words after the edits (excluded words included)")
            hits = self._search(snap, edited.weights, k, edited.excluded, (), timer, edited.required)
        result = TextSearchResult(hits, TextQuery(edits.text, encoded, edited, left_out), versions)
        self.cache.set(key, result.to_cache(), "results")  # keyed by the version the hits came from
        outcome = "miss" if self.cache.available else "off"
        return TextSearchResult(hits, result.query, versions, timer.total(), {"encode": enc_outcome, "results": outcome})

    def _search(
        self, snap, query: dict[str, float], k: int, exclude_words, exclude_ids, timer: StageTimer, require_words=()
    ) -> list[ImageHit]:
        """Search ``snap`` (hits carry every required word and no excluded one), explain; stages ``search`` and ``explain``."""
        with timer("search"):
            hits = snap.search(query, k=k, exclude=tuple(exclude_words), require=tuple(require_words))
            hits = [h for h in hits if h.doc_id not in exclude_ids]
        with timer("explain"):
            # the snapshot already read each hit's metadata row to explain it; no second lookup
            return [_image_hit(h, h.record if h.record is not None else snap.document(h.doc_id)) for h in hits]

    # ---- images -----------------------------------------------------------------------------
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
        return EncodeResult(list(weights.items())[:top_n], self.bundle.version, tuple(self.bundle.config.patch_grid),
                            size[0], size[1], maps, timer.total())  # fmt: skip

    def _heatmaps(self, image: Image.Image, patch_lexical: np.ndarray, words: list[str], fmt: str) -> list[WordHeatmap]:
        _, box = self.bundle.image_spec.letterbox(image)
        shown = heatmap.fit(image, 512)
        out = []
        for raw in words:
            word = self.canonical(raw)
            if word is None:
                out.append(WordHeatmap(raw, False))
                continue
            grid = self.bundle.word_heatmaps(patch_lexical, [self.bundle.vocab.index(word)])[0]  # [gh, gw]
            if fmt == "array":
                out.append(WordHeatmap(word, True, float(grid.max()), grid=grid.astype(float).round(6).tolist()))
            else:
                png = heatmap.data_url(heatmap.to_png(heatmap.overlay(shown, grid, box, self.bundle.config.image_size)))
                out.append(WordHeatmap(word, True, float(grid.max()), png=png))
        return out

    def search_image(self, image: Image.Image, k: int | None, exclude: list[str], exclude_id: str | None) -> ImageSearchResult:
        """Image-to-image search with the image's own sparse vector."""
        timer = StageTimer()
        k = self.check_k(k)
        self.check_words(len(exclude), "excluded words")
        with timer("encode"):
            weights = self.bundle.encode_images([image])[0].words(self.bundle.words)
        with timer("edit"):
            edited = apply_edits(weights, QueryEdits("", {}, tuple(exclude)), self.canonical)
        if not edited.weights:
            raise InputError("the image has no active words to search with", "file")
        self.check_words(len(edited.weights) + len(edited.excluded), "words (excluded words included)")
        exclude_ids = (exclude_id,) if exclude_id else ()
        with self.searcher.snapshot() as snap:
            hits = self._search(snap, edited.weights, k + len(exclude_ids), edited.excluded, exclude_ids, timer)[:k]
            versions = Versions(self.bundle.version, snap.version)
        return ImageSearchResult(hits, edited.weights, versions, timer.total())

    def document(self, doc_id: str):
        """The indexed record of ``doc_id``; :class:`NotFound` for anything else."""
        record = self.searcher.document(doc_id) if doc_id else None
        if record is None:
            raise NotFound(f"no indexed image with id {echo(doc_id)}")
        return record

    def image_file(self, doc_id: str, record=None) -> Path:
        """The file of an indexed image (only ever a path the index recorded, resolved against
        ``settings.image_root`` where the images are mounted, or the root recorded at indexing)."""
        path = self.searcher.image_file(record or self.document(doc_id), self.settings.image_root)
        if not path.is_file():
            raise NotFound(f"the file of indexed image {echo(doc_id)} is gone")
        return path

    def indexed_image(self, doc_id: str) -> Image.Image:
        """Decode an indexed image at reduced size. The upload limit does not apply: the indexer
        accepted this file at its recorded size, and that size (not more) is what may be decoded
        now. Errors name the id, never the server's path (the log has it)."""
        record = self.document(doc_id)
        path = self.image_file(doc_id, record)
        s = self.settings
        try:
            return decode_image(path, max(1, record.width * record.height), max_side=s.decode_side,
                                max_bytes=s.decode_bytes, name=f"indexed image {echo(doc_id)}")[0]  # fmt: skip
        except ImageError as exc:
            log.warning("indexed image %r (%s) cannot be decoded: %s", doc_id, path, exc.reason)
            raise

    def thumbnail(self, doc_id: str) -> bytes:
        """A JPEG no larger than ``thumb_size`` (cached in memory per index version)."""
        return self._thumbs(doc_id, self.settings.thumb_size)

    def _make_thumbnail(self, doc_id: str, size: int) -> bytes:
        image = heatmap.fit(self.indexed_image(doc_id), size)
        import io

        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=85)
        return buf.getvalue()

    def heatmap_png(self, doc_id: str, word: str) -> bytes:
        """PNG of an indexed image with ``word``'s activation drawn over it.

        The word's patch grid is cached (keyed by bundle, index version, id and word), so a page
        that toggles heatmaps on a result list encodes each image once; only the drawing is redone.
        """
        canonical = self.canonical(word)
        if canonical is None:
            raise InputError(f"{echo(word)} is not a word of the vocabulary", "word")
        image = self.indexed_image(doc_id)
        key = cache_key(self.settings.cache_prefix, "heat", (self.bundle.version, self.searcher.info.index_version),
                        {"id": doc_id, "word": canonical})  # fmt: skip
        cached = self.cache.get(key, "heatmap")
        if cached is not None:
            grid = np.asarray(cached, dtype=np.float32)  # [gh, gw]
        else:
            _, patches = self.bundle.encode_images_dense([image], patches=True)  # [1, P, V]
            grid = self.bundle.word_heatmaps(patches[0], [self.bundle.vocab.index(canonical)])[0]
            self.cache.set(key, grid.astype(float).tolist(), "heatmap")
        _, box = self.bundle.image_spec.letterbox(image)
        return heatmap.to_png(heatmap.overlay(heatmap.fit(image, 512), grid, box, self.bundle.config.image_size))

    # ---- index generations ------------------------------------------------------------------
    def reload(self) -> tuple[bool, str]:
        """Switch to a newly published generation if its bundle version matches ours."""
        with self._reload_lock:
            from indexer.searcher import BundleMismatchError

            before = self.searcher.info.index_version
            try:
                switched = self.searcher.refresh(require_bundle=self.bundle)
            except BundleMismatchError as exc:
                metrics.RELOADS.labels("refused").inc()
                return False, f"published index refused ({exc}); serving {self.bundle.version}, kept {before}"
            except Exception as exc:  # a broken generation must not take the service down
                metrics.RELOADS.labels("error").inc()
                log.exception("index refresh failed")
                return False, f"refresh failed: {exc}"
            after = self.searcher.info.index_version
            if switched:
                metrics.RELOADS.labels("switched").inc()
                metrics.INDEX_DOCUMENTS.set(self.searcher.info.doc_count)
                self._thumbs.cache_clear()
                log.info("switched index %s -> %s", before, after)
                return True, f"switched from {before} to {after}"
            return False, f"already serving the newest index {after}"

    def readiness(self) -> ReadinessResult:
        """What ``/readyz`` reports."""
        from indexer.metadata import bundle_mismatch

        info = self.searcher.info
        problem = bundle_mismatch(info, self.bundle)
        ready = problem is None
        return ReadinessResult(ready, self.bundle.version, info.index_version, info.bundle_version, info.doc_count,
                               self.bundle.providers, self.cache.available, None if ready else f"the index was {problem}")  # fmt: skip

    def close(self) -> None:
        """Release the searcher and the cache connection."""
        self.searcher.close()
        self.cache.close()
        self._text_encoder.close()


class TooLarge(InputError):
    """A request over a size limit (HTTP 413): the message names the limit."""


class UploadTooLarge(TooLarge):
    """An upload over the byte limit."""


class BatchTooLarge(TooLarge):
    """More inputs in one request than the configured batch limit."""


def _ignored_note(edited: EditedQuery) -> str:
    return f" (not in the vocabulary: {echo_words(edited.ignored)})" if edited.ignored else ""


def unencoded_words(pre: TextPreprocessor, text: str) -> list[str]:
    """The words of ``text`` that the text encoder does not read whole, in order and as written.

    The preprocessor keeps the first ``max_caption_tokens`` tokens of a caption (and warns); a
    word with any token after them is listed. Empty when the whole text fits. The text is prepared
    and tokenized as :meth:`models.preprocess.TextPreprocessor.caption_ids` does it, and the
    tokenizer's character offsets place the first token left out in it.
    """
    prepared = text.lower() if pre.lowercase else text.strip()
    tokens = pre.tokenizer.encode(prepared, add_special_tokens=False)
    budget = pre.max_caption_tokens
    if len(tokens.ids) <= budget:
        return []
    cut = tokens.offsets[budget][0]  # where the first token left out starts in ``prepared``
    spans = [m.span() for m in re.finditer(r"\S+", prepared)]
    first = next((i for i, (_, end) in enumerate(spans) if end > cut), len(spans))
    words = text.split()
    return words[first:] if len(words) == len(spans) else [prepared[a:b] for a, b in spans[first:]]


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


def pixel_limit_error(data: bytes, max_pixels: int, name: str) -> ImageError | None:
    """The service's "too large" answer for an image Pillow refused by its size, in the words
    :func:`models.preprocess.decode_image` uses for ``max_pixels``: with the declared size, or
    "over" Pillow's ceiling where no header can be read without Pillow's check. ``None`` when the
    declared size is within ``max_pixels`` (a frame, not the image, was too large: Pillow's
    answer stands)."""
    size = declared_size(data)
    if size is None:
        return ImageError(name, f"too large: over {PILLOW_MAX_PIXELS} pixels exceeds the limit of {max_pixels}")
    if size[0] * size[1] <= max_pixels:
        return None
    return ImageError(name, f"too large: {size[0]}x{size[1]} pixels exceeds the limit of {max_pixels}")


def _image_hit(hit, record) -> ImageHit:
    return ImageHit(hit.doc_id, float(hit.score), record.width if record else 0, record.height if record else 0, hit.matches)
