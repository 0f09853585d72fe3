"""Lucene impact search from Python: the reading twin of :mod:`indexer.lucene` (which writes).

The scoring is Lucene's, on the integer impacts the build stored as term frequencies: a
``BooleanQuery`` of ``BoostQuery(TermQuery(contents:word), query_impact)`` SHOULD clauses under
Anserini's ``ImpactSimilarity`` (score = boost x stored impact) is exactly the integer dot product
of the quantised query and document vectors. This module talks to the Java classes through jnius
and never imports pyserini's Python package (which imports torch).

Searches from every thread go to Java in batches (:func:`lucene_top`), where they run in parallel.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from indexer.jvm import call_in_jvm, jvm_executor, start_jvm
from indexer.lucene import CONTENTS_FIELD, ID_FIELD
from models.batching import MicroBatcher

__all__ = ["MAX_CLAUSES", "HITS_THRESHOLD", "SearchError", "open_lucene", "close_lucene", "query_string", "lucene_top",
           "lucene_count", "set_hits_threshold", "set_slice_docs", "SLICE_DOCS"]

MAX_CLAUSES = 4096
SEARCH_THREADS = os.cpu_count() or 1  # Java threads that run the searches of a batch
MAX_SEARCH_BATCH = 256  # searches sent to Java in one call
# After this many matching documents (never fewer than the search's k) Lucene skips the ones that
# cannot enter the top-k (block-max pruning): the top-k and its scores stay exact; only the hit
# count, which nothing reads, is a lower bound. Lucene's own default is 1000; from the 10th hit on,
# 2-word queries took 0.35 instead of 0.50 ms at 100k documents, 32-word ones the same or a little
# less (docs/benchmarks.md).
HITS_THRESHOLD = 10
# One search scores an index's segments in parallel, in slices of at least this many documents,
# when it has more than one such slice (Lucene's own slice size): at a million documents a search
# alone takes a quarter less time; at 100,000 a hand-off to other threads costs more than it saves.
SLICE_DOCS = 250_000
_SLICE_DOCS = SLICE_DOCS


class SearchError(RuntimeError):
    """Lucene could not run one search (the message is Java's)."""


class _Java:
    """Lucene classes resolved once (``autoclass`` costs milliseconds each)."""

    def __init__(self) -> None:
        jnius = start_jvm()
        auto = jnius.autoclass
        self.paths = auto("java.nio.file.Paths")
        self.fs_directory = auto("org.apache.lucene.store.FSDirectory")
        self.directory_reader = auto("org.apache.lucene.index.DirectoryReader")
        self.index_searcher = auto("org.apache.lucene.search.IndexSearcher")
        self.impact_similarity = auto("io.anserini.search.similarity.ImpactSimilarity")
        self.index_searcher.setMaxClauseCount(MAX_CLAUSES)
        # Java parses each query from one string (see query_string): per-clause jnius calls (Term,
        # TermQuery, BoostQuery, add: 4 crossings a word) cost 2-6 ms for a 32-word query, the parse
        # about 0.1 ms. It runs a batch of searches on SEARCH_THREADS threads of its own.
        self.parallel = auto("lexvla.search.ParallelSearch")(CONTENTS_FIELD, ID_FIELD, SEARCH_THREADS)
        self.parallel.setHitsThreshold(HITS_THRESHOLD)


_JAVA: _Java | None = None
_SEARCHES: MicroBatcher | None = None
_LOCK = threading.Lock()


def _java() -> _Java:
    global _JAVA
    with _LOCK:
        if _JAVA is None:
            _JAVA = _Java()
        return _JAVA


def _search_batcher() -> MicroBatcher:
    """Searches from all threads, sent to Java in batches from the JVM thread (no waiting: under
    load, the searches that arrive while one batch runs form the next)."""
    global _SEARCHES
    with _LOCK:
        if _SEARCHES is None:
            _SEARCHES = MicroBatcher(_run_searches, MAX_SEARCH_BATCH, executor=jvm_executor())
        return _SEARCHES


def open_lucene(index_dir: Path) -> tuple[Any, Any]:
    """Runs on the JVM thread (``call_in_jvm(open_lucene, dir)``): a reader and an impact-scoring
    searcher over the Lucene directory ``index_dir``; close the reader the same way when done."""
    java = _java()
    reader = java.directory_reader.open(java.fs_directory.open(java.paths.get(str(index_dir))))
    return reader, java.parallel.newSearcher(reader, java.impact_similarity(), _SLICE_DOCS)


def close_lucene(reader: Any) -> None:
    """Close a reader of :func:`open_lucene` (on the JVM thread)."""
    call_in_jvm(reader.close)


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


def lucene_top(searcher: Any, impacts: Mapping[str, int], k: int, exclude: Iterable[str] = (),
               require: Iterable[str] = ()) -> list[tuple[str, int]]:  # fmt: skip
    """``[(doc_id, integer score)]`` best first from a searcher of :func:`open_lucene`, any thread.

    The search goes to Java in a batch with the searches other threads asked for meanwhile.
    """
    return _search_batcher()((searcher, query_string(impacts, exclude, require), int(k)))


def set_hits_threshold(threshold: int | None) -> None:
    """Set after how many matching documents every later search of this process starts pruning
    (``None``: :data:`HITS_THRESHOLD`; at least the search's k)."""
    value = HITS_THRESHOLD if threshold is None else int(threshold)
    call_in_jvm(_java().parallel.setHitsThreshold, value)


def set_slice_docs(docs: int | None) -> None:
    """The slice size of the searchers this process opens from now on (``None``: :data:`SLICE_DOCS`;
    0: one thread scores every segment); searchers already open keep theirs."""
    global _SLICE_DOCS
    _SLICE_DOCS = SLICE_DOCS if docs is None else max(0, int(docs))


def lucene_count(searcher: Any, q: Mapping[str, int]) -> int:
    """Documents matching any word of ``q`` (any thread)."""
    return call_in_jvm(_lucene_count, searcher, q)


def _lucene_count(searcher: Any, q: Mapping[str, int]) -> int:
    """Runs on the JVM thread."""
    return int(_java().parallel.count(searcher, query_string(q)))


def _run_searches(batch: list[tuple[Any, str, int]]) -> list[list[tuple[str, int]] | SearchError]:
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
