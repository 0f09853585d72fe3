"""Query-time access to a published index: Lucene impact search plus per-word explanations.

The scoring is Lucene's, on the integer impacts Anserini stored as term frequencies: a
``BooleanQuery`` of ``BoostQuery(TermQuery(contents:word), query_impact)`` SHOULD clauses under
Anserini's ``ImpactSimilarity`` (score = boost x stored impact) is exactly the integer dot product
of the quantised query and document vectors. This module talks to the Java classes through jnius
and never imports pyserini's Python package (which imports torch).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from indexer import layout
from indexer.info import IndexFormatError, IndexInfo, read_info
from indexer.jvm import call_in_jvm, jvm_executor, start_jvm
from indexer.layout import IndexNotFoundError
from indexer.lucene import CONTENTS_FIELD, ID_FIELD
from indexer.metadata import META_FILE, DocRow, MetadataReader, bundle_mismatch, resolve_path
from models.batching import MicroBatcher
from models.sparse import quantize_weights

__all__ = [
    "IndexNotFoundError", "IndexInfo", "SearchError", "open_lucene", "lucene_top", "DocRecord", "WordMatch", "Hit", "Snapshot", "LexicalSearcher", "BundleMismatchError",
    "score_share",
]  # fmt: skip

MAX_CLAUSES = 4096
SEARCH_THREADS = os.cpu_count() or 1  # Java threads that run the searches of a batch
MAX_SEARCH_BATCH = 256  # searches sent to Java in one call


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
        # Java parses each query from one string (see query_string): per-clause jnius calls (Term,
        # TermQuery, BoostQuery, add: 4 crossings a word) cost 2-6 ms for a 32-word query, the parse
        # about 0.1 ms. It runs a batch of searches on SEARCH_THREADS threads of its own.
        self.parallel = auto("lexvla.search.ParallelSearch")(CONTENTS_FIELD, ID_FIELD, SEARCH_THREADS)


_JAVA: _Java | None = None
_JAVA_LOCK = threading.Lock()


def _java() -> _Java:
    global _JAVA
    with _JAVA_LOCK:
        if _JAVA is None:
            _JAVA = _Java()
        return _JAVA


class SearchError(RuntimeError):
    """Lucene could not run one search (the message is Java's)."""


_SEARCHES: MicroBatcher | None = None


def _search_batcher() -> MicroBatcher:
    """Searches from all threads, sent to Java in batches from the JVM thread (no waiting: under
    load, the searches that arrive while one batch runs form the next)."""
    global _SEARCHES
    with _JAVA_LOCK:
        if _SEARCHES is None:
            _SEARCHES = MicroBatcher(_run_searches, MAX_SEARCH_BATCH, executor=jvm_executor())
        return _SEARCHES


class _Generation:
    """One opened generation (or one shard of one, with its generation's ``info``): Lucene reader +
    searcher + metadata, closed when no search uses it."""

    def __init__(self, path: Path, info: IndexInfo | None = None):
        self.path = path
        self.info = info if info is not None else read_info(path)
        if info is None and self.info.shards > 1:
            raise IndexFormatError(f"{path} has {self.info.shards} shards: open it with indexer.sharded.ShardedSearcher")
        self.meta = MetadataReader(path / META_FILE)
        self.reader, self.searcher = call_in_jvm(open_lucene, path / layout.LUCENE_DIR)
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

    def search(
        self, query: Mapping[str, float], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = ()
    ) -> list[Hit]:
        """Top-``k`` documents for a ``{word: weight}`` query, each with its word matches.

        The query is quantised with the index's ``quant_scale`` (``models.sparse.quantize_weights``);
        words the index does not contain match nothing; documents containing any word of
        ``exclude`` are not returned, nor those missing a word of ``require``.
        """
        return self.search_vector(quantize_weights(query, self.info.quant_scale), k, exclude, require)

    def search_vector(
        self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = ()
    ) -> list[Hit]:
        """Like :meth:`search` with an already quantised query (e.g. a document's impacts)."""
        gen = self._live()
        q = _positive(impacts)
        scored = self.top(q, k, exclude, require)
        docs = gen.meta.get_many([doc_id for doc_id, _ in scored])
        scale = gen.info.quant_scale
        return [_hit(doc_id, score, q, docs.get(doc_id), scale) for doc_id, score in scored]

    def top(
        self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = ()
    ) -> list[tuple[str, int]]:
        """The bare Lucene search: ``[(doc_id, integer score)]`` best first, no metadata read."""
        gen = self._live()
        q = _positive(impacts)
        if k <= 0 or not q:
            return []
        return ranked_top(lambda n: lucene_top(gen.searcher, q, n, exclude, require), int(k))

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

    _open_generation = _Generation  # what a generation is opened as, and how a snapshot pins it:
    _pin = Snapshot  # indexer.sharded.ShardedSearcher opens every shard of a generation instead

    def __init__(self, index_root: str | Path):
        self.root = Path(index_root)
        self._lock = threading.Lock()
        self._gen = self._open_generation(layout.require_generation(self.root))

    # ---- generation handling ------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Pin the current generation: ``with searcher.snapshot() as s: ...``."""
        with self._lock:
            if self._gen is None:
                raise RuntimeError("searcher is closed")
            gen = self._gen
            gen.acquire()
            return self._pin(gen)

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
        fresh = self._open_generation(latest)  # opened outside the lock: searches go on meanwhile
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
    def search(
        self, query: Mapping[str, float], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = ()
    ) -> list[Hit]:
        """:meth:`Snapshot.search` on the current generation."""
        with self.snapshot() as s:
            return s.search(query, k, exclude, require)

    def search_vector(
        self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = ()
    ) -> list[Hit]:
        """:meth:`Snapshot.search_vector` on the current generation."""
        with self.snapshot() as s:
            return s.search_vector(impacts, k, exclude, require)

    def document(self, doc_id: str) -> DocRecord | None:
        """:meth:`Snapshot.document` on the current generation."""
        with self.snapshot() as s:
            return s.document(doc_id)

    def image_file(self, record: DocRecord, image_root: str | Path | None = None) -> Path:
        """The image file of ``record``: its relative path under ``image_root`` (by default the
        root recorded at indexing), its absolute path as it is."""
        return resolve_path(record.path, image_root or self.info.image_root)


def open_lucene(index_dir: Path):
    """Runs on the JVM thread (``call_in_jvm(open_lucene, dir)``): a reader and an impact-scoring
    searcher over the Lucene directory ``index_dir``; close the reader the same way when done."""
    java = _java()
    reader = java.directory_reader.open(java.fs_directory.open(java.paths.get(str(index_dir))))
    # explicit signature: jnius would otherwise try the IndexReaderContext overload
    searcher = java.index_searcher(reader, signature="(Lorg/apache/lucene/index/IndexReader;)V")
    searcher.setSimilarity(java.impact_similarity())
    return reader, searcher


def _quoted(word: str) -> str:
    """``word`` as a quoted QueryParser term: inside quotes only ``\\`` and ``"`` are special."""
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def query_string(q: Mapping[str, int], exclude: Iterable[str] = (), require: Iterable[str] = ()) -> str:
    """The classic QueryParser text of a quantised query: ``"w"^impact`` SHOULD clauses,
    ``+"w"^impact`` MUST clauses for the words of ``require``, ``-"w"`` exclusions.

    With a whitespace analyzer each quoted word parses to ``BoostQuery(TermQuery(contents:w), impact)``
    -- the same query a ``BooleanQuery.Builder`` would make clause by clause, in one Java call. A
    required word scores like any other; one the query map lacks only filters (boost 0).
    """
    required = set(require)
    parts = [f"{'+' if w in required else ''}{_quoted(w)}^{int(v)}" for w, v in q.items()]
    parts += [f"+{_quoted(w)}^0" for w in required if w not in q]
    parts += [f"-{_quoted(w)}" for w in exclude]
    return " ".join(parts)


def lucene_top(searcher, impacts: Mapping[str, int], k: int, exclude: Iterable[str] = (),
               require: Iterable[str] = ()) -> list[tuple[str, int]]:
    """``[(doc_id, integer score)]`` best first from a searcher of :func:`open_lucene`, any thread.

    The search goes to Java in a batch with the searches other threads asked for meanwhile.
    """
    return _search_batcher()((searcher, query_string(impacts, exclude, require), int(k)))


def _lucene_count(searcher, q: dict[str, int]) -> int:
    """Runs on the JVM thread: documents matching any word of ``q``."""
    return int(_java().parallel.count(searcher, query_string(q)))


def _run_searches(batch: list[tuple[object, str, int]]) -> list[list[tuple[str, int]] | SearchError]:
    """Runs on the JVM thread: ``(IndexSearcher, query string, k)`` each -> ``[(doc_id, integer score)]``.

    One Java call per generation in the batch (almost always one); Java runs its searches in parallel.
    """
    out: list = [None] * len(batch)
    groups: dict[int, list[int]] = {}
    for i, (searcher, _, _) in enumerate(batch):
        groups.setdefault(id(searcher), []).append(i)
    for members in groups.values():
        found = _java().parallel.search(batch[members[0]][0], [batch[i][1] for i in members], [batch[i][2] for i in members])
        ids, scores, offsets, errors = found.ids, found.scores, found.offsets, found.errors
        for j, i in enumerate(members):
            lo, hi = offsets[j], offsets[j + 1]
            # float32 scores of integer dot products below 2**24 are exact; round() only strips the type
            out[i] = SearchError(errors[j]) if errors[j] else [(ids[t], round(scores[t])) for t in range(lo, hi)]
    return out


def rank_order(doc_id: str, score: float) -> tuple[float, str]:
    """The one order of results: score descending, then document id ascending."""
    return (-score, doc_id)


def ranked_top(fetch, k: int) -> list[tuple[str, int]]:
    """The top ``k`` of ``fetch(n)`` (Lucene's best ``n``, score descending) in :func:`rank_order`.

    Lucene breaks ties by its internal document number, which depends on how the index was built
    (indexing threads, segments, appends, shards), and ``TopDocs.merge`` across shards by shard
    then document number. Ordering ties by id instead makes the result independent of all that;
    for it to be exact, the documents tied with the ``k``-th score are fetched to their end.
    """
    n = k + 1
    while True:
        got = fetch(n)
        if len(got) < n or got[-1][1] != got[k - 1][1]:
            return sorted(got, key=lambda t: rank_order(t[0], t[1]))[:k]
        n *= 2


def _hit(doc_id: str, int_score: int, q: dict[str, int], record: DocRecord | None, scale: float) -> Hit:
    doc = record.impacts if record is not None else {}
    matches = [
        WordMatch(w, qi / scale, doc[w] / scale, (qi / scale) * (doc[w] / scale)) for w, qi in q.items() if w in doc
    ]
    matches.sort(key=lambda m: (-m.contribution, m.word))
    return Hit(doc_id, int_score / scale**2, tuple(matches), record)
