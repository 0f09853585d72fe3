"""Search: queries encoded (through the cache and the micro-batcher), edited, searched and explained.

Text search (:meth:`Search.search_text`), image-to-image search with an uploaded image's words
(:meth:`Search.search_image`), and the sparse vectors of texts as text search sends them to the
index (:meth:`Search.embed_texts`). Each request reads the index through one snapshot: its hits,
their records and the version it reports (and caches under) come from one generation.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from PIL import Image

from indexer.ann import AnnMissingError, AnnSearch
from indexer.protocols import Searcher, Snapshot
from models.batching import MicroBatcher
from models.bundle import Bundle
from models.preprocess import TextPreprocessor
from models.sparse import SparseVector, quantize_weights
from service.cache import ResilientCache, cache_key
from service.config import Settings
from service.echo import cut, echo_words
from service.exceptions import InputError
from service.limits import check_batch
from service.query import QueryEdits, apply_edits, merge_edits, parse_inline
from service.results import ImageHit, ImageSearchResult, TextQuery, TextSearchResult, Versions
from service.timing import StageTimer

__all__ = ["Search", "vocabulary_entry", "unencoded_words"]

Words = list[str] | tuple[str, ...]


class Search:
    """Encodes queries, searches the published index and explains the hits.

    Parameters
    ----------
    settings : service settings (limits, cache prefix, micro-batching).
    bundle, searcher, cache : the engine's open components.
    """

    def __init__(self, settings: Settings, bundle: Bundle, searcher: Searcher, cache: ResilientCache):
        self.settings, self.bundle, self.searcher, self.cache = settings, bundle, searcher, cache
        # concurrent queries are encoded together, in one ONNX call (dynamic micro-batching)
        self._text_encoder = MicroBatcher(
            self._encode_batch, settings.encode_max_batch, settings.encode_max_wait_ms / 1000, name="encode"
        )

    def close(self) -> None:
        self._text_encoder.close()

    # ---- words and limits -------------------------------------------------------------------
    def canonical(self, word: str) -> str | None:
        """The vocabulary's spelling of ``word`` or ``None`` when it is not a dimension."""
        entry = vocabulary_entry(self.bundle, word)
        return None if entry is None else entry[1]

    def dimension(self, word: str) -> int:
        """The vocabulary dimension of a word the encoder produced."""
        dim = self.bundle.vocab.index(word)
        if dim is None:
            raise KeyError(f"{word!r} is not a word of the vocabulary")
        return dim

    def check_k(self, k: int | None) -> int:
        """``k`` or the default, validated against the configured range."""
        s = self.settings
        k = s.k_default if k is None else k
        if not s.k_min <= k <= s.k_max:
            raise InputError(f"k must be between {s.k_min} and {s.k_max}, got {cut(str(k), 20)}", "k")
        return k

    def check_words(self, n: int, what: str) -> None:
        """Refuse a query of more than ``max_query_words`` words (each one is a Lucene clause)."""
        limit = self.settings.max_query_words
        if n > limit:
            raise InputError(f"the query has {n} {what}; the limit is {limit} words (LEXVLA_MAX_QUERY_WORDS)", "query")

    @property
    def token_budget(self) -> int:
        """Tokens of a text the text encoder reads (the bundle's ``max_caption_tokens``)."""
        return self.bundle.text_preprocessor.max_caption_tokens

    def not_encoded(self, text: str) -> list[str]:
        """The words of ``text`` past the text encoder's token budget (:func:`unencoded_words`)."""
        return unencoded_words(self.bundle.text_preprocessor, text)

    def left_out(self, text: str, ignored: Words = ()) -> list[tuple[str, str]]:
        """``(word, why)`` for every word of a query that gets no weight of its own: past the token
        budget, without a row of the query table (table mode), unknown to the tokenizer or without
        a vocabulary dimension (encoder mode), or an edit (``+w``, ``-w``, ``w^2``) of a word that
        is not in the vocabulary. Function words, numbers and punctuation are not listed."""
        out = [(w, f"past the text encoder's token budget ({self.token_budget} tokens)") for w in self.not_encoded(text)]
        if text.strip():
            if self.bundle.query_table is not None:
                out += [(w, NO_ROW) for w in self.bundle.unknown_words(text)]
            else:
                out += unweighted_words(self.bundle, text)
        out += [(w, NOT_IN_VOCABULARY) for w in ignored]
        return list(dict.fromkeys(out))

    # ---- text encoding ----------------------------------------------------------------------
    @property
    def encoding(self) -> dict:
        """How an encoded text becomes the query vector (``Bundle.encode_texts``): part of every cache
        key of encodings and results, so changing a setting never serves the other setting's answers."""
        return self.settings.query_encoding(self.bundle.config.text_top_k)

    def encode_text(self, text: str) -> tuple[dict[str, float], str]:
        """``({word: weight}, cache outcome)`` of a caption, through the encoding cache."""
        return self.encode_texts([text])[0]

    def encode_texts(self, texts: list[str]) -> list[tuple[dict[str, float], str]]:
        """``({word: weight}, cache outcome)`` of each caption, through the encoding cache; the
        captions not in the cache are encoded in one batch. The query top-k applies: these are the
        vectors text search sends to the index."""
        keys = [cache_key(self.settings.cache_prefix, "enc", (self.bundle.text_encoder_id,), {"text": t, **self.encoding}) for t in texts]
        out: list[tuple[dict[str, float], str] | None] = []
        for key in keys:
            cached = self.cache.get(key, "encode")
            out.append(None if cached is None else (dict(cached), "hit"))
        missing = [i for i, found in enumerate(out) if found is None]
        if missing:
            # one query: through the micro-batcher, with the queries of other requests; a batch
            # request is one ONNX call already. Table mode has no model call to share: it encodes
            # in the request's own thread (queueing it behind others only added waiting).
            batched = len(missing) == 1 and self.bundle.query_mode == "encoder"
            vectors = ([self._text_encoder(texts[missing[0]])] if batched
                       else self.bundle.encode_texts([texts[i] for i in missing], **self.encoding))  # fmt: skip
            outcome = "miss" if self.cache.available else "off"
            for i, vec in zip(missing, vectors, strict=True):
                weights = vec.words(self.bundle.words)
                self.cache.set(keys[i], list(weights.items()), "encode")
                out[i] = (weights, outcome)
        return [found for found in out if found is not None]

    def _encode_batch(self, texts: list[str]) -> list[SparseVector | InputError]:
        """One ONNX call for the captions of a batch; a caption the preprocessor refuses fails alone."""
        try:
            vectors: list[SparseVector | InputError] = [*self.bundle.encode_texts(texts, **self.encoding)]
            return vectors
        except InputError:
            if len(texts) == 1:
                raise
        out: list[SparseVector | InputError] = []
        for text in texts:
            try:
                out.append(self.bundle.encode_texts([text], **self.encoding)[0])
            except InputError as exc:
                out.append(exc)
        return out

    def embed_texts(self, texts: list[str], quantized: bool = False, truncate: bool = False) -> list[Mapping[str, float]]:
        """Each text's ``{word: weight}`` exactly as text search queries the index (the text as it
        is: no query operators), or its integer impacts with ``quantized``.

        A text longer than the text encoder reads (:meth:`not_encoded`) is refused (422, naming
        the token budget and the words left over) unless ``truncate``: then its first tokens are
        encoded, as TEI's ``truncate`` does.
        """
        check_batch(len(texts), self.settings.max_embed_texts, "texts", "LEXVLA_MAX_EMBED_TEXTS")
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
        scale = self.bundle.config.quant_scale
        vectors: list[Mapping[str, float]] = [quantize_weights(w, scale) if quantized else w for w, _ in self.encode_texts(texts)]
        for i, vec in enumerate(vectors):
            if not vec:  # nothing to send to an index: say which words gave nothing, and why
                raise InputError(f"inputs[{i}] gives no word a weight" + _left_out_note(self.left_out(texts[i])), "inputs")
        return vectors

    def embed_left_out(self, texts: list[str]) -> list[list[tuple[str, str]]]:
        """For each text of ``embed_texts``: the words that gave no weight of their own, with why (``left_out``)."""
        return [self.left_out(text) for text in texts]

    # ---- search -----------------------------------------------------------------------------
    def parse(self, query: str, boost: dict[str, float] | None = None, exclude: Words = (), require: Words = ()) -> QueryEdits:
        """Validate a query and split it into text and word-space edits."""
        if len(query) > self.settings.max_query_chars:
            raise InputError(f"query is {len(query)} characters; the limit is {self.settings.max_query_chars} "
                             "(LEXVLA_MAX_QUERY_CHARS)", "query")  # fmt: skip
        edits = merge_edits(parse_inline(query), boost, exclude, require)
        if not edits.text and not edits.boosts:
            raise InputError("empty query: give at least one word (or a +word to search for)", "query")
        self.check_words(len(edits.boosts) + len(edits.excludes), "boosted or excluded words")
        return edits

    def search_path(self, path: str | None) -> tuple[str, dict, AnnSearch | None]:
        """``(path, its settings as a cache-key part, the approximate search's settings or None)``
        for a request on ``path`` (``None``: the service's ``search_path``)."""
        path = path or self.settings.search_path
        ann = self.settings.ann_search(path)
        return path, {"path": path, **(ann.to_json() if ann is not None else {})}, ann

    def search_text(
        self, query: str, k: int | None = None, boost: dict[str, float] | None = None, exclude: Words = (),
        require: Words = (), path: str | None = None,
    ) -> TextSearchResult:  # fmt: skip
        """Encode ``query`` (inline ``+word``/``-word``/``word^2`` edits apply), edit, search, explain.

        The words of the text past the encoder's token budget are not encoded; the result lists
        them (``query.not_encoded``). ``path``: ``exact`` or ``approximate`` (default: the
        service's ``search_path``); the result says which answered.
        """
        timer = StageTimer()
        k = self.check_k(k)
        path, path_key, ann = self.search_path(path)
        edits = self.parse(query, boost, exclude, require)
        unsearchable = [w for w in edits.requires if self.canonical(w) is None]
        if unsearchable:  # hits without a required word would answer another question
            raise InputError(f"required words that are not in the vocabulary cannot be searched: {echo_words(unsearchable)}; "
                             "remove the + to let them count softly, or use another word", "query")  # fmt: skip
        left_out = self.not_encoded(edits.text) if edits.text else []
        with self.searcher.snapshot() as snap:  # one generation for the whole request, reloads or not
            versions = Versions(self.bundle.version, snap.version)
            key = cache_key(
                self.settings.cache_prefix, "hits", (self.bundle.text_encoder_id, versions.index),
                {**edits.normalized(), "k": k, **self.encoding, **path_key},
            )
            with timer("cache"):
                cached = self.cache.get(key, "results")
            if cached is not None:
                hit = TextSearchResult.from_cache(cached, timer.total(), {"encode": "skipped", "results": "hit"}, left_out)
                hit.query.left_out[:] = self.left_out(edits.text, hit.query.edited.ignored)
                return hit
            with timer("encode"):
                encoded, enc_outcome = self.encode_text(edits.text) if edits.text else ({}, "skipped")
            with timer("edit"):
                edited = apply_edits(encoded, edits, self.canonical)
            if not edited.weights:
                raise InputError("the query has no words left after the edits" + _left_out_note(self.left_out(edits.text, edited.ignored)),
                                 "query")  # fmt: skip
            self.check_words(len(edited.weights) + len(edited.excluded), "words after the edits (excluded words included)")
            hits = self._search(snap, edited.weights, k, edited.excluded, (), timer, edited.required, ann)
        result = TextSearchResult(hits, TextQuery(edits.text, encoded, edited, left_out, self.left_out(edits.text, edited.ignored)),
                                  versions, path=path)  # fmt: skip
        self.cache.set(key, result.to_cache(), "results")  # keyed by the version the hits came from
        outcome = "miss" if self.cache.available else "off"
        return TextSearchResult(hits, result.query, versions, timer.total(), {"encode": enc_outcome, "results": outcome}, path)

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
        _, _, ann = self.search_path(None)
        with self.searcher.snapshot() as snap:
            hits = self._search(snap, edited.weights, k + len(exclude_ids), edited.excluded, exclude_ids, timer, (), ann)[:k]
            versions = Versions(self.bundle.version, snap.version)
        return ImageSearchResult(hits, edited.weights, versions, timer.total())

    def _search(
        self, snap: Snapshot, query: dict[str, float], k: int, exclude_words: Words, exclude_ids: tuple[str, ...],
        timer: StageTimer, require_words: Words = (), ann: AnnSearch | None = None,
    ) -> list[ImageHit]:  # fmt: skip
        """Search ``snap`` (hits carry every required word and no excluded one; exact, or with
        ``ann`` approximate), explain; stages ``search`` and ``explain``."""
        with timer("search"):
            try:
                hits = snap.search(query, k=k, exclude=tuple(exclude_words), require=tuple(require_words), ann=ann)
            except AnnMissingError as exc:
                raise InputError(f"{exc} (send path: exact)", "path") from exc
            hits = [h for h in hits if h.doc_id not in exclude_ids]
        with timer("explain"):
            out = []
            for h in hits:  # the snapshot already read each hit's metadata row to explain it; no second lookup
                record = h.record if h.record is not None else snap.document(h.doc_id)
                width, height = (record.width, record.height) if record is not None else (0, 0)
                out.append(ImageHit(h.doc_id, float(h.score), width, height, h.matches))
            return out


NO_ROW = "no row in the query table: table mode gives it no weight (LEXVLA_QUERY_MODE=encoder reads every word)"
UNKNOWN_TO_TOKENIZER = "unknown to the tokenizer: the text encoder reads it as [UNK]"
NO_DIMENSION = "not a word of the vocabulary: the text encoder read it, but it has no weight of its own"
NOT_IN_VOCABULARY = "an edit (+w, -w, w^f) of a word not in the vocabulary"


def unweighted_words(bundle: Bundle, text: str) -> list[tuple[str, str]]:
    """Encoder mode: the words of ``text`` (within the token budget) that cannot be in the query
    vector themselves, with why: every token unknown to the tokenizer, or not one whole-word token
    that is a vocabulary dimension (the tower's expansion may still add related words)."""
    from models.query_table import says_something
    from models.vocab import STOPWORDS

    pre = bundle.text_preprocessor
    prepared = text.lower() if pre.lowercase else text.strip()
    encoding = pre.tokenizer.encode(prepared, add_special_tokens=False)
    ids, offsets, tokens = (x[: pre.max_caption_tokens] for x in (encoding.ids, encoding.offsets, encoding.tokens))
    unk = pre.tokenizer.token_to_id("[UNK]")
    starts = [i for i, t in enumerate(tokens) if i == 0 or not t.startswith("##")]
    out: list[tuple[str, str]] = []
    for a, b in zip(starts, [*starts[1:], len(ids)], strict=True):
        word = prepared[offsets[a][0] : offsets[b - 1][1]]
        if not says_something(word) or word.lower() in STOPWORDS or any(word == w for w, _ in out):
            continue
        if unk is not None and all(i == unk for i in ids[a:b]):
            out.append((word, UNKNOWN_TO_TOKENIZER))
        elif b - a > 1 or bundle.vocab.index(tokens[a]) is None:
            out.append((word, NO_DIMENSION))
    return out


def vocabulary_entry(bundle: Bundle, word: str) -> tuple[int, str] | None:
    """``(dimension, the vocabulary's spelling)`` of ``word``, or ``None`` when it is not a dimension."""
    dim = bundle.vocab.index(word.strip())
    return None if dim is None else (dim, bundle.words[dim])


def _left_out_note(left_out: list[tuple[str, str]]) -> str:
    """The words that gave no weight, grouped by why (at most ``ECHO_ITEMS`` of each)."""
    if not left_out:
        return ""
    reasons = dict.fromkeys(why for _, why in left_out)
    return " (" + "; ".join(f"{echo_words([w for w, why in left_out if why == reason])}: {reason}" for reason in reasons) + ")"


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
