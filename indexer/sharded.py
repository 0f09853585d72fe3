"""Searching a generation of N shards as one index: fan out, merge an exact global top-k.

A layer over :mod:`indexer.searcher`: each shard is opened as the per-index searcher opens a
generation, and :class:`ShardedSearcher` offers the same interface as
:class:`~indexer.searcher.LexicalSearcher` (``snapshot``, ``info``, ``refresh``, ``search``, ...),
so the service talks to it whatever the shard count (one shard costs no merge).

Exactness: scores are integer dot products, identical whichever shard holds a document, and every
shard returns its top-k in the one result order (:func:`indexer.searcher.rank_order`: score
descending, then id), ties at the k-th place included. The global top-k under that order is
therefore within the union of the shards' top-k, and the merge returns exactly what one index of
all the documents returns. Explanations are made per shard from the same metadata rows, so they
are unchanged too.
"""
from __future__ import annotations

import functools
import heapq
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from indexer.generation import shard_folders, shard_of
from indexer.info import IndexInfo, read_info
from indexer.searcher import DocRecord, Hit, LexicalSearcher, Snapshot, _Generation, rank_order
from models.sparse import quantize_weights

__all__ = ["ShardedSearcher", "ShardedSnapshot", "ShardSearcher", "merge_top"]


def merge_top(per_shard: Iterable[list], k: int, key) -> list:
    """The first ``k`` of already ordered per-shard lists, in the same order (``key`` of an item)."""
    return list(heapq.merge(*per_shard, key=key))[:k]


class _ShardSet:
    """Every shard of one generation, opened together and counted as one (``_Generation``'s interface)."""

    def __init__(self, path: Path):
        self.path = path
        self.info: IndexInfo = read_info(path)
        self.shards: list[_Generation] = []
        try:
            for folder in shard_folders(path, self.info):
                self.shards.append(_Generation(folder, self.info))
        except BaseException:
            self.retire()
            raise

    @property
    def closed(self) -> bool:
        return all(g.closed for g in self.shards)

    def acquire(self) -> None:
        for g in self.shards:
            g.acquire()

    def release(self) -> None:
        for g in self.shards:
            g.release()

    def retire(self) -> None:
        for g in self.shards:
            g.retire()


class ShardedSnapshot:
    """One generation of a sharded index, pinned until :meth:`close`: the :class:`~indexer.searcher.Snapshot`
    interface over one snapshot per shard."""

    def __init__(self, shard_set: _ShardSet):
        self._set = shard_set  # already acquired for us
        self._snaps = [Snapshot(g) for g in shard_set.shards]
        self._lock = threading.Lock()
        self._released = False

    @property
    def released(self) -> bool:
        return self._released

    @property
    def generation_closed(self) -> bool:
        return self._set.closed

    @property
    def shards(self) -> tuple[Snapshot, ...]:
        """The per-shard snapshots, in shard order (for measuring one shard alone)."""
        return tuple(self._snaps)

    @property
    def info(self) -> IndexInfo:
        self._check()
        return self._set.info

    @property
    def version(self) -> str:
        return self.info.index_version

    def _check(self) -> None:
        if self._released:
            raise RuntimeError("snapshot is released")

    def search(self, query: Mapping[str, float], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = ()) -> list[Hit]:
        """:meth:`Snapshot.search <indexer.searcher.Snapshot.search>` over every shard."""
        return self.search_vector(quantize_weights(query, self.info.quant_scale), k, exclude, require)

    def search_vector(self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = (),
                      require: Iterable[str] = ()) -> list[Hit]:
        """Each shard's explained top-``k``, merged into the global top-``k``."""
        self._check()
        exclude, require = list(exclude), list(require)
        if len(self._snaps) == 1:
            return self._snaps[0].search_vector(impacts, k, exclude, require)
        per_shard = [s.search_vector(impacts, k, exclude, require) for s in self._snaps]
        return merge_top(per_shard, k, key=lambda h: rank_order(h.doc_id, h.score))

    def top(self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = (),
            require: Iterable[str] = ()) -> list[tuple[str, int]]:
        """The bare search over every shard: ``[(doc_id, integer score)]`` in result order."""
        self._check()
        exclude, require = list(exclude), list(require)
        per_shard = [s.top(impacts, k, exclude, require) for s in self._snaps]
        return merge_top(per_shard, k, key=lambda t: rank_order(t[0], t[1]))

    def count(self, impacts: Mapping[str, int]) -> int:
        self._check()
        return sum(s.count(impacts) for s in self._snaps)

    def document(self, doc_id: str) -> DocRecord | None:
        """The record of ``doc_id``, read from the one shard its id hashes to."""
        self._check()
        return self._snaps[shard_of(doc_id, len(self._snaps))].document(doc_id)

    def close(self) -> None:
        with self._lock:
            released, self._released = self._released, True
        if not released:
            for s in self._snaps:
                s.close()

    def __enter__(self) -> ShardedSnapshot:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ShardedSearcher(LexicalSearcher):
    """Follows the published generation of an index root, sharded or not (see :class:`LexicalSearcher`).

    Parameters
    ----------
    index_root : the folder given to ``lexvla index --index``.
    """

    _open_generation = _ShardSet
    _pin = ShardedSnapshot


def _open_shard(path: Path, shard: int) -> _Generation:
    info = read_info(path)
    if not 0 <= shard < info.shards:
        raise ValueError(f"{path} has {info.shards} shards; there is no shard {shard}")
    return _Generation(shard_folders(path, info)[shard], info)


class ShardSearcher(LexicalSearcher):
    """Follows one shard of the published generation: what a search replica of that shard serves.

    A :class:`LexicalSearcher` whose generations are that one shard (with the whole generation's
    :attr:`info`); ``refresh`` moves it to the same shard of a newer generation.
    """

    def __init__(self, index_root: str | Path, shard: int):
        self.shard = shard
        self._open_generation = functools.partial(_open_shard, shard=shard)
        super().__init__(index_root)
