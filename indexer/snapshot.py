"""One opened Lucene index with its metadata (:class:`Generation`), and a snapshot pinning it.

A :class:`Generation` is one published generation of an unsharded index, or one shard of a
sharded one (with its whole generation's ``info``). It is reference-counted: each snapshot holds
it, and a refresh that replaces it only *retires* it; it closes when its last snapshot is released.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from indexer import layout
from indexer.ann import AnnIndex, AnnMissingError, AnnSearch, ann_top, has_ann
from indexer.hits import Hit, explain, ranked_top
from indexer.info import IndexFormatError, IndexInfo, read_info
from indexer.jvm import call_in_jvm
from indexer.lucene_search import close_lucene, lucene_count, lucene_top, open_lucene
from indexer.metadata import META_FILE, DocRow, MetadataReader, resolve_path
from models.sparse import quantize_weights

__all__ = ["Generation", "LexicalSnapshot", "positive"]


class Generation:
    """One opened generation (or one shard of one, with its generation's ``info``): Lucene reader +
    searcher + metadata, closed when no snapshot uses it.

    Parameters
    ----------
    path : the generation's folder (or the shard's).
    info : the generation's facts, given for a shard; read from ``path`` otherwise, and then the
        generation must have one shard (:class:`indexer.sharded.ShardedSearcher` opens the others).
    """

    def __init__(self, path: Path, info: IndexInfo | None = None):
        self.path = path
        self.info = info if info is not None else read_info(path)
        if info is None and self.info.shards > 1:
            raise IndexFormatError(f"{path} has {self.info.shards} shards: open it with indexer.sharded.ShardedSearcher")
        self.meta = MetadataReader(path / META_FILE)
        self.reader, self.searcher = call_in_jvm(open_lucene, path / layout.LUCENE_DIR)
        self._ann: AnnIndex | None = None  # the approximate path's structure (indexer.ann): read on first use
        self._ann_built = has_ann(path)
        self._ann_lock = threading.Lock()
        self._users = 0
        self._retired = False
        self.closed = False
        self.lock = threading.Lock()

    @property
    def ann(self) -> AnnIndex | None:
        """The shard's approximate structure, read into memory by the first approximate search (a
        service on the exact path never holds it); ``None`` where it was built without one."""
        if self._ann is None and self._ann_built:
            with self._ann_lock:
                if self._ann is None:
                    self._ann = AnnIndex(self.path)
        return self._ann

    @ann.setter
    def ann(self, value: AnnIndex | None) -> None:
        self._ann, self._ann_built = value, value is not None

    def acquire(self) -> None:
        with self.lock:
            self._users += 1

    def release(self) -> None:
        with self.lock:
            self._users -= 1
            close = self._retired and self._users == 0
        if close:
            self._close()

    def retire(self) -> None:
        """Close now if idle, otherwise when the last in-flight search releases it."""
        with self.lock:
            self._retired = True
            close = self._users == 0
        if close:
            self._close()

    def _close(self) -> None:
        self.closed = True
        close_lucene(self.reader)
        self.meta.close()
        self._ann = None


class LexicalSnapshot:
    """One generation of an index (or one shard of it), pinned until :meth:`close` (or the ``with`` block's end).

    Everything read through a snapshot -- search hits, document records, :attr:`info` and
    :attr:`version` -- comes from the same generation, even when a newer one is published and the
    searcher refreshes meanwhile: the generation stays open while any snapshot holds it and is
    closed when the last one is released. Get one with :meth:`indexer.searcher.LexicalSearcher.snapshot`.
    """

    def __init__(self, gen: Generation):
        self._gen = gen  # already acquired for us
        self._released = False

    def _live(self) -> Generation:
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
        self, query: Mapping[str, float], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = (),
        ann: AnnSearch | None = None,
    ) -> list[Hit]:
        """Top-``k`` documents for a ``{word: weight}`` query, each with its word matches.

        The query is quantised with the index's ``quant_scale`` (``models.sparse.quantize_weights``);
        words the index does not contain match nothing; documents containing any word of
        ``exclude`` are not returned, nor those missing a word of ``require``. ``ann``: search the
        approximate structure (:mod:`indexer.ann`) with these settings instead of Lucene; the hits'
        scores and explanations are exact either way.
        """
        return self.search_vector(quantize_weights(query, self.info.quant_scale), k, exclude, require, ann)

    def search_vector(
        self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = (),
        ann: AnnSearch | None = None,
    ) -> list[Hit]:
        """Like :meth:`search` with an already quantised query (e.g. a document's impacts)."""
        gen = self._live()
        q = positive(impacts)
        if ann is not None:
            ranked = self._ann_ranked(q, k, exclude, require, ann)
            docs = {doc_id: row for doc_id, _, row in ranked}
            scored = [(doc_id, score) for doc_id, score, _ in ranked]
        else:
            scored = self.top(q, k, exclude, require)
            docs = gen.meta.get_many([doc_id for doc_id, _ in scored])
        scale = gen.info.quant_scale
        return [explain(doc_id, score, q, docs.get(doc_id), scale) for doc_id, score in scored]

    def top(
        self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = (),
        ann: AnnSearch | None = None,
    ) -> list[tuple[str, int]]:
        """The bare search: ``[(doc_id, integer score)]`` best first (Lucene's, or with ``ann`` the
        approximate structure's candidates scored from their stored impacts)."""
        gen = self._live()
        q = positive(impacts)
        if k <= 0 or not q:
            return []
        if ann is not None:
            return [(doc_id, score) for doc_id, score, _ in self._ann_ranked(q, k, exclude, require, ann)]
        return ranked_top(lambda n: lucene_top(gen.searcher, q, n, exclude, require), int(k))

    def _ann_ranked(self, q: dict[str, int], k: int, exclude: Iterable[str], require: Iterable[str],
                    ann: AnnSearch) -> list[tuple[str, int, DocRow]]:  # fmt: skip
        """The approximate top-``k`` in the one result order, ties at the k-th place fetched to their end."""
        gen = self._live()
        index = gen.ann
        if index is None:
            raise AnnMissingError(
                f"{gen.path} has no approximate-search structure (built by an older version or without it): "
                "search it on the exact path, or rebuild it with `lexvla index --rebuild`"
            )
        if k <= 0 or not q:
            return []
        exclude, require = list(exclude), list(require)
        rows: dict[str, DocRow] = {}

        def fetch(n: int) -> list[tuple[str, int]]:
            got = ann_top(index, gen.meta.get_many, q, n, ann, exclude, require)
            rows.update((doc_id, row) for doc_id, _, row in got)
            return [(doc_id, score) for doc_id, score, _ in got]

        return [(doc_id, score, rows[doc_id]) for doc_id, score in ranked_top(fetch, int(k))]

    def count(self, impacts: Mapping[str, int]) -> int:
        """How many documents contain at least one word of the quantised query."""
        q = positive(impacts)
        return lucene_count(self._live().searcher, q) if q else 0

    def document(self, doc_id: str) -> DocRow | None:
        """The stored record of one indexed image, or ``None``."""
        return self._live().meta.get(doc_id)

    def image_file(self, record: DocRow, image_root: str | Path | None = None) -> Path:
        """The image file of ``record``: its relative path under ``image_root`` (by default the
        root this generation recorded at indexing), its absolute path as it is."""
        return resolve_path(record.path, image_root or self.info.image_root)

    def close(self) -> None:
        """Release the generation (idempotent); it closes if it was retired and this was its last user."""
        with self._gen.lock:  # two threads closing one snapshot release it once
            released, self._released = self._released, True
        if not released:
            self._gen.release()

    def __enter__(self) -> LexicalSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def positive(impacts: Mapping[str, int]) -> dict[str, int]:
    """The words of a quantised query with a positive impact (the others match nothing)."""
    return {w: int(v) for w, v in impacts.items() if int(v) > 0}
