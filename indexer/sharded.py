"""Searching a generation of N shards as one index: fan out, merge an exact global top-k.

A layer over :mod:`indexer.searcher`: each shard is opened as the unsharded searcher opens a
generation (:class:`indexer.snapshot.Generation`), and :class:`ShardedSearcher` has the searcher
interface (:class:`indexer.protocols.Searcher`), so the service talks to it whatever the shard
count (one shard costs no merge).

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
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from indexer.ann import AnnSearch
from indexer.generation import shard_folders, shard_of
from indexer.hits import Hit, rank_order
from indexer.info import IndexInfo, read_info
from indexer.metadata import DocRow
from indexer.searcher import FollowingSearcher
from indexer.snapshot import Generation, LexicalSnapshot
from models.sparse import quantize_weights

__all__ = ["ShardedSearcher", "ShardedSnapshot", "ShardSearcher", "ShardSet", "merge_top"]

T = TypeVar("T")


def merge_top(per_shard: Iterable[list[T]], k: int, key: Callable[[T], Any]) -> list[T]:
    """The first ``k`` of already ordered per-shard lists, in the same order (``key`` of an item)."""
    return list(heapq.merge(*per_shard, key=key))[:k]


class ShardSet:
    """Every shard of one generation, opened together and counted as one (what a
    :class:`~indexer.searcher.GenerationFollower` follows, as :class:`~indexer.snapshot.Generation`)."""

    def __init__(self, path: Path):
        self.path = path
        self.info: IndexInfo = read_info(path)
        self.shards: list[Generation] = []
        try:
            for folder in shard_folders(path, self.info):
                self.shards.append(Generation(folder, self.info))
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
    """One generation of a sharded index, pinned until :meth:`close`: the
    :class:`~indexer.protocols.Snapshot` interface over one snapshot per shard."""

    def __init__(self, shard_set: ShardSet):
        self._set = shard_set  # already acquired for us
        self._snaps = [LexicalSnapshot(g) for g in shard_set.shards]
        self._lock = threading.Lock()
        self._released = False

    @property
    def released(self) -> bool:
        return self._released

    @property
    def generation_closed(self) -> bool:
        return self._set.closed

    @property
    def shards(self) -> tuple[LexicalSnapshot, ...]:
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

    def search(self, query: Mapping[str, float], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = (),
               ann: AnnSearch | None = None) -> list[Hit]:  # fmt: skip
        """:meth:`LexicalSnapshot.search <indexer.snapshot.LexicalSnapshot.search>` over every shard."""
        return self.search_vector(quantize_weights(query, self.info.quant_scale), k, exclude, require, ann)

    def search_vector(self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = (),
                      require: Iterable[str] = (), ann: AnnSearch | None = None) -> list[Hit]:
        """Each shard's explained top-``k`` (exact, or approximate with ``ann``), merged into the global top-``k``."""
        self._check()
        exclude, require = list(exclude), list(require)
        if len(self._snaps) == 1:
            return self._snaps[0].search_vector(impacts, k, exclude, require, ann)
        per_shard = [s.search_vector(impacts, k, exclude, require, ann) for s in self._snaps]
        return merge_top(per_shard, k, key=lambda h: rank_order(h.doc_id, h.score))

    def top(self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = (),
            require: Iterable[str] = (), ann: AnnSearch | None = None) -> list[tuple[str, int]]:
        """The bare search over every shard: ``[(doc_id, integer score)]`` in result order."""
        self._check()
        exclude, require = list(exclude), list(require)
        per_shard = [s.top(impacts, k, exclude, require, ann) for s in self._snaps]
        return merge_top(per_shard, k, key=lambda t: rank_order(t[0], t[1]))

    def count(self, impacts: Mapping[str, int]) -> int:
        self._check()
        return sum(s.count(impacts) for s in self._snaps)

    def document(self, doc_id: str) -> DocRow | None:
        """The record of ``doc_id``, read from the one shard its id hashes to."""
        self._check()
        return self._snaps[shard_of(doc_id, len(self._snaps))].document(doc_id)

    def image_file(self, record: DocRow, image_root: str | Path | None = None) -> Path:
        """:meth:`LexicalSnapshot.image_file <indexer.snapshot.LexicalSnapshot.image_file>` (every
        shard records the generation's image root)."""
        return self._snaps[0].image_file(record, image_root)

    def close(self) -> None:
        with self._lock:
            released, self._released = self._released, True
        if not released:
            for s in self._snaps:
                s.close()

    def __enter__(self) -> ShardedSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ShardedSearcher(FollowingSearcher[ShardSet]):
    """Follows the published generation of an index root, whatever its shard count: every shard
    of it opened together (:class:`ShardSet`), read through a :class:`ShardedSnapshot`. The rest
    is :class:`~indexer.searcher.LexicalSearcher`'s (and :class:`indexer.protocols.Searcher`'s).

    Parameters
    ----------
    index_root : the folder given to ``lexvla index --index``.
    """

    def __init__(self, index_root: str | Path):
        super().__init__(index_root, ShardSet)

    def snapshot(self) -> ShardedSnapshot:
        """Pin the current generation, every shard of it."""
        return ShardedSnapshot(self._generations.acquire())


def _open_shard(path: Path, shard: int) -> Generation:
    info = read_info(path)
    if not 0 <= shard < info.shards:
        raise ValueError(f"{path} has {info.shards} shards; there is no shard {shard}")
    return Generation(shard_folders(path, info)[shard], info)


class ShardSearcher(FollowingSearcher[Generation]):
    """Follows one shard of the published generation: what a search replica of that shard serves.

    Its generations are that one shard (with the whole generation's :attr:`info`), read through a
    :class:`~indexer.snapshot.LexicalSnapshot`; ``refresh`` moves it to the same shard of a newer
    generation.
    """

    def __init__(self, index_root: str | Path, shard: int):
        super().__init__(index_root, functools.partial(_open_shard, shard=shard))
        self.shard = shard

    def snapshot(self) -> LexicalSnapshot:
        """Pin this shard of the current generation."""
        return LexicalSnapshot(self._generations.acquire())
