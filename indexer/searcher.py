"""Query-time access to a published index: Lucene impact search plus per-word explanations.

The scoring is Lucene's, on the integer impacts Anserini stored as term frequencies: a
``BooleanQuery`` of ``BoostQuery(TermQuery(contents:word), query_impact)`` SHOULD clauses under
Anserini's ``ImpactSimilarity`` (score = boost x stored impact) is exactly the integer dot product
of the quantised query and document vectors. This module talks to the Java classes through jnius
and never imports pyserini's Python package (which imports torch).
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from indexer import layout
from indexer.jvm import call_in_jvm, start_jvm
from indexer.layout import IndexNotFoundError
from indexer.lucene import CONTENTS_FIELD, ID_FIELD
from indexer.metadata import META_FILE, DocRow, MetadataReader, bundle_mismatch, resolve_path
from models.sparse import quantize_weights

__all__ = [
    "IndexNotFoundError", "IndexInfo", "DocRecord", "WordMatch", "Hit", "Snapshot", "LexicalSearcher", "BundleMismatchError",
    "score_share",
]  # fmt: skip

MAX_CLAUSES = 4096


@dataclass(frozen=True)
class IndexInfo:
    index_version: str
    bundle_version: str
    bundle_name: str
    quant_scale: float
    doc_count: int
    patch_grid: tuple[int, int]
    vocab_size: int
    created_at: str
    image_root: str | None = None  # relative image paths lie under it (indexer.metadata.resolve_path)


DocRecord = DocRow  # one indexed image, as the metadata stores it


@dataclass(frozen=True)
class WordMatch:
    """One shared word; weights are dequantised (impact / scale), contribution = their product."""

    word: str
    query_weight: float
    doc_weight: float
    contribution: float


def score_share(contribution: float, score: float) -> float:
    """The part of a hit's score one matched word makes (``contribution / score``; 0 for a zero score).

    The one definition: the API's ``share``, the page, the CLI and the report all use it.
    """
    return float(contribution) / float(score) if score else 0.0


@dataclass(frozen=True)
class Hit:
    """A result: ``score`` = Lucene's integer score / scale**2 = sum of the matches' contributions."""

    doc_id: str
    score: float
    matches: tuple[WordMatch, ...]
    record: DocRecord | None = field(default=None, compare=False, repr=False)  # the metadata row, already read

    def share(self, match: WordMatch) -> float:
        """:func:`score_share` of one of this hit's matches."""
        return score_share(match.contribution, self.score)


class _Java:
    """Lucene classes resolved once (``autoclass`` costs milliseconds each)."""

    def __init__(self):
        jnius = start_jvm()
        auto = jnius.autoclass
        self.paths = auto("java.nio.file.Paths")
        self.fs_directory = auto("org.apache.lucene.store.FSDirectory")
        self.directory_reader = auto("org.apache.lucene.index.DirectoryReader")
        self.index_searcher = auto("org.apache.lucene.search.IndexSearcher")
        self.impact_similarity = auto("io.anserini.search.similarity.ImpactSimilarity")
        self.boolean_builder = auto("org.apache.lucene.search.BooleanQuery$Builder")
        self.occur = auto("org.apache.lucene.search.BooleanClause$Occur")
        self.boost_query = auto("org.apache.lucene.search.BoostQuery")
        self.term_query = auto("org.apache.lucene.search.TermQuery")
        self.term = auto("org.apache.lucene.index.Term")
        self.index_searcher.setMaxClauseCount(MAX_CLAUSES)
        # one parse call builds the whole query: per-clause jnius calls (Term, TermQuery, BoostQuery,
        # add: 4 crossings a word) cost 2-6 ms for a 32-word query, the parse about 0.1 ms
        self.parser = auto("org.apache.lucene.queryparser.classic.QueryParser")(
            CONTENTS_FIELD, auto("org.apache.lucene.analysis.core.WhitespaceAnalyzer")()
        )


_JAVA: _Java | None = None
_JAVA_LOCK = threading.Lock()


def _java() -> _Java:
    global _JAVA
    with _JAVA_LOCK:
        if _JAVA is None:
            _JAVA = _Java()
        return _JAVA


class _Generation:
    """One opened generation: Lucene reader + searcher + metadata, closed when no search uses it."""

    def __init__(self, path: Path):
        self.path = path
        self.meta = MetadataReader(path / META_FILE)
        self.reader, self.searcher = call_in_jvm(_open_lucene, path / layout.LUCENE_DIR)
        raw = self.meta.info()
        self.info = IndexInfo(
            index_version=str(raw["index_version"]), bundle_version=str(raw["bundle_version"]),
            bundle_name=str(raw["bundle_name"]), quant_scale=float(raw["quant_scale"]),
            doc_count=int(raw["doc_count"]), patch_grid=tuple(raw["patch_grid"]),
            vocab_size=int(raw["vocab_size"]), created_at=str(raw["created_at"]), image_root=raw.get("image_root"),
        )  # fmt: skip
        self._users = 0
        self._retired = False
        self.closed = False
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            close = self._retired and self._users == 0
        if close:
            self._close()

    def retire(self) -> None:
        """Close now if idle, otherwise when the last in-flight search releases it."""
        with self._lock:
            self._retired = True
            close = self._users == 0
        if close:
            self._close()

    def _close(self) -> None:
        self.closed = True
        call_in_jvm(self.reader.close)
        self.meta.close()


class BundleMismatchError(RuntimeError):
    """A published generation was built with another bundle than the one required."""


class Snapshot:
    """One generation of the index, pinned until :meth:`close` (or the ``with`` block's end).

    Everything read through a snapshot -- search hits, document records, :attr:`info` and
    :attr:`version` -- comes from the same generation, even when a newer one is published and the
    searcher refreshes meanwhile: the generation stays open while any snapshot holds it and is
    closed when the last one is released. Get one with :meth:`LexicalSearcher.snapshot`.
    """

    def __init__(self, gen: _Generation):
        self._gen = gen  # already acquired for us
        self._released = False

    def _live(self) -> _Generation:
        if self._released:
            raise RuntimeError("snapshot is released")
        return self._gen

    @property
    def released(self) -> bool:
        return self._released

    @property
    def generation_closed(self) -> bool:
        """Whether the pinned generation's reader is closed (never while this snapshot holds it)."""
        return self._gen.closed

    @property
    def info(self) -> IndexInfo:
        return self._live().info

    @property
    def version(self) -> str:
        """The generation's ``index_version`` (what caches key their entries on)."""
        return self._live().info.index_version

    def search(self, query: Mapping[str, float], k: int = 10, exclude: Iterable[str] = ()) -> list[Hit]:
        """Top-``k`` documents for a ``{word: weight}`` query, each with its word matches.

        The query is quantised with the index's ``quant_scale`` (``models.sparse.quantize_weights``);
        words the index does not contain match nothing; documents containing any word of
        ``exclude`` are not returned.
        """
        return self.search_vector(quantize_weights(query, self.info.quant_scale), k, exclude)

    def search_vector(self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = ()) -> list[Hit]:
        """Like :meth:`search` with an already quantised query (e.g. a document's impacts)."""
        gen = self._live()
        q = _positive(impacts)
        scored = self.top(q, k, exclude)
        docs = gen.meta.get_many([doc_id for doc_id, _ in scored])
        scale = gen.info.quant_scale
        return [_hit(doc_id, score, q, docs.get(doc_id), scale) for doc_id, score in scored]

    def top(self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = ()) -> list[tuple[str, int]]:
        """The bare Lucene search: ``[(doc_id, integer score)]`` best first, no metadata read."""
        gen = self._live()
        q = _positive(impacts)
        if k <= 0 or not q:
            return []
        return call_in_jvm(_lucene_search, gen.searcher, q, int(k), list(exclude))

    def count(self, impacts: Mapping[str, int]) -> int:
        """How many documents contain at least one word of the quantised query."""
        q = _positive(impacts)
        return call_in_jvm(_lucene_count, self._live().searcher, q) if q else 0

    def document(self, doc_id: str) -> DocRecord | None:
        """The stored record of one indexed image, or ``None``."""
        return self._live().meta.get(doc_id)

    def close(self) -> None:
        """Release the generation (idempotent); it closes if it was retired and this was its last user."""
        with self._gen._lock:  # two threads closing one snapshot release it once
            released, self._released = self._released, True
        if not released:
            self._gen.release()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _positive(impacts: Mapping[str, int]) -> dict[str, int]:
    return {w: int(v) for w, v in impacts.items() if int(v) > 0}


class LexicalSearcher:
    """Follows the published generation of an index root; ``refresh`` switches to new publishes.

    Read through :meth:`snapshot`: one request, one generation. The one-shot helpers
    (:meth:`search`, :meth:`document`, :attr:`info`, ...) each take a snapshot of their own, so two
    calls may see two generations.

    Thread-safe: Lucene's ``IndexSearcher`` is, the metadata reader serialises its lookups, and
    generations are reference-counted: a refresh retires the old one, which closes once the last
    snapshot on it is released.

    Parameters
    ----------
    index_root : the folder given to ``lexvla index --index``.
    """

    def __init__(self, index_root: str | Path):
        self.root = Path(index_root)
        self._lock = threading.Lock()
        self._gen: _Generation | None = _Generation(layout.require_generation(self.root))

    # ---- generation handling ------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Pin the current generation: ``with searcher.snapshot() as s: ...``."""
        with self._lock:
            if self._gen is None:
                raise RuntimeError("searcher is closed")
            gen = self._gen
            gen.acquire()
            return Snapshot(gen)

    @property
    def info(self) -> IndexInfo:
        with self.snapshot() as s:
            return s.info

    def refresh(self, require_bundle=None) -> bool:
        """Open a newer published generation if there is one; returns True when it switched.

        With ``require_bundle`` (a ``models.bundle.Bundle``), a generation that
        :func:`indexer.metadata.bundle_mismatch` finds incompatible with it is not switched to: :class:`BundleMismatchError` is raised and the current generation stays. The check is
        made on the generation actually opened, so a publish racing with it cannot slip through.
        Snapshots taken before keep answering from the old generation until they are released.
        """
        latest = layout.current_generation(self.root)
        with self._lock:
            if self._gen is None or latest is None or latest == self._gen.path:
                return False
        fresh = _Generation(latest)  # opened outside the lock: searches go on meanwhile
        problem = None if require_bundle is None else bundle_mismatch(fresh.info, require_bundle)
        if problem is not None:
            fresh.retire()
            raise BundleMismatchError(f"{latest.name} was {problem}")
        with self._lock:
            if self._gen is None or self._gen.path == latest:
                old, switched = fresh, False
            else:
                old, self._gen, switched = self._gen, fresh, True
        old.retire()
        return switched

    def close(self) -> None:
        with self._lock:
            gen, self._gen = self._gen, None
        if gen is not None:
            gen.retire()

    def __enter__(self) -> LexicalSearcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- one-shot reads (each on its own snapshot) -----------------------------------------
    def search(self, query: Mapping[str, float], k: int = 10, exclude: Iterable[str] = ()) -> list[Hit]:
        """:meth:`Snapshot.search` on the current generation."""
        with self.snapshot() as s:
            return s.search(query, k, exclude)

    def search_vector(self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = ()) -> list[Hit]:
        """:meth:`Snapshot.search_vector` on the current generation."""
        with self.snapshot() as s:
            return s.search_vector(impacts, k, exclude)

    def document(self, doc_id: str) -> DocRecord | None:
        """:meth:`Snapshot.document` on the current generation."""
        with self.snapshot() as s:
            return s.document(doc_id)

    def image_file(self, record: DocRecord, image_root: str | Path | None = None) -> Path:
        """The image file of ``record``: its relative path under ``image_root`` (by default the
        root recorded at indexing), its absolute path as it is."""
        return resolve_path(record.path, image_root or self.info.image_root)


def _open_lucene(index_dir: Path):
    """Runs on the JVM thread: a reader and an impact-scoring searcher over ``index_dir``."""
    java = _java()
    reader = java.directory_reader.open(java.fs_directory.open(java.paths.get(str(index_dir))))
    # explicit signature: jnius would otherwise try the IndexReaderContext overload
    searcher = java.index_searcher(reader, signature="(Lorg/apache/lucene/index/IndexReader;)V")
    searcher.setSimilarity(java.impact_similarity())
    return reader, searcher


def _quoted(word: str) -> str:
    """``word`` as a quoted QueryParser term: inside quotes only ``\\`` and ``"`` are special."""
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def query_string(q: Mapping[str, int], exclude: Iterable[str] = ()) -> str:
    """The classic QueryParser text of a quantised query: ``"w"^impact`` SHOULD clauses, ``-"w"`` exclusions.

    With a whitespace analyzer each quoted word parses to ``BoostQuery(TermQuery(contents:w), impact)``
    -- the same query a ``BooleanQuery.Builder`` would make clause by clause, in one Java call.
    """
    parts = [f"{_quoted(w)}^{int(v)}" for w, v in q.items()]
    parts += [f"-{_quoted(w)}" for w in exclude]
    return " ".join(parts)


def _build_query(q: Mapping[str, int], exclude: Iterable[str]):
    """Runs on the JVM thread: the Lucene query for a quantised ``{word: impact}`` map."""
    return _java().parser.parse(query_string(q, exclude))


def _lucene_count(searcher, q: dict[str, int]) -> int:
    """Runs on the JVM thread: documents matching any word of ``q``."""
    return int(searcher.count(_build_query(q, [])))


def _lucene_search(searcher, q: dict[str, int], k: int, exclude: list[str]) -> list[tuple[str, int]]:
    """Runs on the JVM thread: ``[(doc_id, integer score)]`` best first."""
    top = searcher.search(_build_query(q, exclude), k)
    stored = searcher.storedFields()
    # float32 scores of integer dot products below 2**24 are exact; round() only strips the type
    return [(stored.document(sd.doc).get(ID_FIELD), round(sd.score)) for sd in top.scoreDocs]


def _hit(doc_id: str, int_score: int, q: dict[str, int], record: DocRecord | None, scale: float) -> Hit:
    doc = record.impacts if record is not None else {}
    matches = [
        WordMatch(w, qi / scale, doc[w] / scale, (qi / scale) * (doc[w] / scale)) for w, qi in q.items() if w in doc
    ]
    matches.sort(key=lambda m: (-m.contribution, m.word))
    return Hit(doc_id, int_score / scale**2, tuple(matches), record)
