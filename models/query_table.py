"""Inference-free query encoding: a query's vector from the tokenizer and a table, no text ONNX call.

The table (``QUERY_TABLE_FILE`` in a bundle, made by :func:`build_query_table`) holds one row per
vocabulary word a person can type as one whole word: the bundle's own text tower run on that word
alone (in the bundle's prompt), its ``row_k`` strongest words with their raw weights -- the
word's learned importance and its expansion words -- plus the typed words the floor keeps.

A query is tokenized as the text tower's preprocessor does it (lower-casing, the token budget), and
its whole words are found as ``models.towers.ExactWords`` finds them: a token that is a lexical
dimension and that the next token does not continue ("pen" of "pen ##guin" is not the word "pen");
a plural also types its singular. The rows of its distinct words are combined by element-wise
max (``COMBINE``; see below), the typed-word floor
(``text.exact_floor``) is applied to the combined vector exactly as the tower applies it, and
``Bundle.text_vectors`` keeps the top-k and the typed words as for the encoder's output. A one-word
query therefore gets the text tower's own vector; a longer one loses what the words say to each
other (context), nothing else.

Max or sum: ``docs/query-modes.md`` (``lexvla report --query-modes-only``) measures both on the
trained default; neither wins on every set there. The max is the default because it keeps weights
on the tower's scale, so the floor's share of the strongest word means what it means in the tower,
and a repeated word changes nothing.

Words the vocabulary splits into pieces ("giraffe" -> "gi ##raf ##fe") have a row when they were
given to the build (``extra_words``: the pipeline gives the training captions' words, see
:func:`split_words`); other such words and numbers get no weight, and
:meth:`QueryTable.unknown_words` lists them as written (``Bundle.unknown_words``). Function words
(``models.vocab.STOPWORDS``) are no dimension in either mode and are not listed.

The table is derived from the bundle and, like ``text_encoder.int8.onnx``, not part of its version
(the index holds image vectors only); it records the version and the text encoder it was made from,
and ``Bundle(query_mode="table")`` refuses it for any other. Building it runs the bundle's own ONNX
text encoder (no torch); using it needs numpy and tokenizers only.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.preprocess import TextPreprocessor
from models.vocab import STOPWORDS

log = logging.getLogger(__name__)

QUERY_TABLE_FILE = "query_table.npz"
TABLE_FORMAT = 1
COMBINES = ("max", "sum")
COMBINE = "max"  # see the module docstring; lexvla.report's "inference-free query mode" section measures it


class QueryTableError(RuntimeError):
    """A table that is missing, malformed or made from another bundle."""


@dataclass
class QueryTable:
    """Per-word rows in CSR form, the token tables that find a query's words, and the metadata.

    ``indptr [V+E+1]``, ``indices``, ``weights``: row ``j < V`` (vocabulary dimension ``j``) is the
    text tower's raw output for word ``j`` alone, strongest first (empty: no row for that word);
    row ``V + e`` is that of extra word ``e``, a word the tokenizer splits into pieces ("teapot" ->
    "tea ##pot"), whose token ids are ``extra_tokens[extra_ptr[e]:extra_ptr[e+1]]``.
    ``token_dim``/``lemma_dim`` ``[T]``: 1 + the dimension of tokenizer id ``t`` and of its singular
    (0: none); ``continues [T]``: ``t`` continues the previous token's word
    (``models.vocab.Vocabulary.token_tables``).
    """

    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray
    token_dim: np.ndarray
    lemma_dim: np.ndarray
    continues: np.ndarray
    extra_ptr: np.ndarray
    extra_tokens: np.ndarray
    meta: dict[str, Any]

    ARRAYS = ("indptr", "indices", "weights", "token_dim", "lemma_dim", "continues", "extra_ptr", "extra_tokens")

    def __post_init__(self) -> None:
        if self.combine not in COMBINES:
            raise QueryTableError(f"combine must be one of {COMBINES}, not {self.combine!r}")
        if len(self.indptr) != self.vocab_size + len(self.extra_ptr):
            raise QueryTableError(f"{len(self.indptr) - 1} rows for {self.vocab_size} words and {len(self.extra_ptr) - 1} extra words")
        ptr, toks = self.extra_ptr.tolist(), self.extra_tokens.tolist()
        self._extra = {tuple(toks[ptr[e] : ptr[e + 1]]): self.vocab_size + e for e in range(len(ptr) - 1)}
        self._lengths = np.diff(self.indptr)

    # ---- metadata ------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def combine(self) -> str:
        return str(self.meta.get("combine", COMBINE))

    @property
    def exact_floor(self) -> float:
        return float(self.meta["exact_floor"])

    @property
    def typed(self) -> bool:
        """Whether the text tower reports typed words (it has a floor): ``encode`` then returns the mask."""
        return bool(self.meta["typed"])

    @property
    def bundle_version(self) -> str:
        return str(self.meta["bundle_version"])

    @property
    def rows(self) -> int:
        """Words with a row (vocabulary words and extra words)."""
        return int((self._lengths > 0).sum())

    def row(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, raw weights)`` of row ``index`` (a dimension, or ``V + e`` for extra word ``e``; empty: no row)."""
        start, end = self.indptr[index], self.indptr[index + 1]
        return self.indices[start:end], self.weights[start:end]

    # ---- files ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the table (atomically: a temporary file, then a rename)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{k: getattr(self, k) for k in self.ARRAYS},
                                meta=np.array(json.dumps(self.meta, sort_keys=True)))  # fmt: skip
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> QueryTable:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as doc:
                arrays = {k: doc[k] for k in cls.ARRAYS}
                meta = json.loads(str(doc["meta"]))
        except (OSError, KeyError, ValueError) as exc:
            raise QueryTableError(f"{path}: not a query table ({exc})") from exc
        if meta.get("format") != TABLE_FORMAT:
            raise QueryTableError(f"{path}: query table format {meta.get('format')}, this code reads {TABLE_FORMAT}")
        return cls(**arrays, meta=meta)

    # ---- queries -------------------------------------------------------------------------------
    def words(self, pre: TextPreprocessor, text: str) -> tuple[list[int], np.ndarray]:
        """``(rows, typed dims)`` of a caption: the distinct rows of its words, in order, and its
        typed words as ``ExactWords`` finds them (whole-word tokens that are dimensions, and their
        singulars).

        Raises ``InputError`` for an empty caption, and warns and truncates a long one, exactly as
        the text tower's preprocessing does.
        """
        seq = np.asarray(pre.encode(text), dtype=np.int64)
        head, tail = pre.template_tokens
        caption = seq[head : len(seq) - tail]
        following = np.zeros(len(caption), bool)  # the token after each caption token continues it
        after = seq[head + 1 : head + 1 + len(caption)]
        following[: len(after)] = self.continues[after]
        dims = self.token_dim[caption] * ~following  # 1 + dim of whole words, 0 elsewhere
        whole = dims[dims > 0]
        lemmas = self.lemma_dim[caption][dims > 0]
        typed = np.unique(np.concatenate([whole, lemmas[lemmas > 0]]) - 1)
        rows: dict[int, None] = {}
        starts = [i for i in range(len(caption)) if i == 0 or not self.continues[caption[i]]]
        for a, b in zip(starts, [*starts[1:], len(caption)], strict=True):
            if b - a == 1:
                index = int(dims[a]) - 1  # a whole word (or -1)
            else:
                index = self._extra.get(tuple(caption[a:b].tolist()), -1)
            if index >= 0 and self._lengths[index]:
                rows[index] = None
        return list(rows), typed

    def encode(self, pre: TextPreprocessor, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Captions -> lexical ``[B,V]`` and the typed-word mask ``[B,V]`` (``None`` when the text
        tower has no floor), the same contract as ``Bundle.encode_texts_typed``."""
        dense = np.zeros((len(texts), self.vocab_size), np.float32)
        mask = np.zeros((len(texts), self.vocab_size), bool) if self.typed else None
        floor = np.float32(self.exact_floor)
        for b, text in enumerate(texts):
            rows, typed = self.words(pre, text)
            vec = dense[b]
            for index in rows:
                start, end = self.indptr[index], self.indptr[index + 1]
                ids, vals = self.indices[start:end], self.weights[start:end]
                if self.combine == "max":
                    vec[ids] = np.maximum(vec[ids], vals)
                else:
                    vec[ids] += vals
            if mask is not None and typed.size:
                mask[b, typed] = True
                if floor:  # models.towers.TextTower.from_hidden: typed words weigh >= floor x the strongest word
                    vec[typed] = np.maximum(vec[typed], floor * vec.max())
        return dense, mask

    def covers(self, pre: TextPreprocessor, words: Sequence[str]) -> bool:
        """Whether every one of ``words`` that would get an extra row (``build_query_table``'s
        ``extra_words``: one word of several tokens) has one."""
        return all(key is None or key in self._extra for key in (_extra_key(pre, self.continues, w) for w in words))

    def unknown_words(self, pre: TextPreprocessor, text: str) -> list[str]:
        """The words of ``text`` (within the token budget) that get no weight in table mode: no row
        of theirs, and not a typed word the floor holds up. Function words and what says nothing
        (``says_something``: numbers, punctuation, one letter) are not listed; words of any script
        and emoji are. Each word as the preprocessor prepared it (lower-cased when the bundle
        lower-cases), in order, once."""
        prepared = text.lower() if pre.lowercase else text.strip()
        encoding = pre.tokenizer.encode(prepared, add_special_tokens=False)
        ids, offsets = encoding.ids[: pre.max_caption_tokens], encoding.offsets[: pre.max_caption_tokens]
        floored = self.typed and self.exact_floor > 0
        out: list[str] = []
        for a, b in _groups(ids, self.continues):
            word = prepared[offsets[a][0] : offsets[b - 1][1]]
            index = int(self.token_dim[ids[a]]) - 1 if b - a == 1 else self._extra.get(tuple(ids[a:b]), -1)
            if index >= 0 and (self._lengths[index] or floored):
                continue
            if not says_something(word) or word.lower() in STOPWORDS or word in out:
                continue
            out.append(word)
        return out


def _groups(ids: list[int], continues: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of each word of a token sequence: a token and the tokens that continue it."""
    starts = [i for i in range(len(ids)) if i == 0 or not continues[ids[i]]]
    return list(zip(starts, [*starts[1:], len(ids)], strict=True))


def split_words(bundle, texts, min_count: int = 1) -> list[str]:
    """The words of ``texts`` that ``bundle``'s tokenizer splits into pieces (candidates for extra
    rows, ``build_query_table(extra_words=...)``): alphabetic, of at least 3 letters, no function word,
    seen at least ``min_count`` times; most frequent first."""
    from collections import Counter

    pre = bundle.text_preprocessor
    continues = token_tables(bundle)[2]
    counts: Counter[str] = Counter()
    for text in texts:
        prepared = text.lower() if pre.lowercase else text.strip()
        encoding = pre.tokenizer.encode(prepared, add_special_tokens=False)
        for a, b in _groups(encoding.ids, continues):
            word = prepared[encoding.offsets[a][0] : encoding.offsets[b - 1][1]]
            if b - a > 1 and len(word) >= 3 and word.isalpha() and word.lower() not in STOPWORDS:
                counts[word] += 1
    return [w for w, n in counts.most_common() if n >= min_count]


def token_tables(bundle) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(token_dim, lemma_dim, continues)`` of a bundle's tokenizer and vocabulary, as the text tower's
    ``ExactWords`` has them (``models.vocab.Vocabulary.token_tables``)."""
    tokenizer = bundle.text_preprocessor.tokenizer
    special = {tok.content for tok in tokenizer.get_added_tokens_decoder().values() if tok.special}
    return bundle.vocab.token_tables(tokenizer.get_vocab(with_added_tokens=True), special)


_LETTER = re.compile(r"[^\W\d_]")


def says_something(word: str) -> bool:
    """A word a reader would miss if it were dropped: two or more characters with a letter of any
    script, or any pictograph (an emoji is one character of category So). Numbers and punctuation
    alone are not listed."""
    import unicodedata

    if any(unicodedata.category(c) == "So" for c in word):
        return True
    return len(word) >= 2 and bool(_LETTER.search(word))


def _exact_floor(bundle, requested: float | None) -> float:
    """The text tower's ``exact_floor``: ``requested``, else the bundle's ``extra`` note (derived
    exports record it), else its model card's. Not in ``bundle.json`` itself."""
    if requested is not None:
        return float(requested)
    if "exact_floor" in bundle.config.extra:
        return float(bundle.config.extra["exact_floor"])
    from models.registry import CardError, load_card

    try:
        return float(load_card(bundle.config.card).text.exact_floor)
    except (CardError, OSError, ValueError, TypeError) as exc:
        raise QueryTableError(f"{bundle.path}: the text tower has a typed-word floor and its card {bundle.config.card!r} "
                              f"cannot be read ({exc}); give the floor (text.exact_floor) with --exact-floor") from exc  # fmt: skip


def build_query_table(path: str | Path, row_k: int | None = None, combine: str = COMBINE, exact_floor: float | None = None,
                      words: list[str] | None = None, extra_words: Sequence[str] = (), batch_size: int = 256,
                      threads: int = 0) -> Path:  # fmt: skip
    """Write ``QUERY_TABLE_FILE`` into the bundle at ``path`` with the bundle's own ONNX text encoder.

    Parameters
    ----------
    row_k : words kept per row (default: the bundle's ``text_top_k``). Table mode gives a query at
        most this many words per row: a ``query_top_k`` above ``text_top_k`` wants a larger one.
    combine : how a query's rows are combined, ``"max"`` (default) or ``"sum"``.
    exact_floor : the text tower's typed-word floor (default: the bundle's ``extra`` note, else its
        model card's ``text.exact_floor``); checked against every row.
    words : rows for these vocabulary words only (tests); default: every word a person can type whole.
    extra_words : words the tokenizer splits into pieces ("teapot") that get a row too, e.g. the
        training captions' (:func:`split_words`); others are ignored.
    """
    from models.bundle import FILES, Bundle, file_sha256
    from models.sparse import sparsify

    if combine not in COMBINES:
        raise QueryTableError(f"combine must be one of {COMBINES}, not {combine!r}")
    started = time.monotonic()
    bundle = Bundle(path, device="cpu", threads=threads)
    pre, vocab = bundle.text_preprocessor, bundle.vocab
    row_k = int(row_k or bundle.config.text_top_k)
    token_dim, lemma_dim, continues = token_tables(bundle)
    dims = range(len(vocab)) if words is None else [d for d in (vocab.index(w) for w in words) if d is not None]
    # a word has a row when the preprocessor reads it as exactly its own token (a whole word) ...
    texts = {j: vocab.words[j] for j in dims if _token_ids(pre, vocab.words[j]) == (vocab.token_ids[j],)}
    # ... an extra word when it is one word of several tokens, none of them a row already
    extra: dict[tuple[int, ...], str] = {}
    for word in extra_words:
        if (key := _extra_key(pre, continues, word)) is not None:
            extra.setdefault(key, word)
    keys = list(extra)
    texts |= {len(vocab) + e: extra[key] for e, key in enumerate(keys)}
    order = sorted(texts, key=lambda j: len(_token_ids(pre, texts[j])))  # batches of one length: no padding
    rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    typed_out = False
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        dense, typed = bundle.encode_texts_typed([texts[j] for j in batch])
        typed_out = typed is not None
        for j, vec in zip(batch, sparsify(dense, row_k, normalize=False, keep=typed), strict=True):
            rows[j] = (vec.ids.astype(np.int32), vec.weights.astype(np.float32))
    floor = _exact_floor(bundle, exact_floor) if typed_out else 0.0
    if typed_out and not 0.0 < floor <= 1.0:
        raise QueryTableError(f"{bundle.path}: the text tower keeps typed words, so its floor is in (0, 1], not {floor}")
    for j, (ids, vals) in rows.items():  # each row's typed word already weighs >= floor x its strongest (the tower did it)
        own = vals[ids == j]
        if own.size and own[0] < floor * vals[0] * (1 - 1e-4):
            raise QueryTableError(f"{bundle.path}: {vocab.words[j]!r} alone weighs {own[0] / vals[0]:.3f} of its strongest "
                                  f"word, under the floor {floor}: did the card change since export? give --exact-floor")  # fmt: skip
    counts = np.zeros(len(vocab) + len(keys) + 1, np.int64)
    for j, (ids, _) in rows.items():
        counts[j + 1] = len(ids)
    filled = sorted(rows)
    table = QueryTable(
        indptr=np.cumsum(counts),
        indices=np.concatenate([rows[j][0] for j in filled]) if filled else np.zeros(0, np.int32),
        weights=np.concatenate([rows[j][1] for j in filled]) if filled else np.zeros(0, np.float32),
        token_dim=token_dim.astype(np.int32), lemma_dim=lemma_dim.astype(np.int32), continues=continues.astype(bool),
        extra_ptr=np.cumsum([0] + [len(k) for k in keys]).astype(np.int64),
        extra_tokens=np.asarray([t for k in keys for t in k], dtype=np.int32),
        meta={"format": TABLE_FORMAT, "bundle_version": bundle.version, "vocab_size": len(vocab),
              "text_encoder_sha256": file_sha256(bundle.path / FILES["text_encoder"]), "row_k": row_k,
              "combine": combine, "exact_floor": floor, "typed": typed_out,
              "word_rows": sum(1 for j in rows if j < len(vocab)), "extra_rows": len(keys)},
    )  # fmt: skip
    out = table.save(bundle.path / QUERY_TABLE_FILE)
    log.info("%s: %d word rows and %d extra-word rows of at most %d words in %.1f s (%.1f MB)", out,
             table.meta["word_rows"], len(keys), row_k, time.monotonic() - started, out.stat().st_size / 1e6)  # fmt: skip
    return out


def _extra_key(pre: TextPreprocessor, continues: np.ndarray, word: str) -> tuple[int, ...] | None:
    """The tokens of ``word`` when it is one word of several tokens (a candidate for an extra row),
    else ``None``."""
    tokens = _token_ids(pre, word)
    if len(tokens) > 1 and not continues[tokens[0]] and all(continues[t] for t in tokens[1:]):
        return tokens
    return None


def with_wordnet(bundle, words: list[str]) -> list[str]:
    """``words`` and, after them, WordNet's one-word nouns, verbs and adjectives that ``bundle``'s
    tokenizer splits into pieces (:func:`split_words`), each once. Raises ``FileNotFoundError``
    without Debian's wordnet-base."""
    from models.data.wordnet import single_words

    known = set(words)
    return [*words, *(w for w in split_words(bundle, single_words()) if w not in known)]


def _token_ids(pre: TextPreprocessor, word: str) -> tuple[int, ...]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a long "word" is truncated: it is no word then
            ids = pre.caption_ids(word)
    except ValueError:
        return ()
    return tuple(ids) if len(ids) < pre.max_caption_tokens else ()
