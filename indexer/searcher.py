"""Query-time access to a published index: following its generations, and the unsharded searcher.

Every searcher has the interface :class:`indexer.protocols.Searcher` declares; which one serves an
index root is chosen in one place, :func:`indexer.searchers.open_searcher`. The parts:

* :class:`GenerationFollower`: the published generation of an index root, switched by ``refresh``
  (every in-process searcher follows its root with one).
* :class:`SnapshotReads`: the one-shot reads (``info``, ``search``, ``document``, ...) every
  searcher offers, each on a snapshot of its own, written once.
* :class:`LexicalSearcher`: an unsharded index, read through :class:`indexer.snapshot.LexicalSnapshot`.
  Sharded indexes: :mod:`indexer.sharded`; shards on Ray actors: :mod:`indexer.ray_search`.

Lucene's side (query strings, batched searches on Java threads) is :mod:`indexer.lucene_search`;
hits and their explanations are :mod:`indexer.hits`.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, Self, TypeVar

from indexer import layout
from indexer.ann import AnnSearch
from indexer.hits import Hit, WordMatch, rank_order, ranked_top, score_share
from indexer.info import IndexInfo
from indexer.layout import IndexNotFoundError
from indexer.lucene_search import MAX_CLAUSES, SearchError, lucene_top, open_lucene, query_string
from indexer.metadata import DocRow, bundle_mismatch
from indexer.protocols import Snapshot
from indexer.snapshot import Generation, LexicalSnapshot

if TYPE_CHECKING:
    from models.bundle import Bundle

__all__ = [
    "IndexNotFoundError", "IndexInfo", "SearchError", "MAX_CLAUSES", "open_lucene", "lucene_top", "query_string",
    "WordMatch", "Hit", "score_share", "rank_order", "ranked_top", "BundleMismatchError", "GenerationFollower",
    "SnapshotReads", "LexicalSearcher",
]  # fmt: skip


class BundleMismatchError(RuntimeError):
    """A published generation was built with another bundle than the one required."""


class Opened(Protocol):
    """What a :class:`GenerationFollower` follows: :class:`indexer.snapshot.Generation`, or every
    shard of a generation opened together (:class:`indexer.sharded.ShardSet`)."""

    path: Path
    info: IndexInfo

    def acquire(self) -> None: ...

    def release(self) -> None: ...

    def retire(self) -> None: ...


G = TypeVar("G", bound=Opened)


class GenerationFollower(Generic[G]):
    """The published generation of an index root, opened with ``open_generation``, until a newer
    one is published and :meth:`refresh` switches to it.

    A switch retires the generation it replaces: it closes once the last snapshot holding it is
    released. Thread-safe.

    Parameters
    ----------
    root : the index root (the folder given to ``lexvla index --index``).
    open_generation : opens a generation folder (IndexNotFoundError when nothing is published).
    """

    def __init__(self, root: Path, open_generation: Callable[[Path], G]):
        self.root = root
        self._open = open_generation
        self._lock = threading.Lock()
        self._gen: G | None = open_generation(layout.require_generation(root))

    def acquire(self) -> G:
        """The current generation, acquired for one snapshot (which releases it)."""
        with self._lock:
            if self._gen is None:
                raise RuntimeError("searcher is closed")
            self._gen.acquire()
            return self._gen

    def refresh(self, require_bundle: Bundle | None = None) -> bool:
        """Open a newer published generation if there is one; returns True when it switched.

        With ``require_bundle`` (a ``models.bundle.Bundle``), a generation that
        :func:`indexer.metadata.bundle_mismatch` finds incompatible with it is not switched to:
        :class:`BundleMismatchError` is raised and the current generation stays. The check is made
        on the generation actually opened, so a publish racing with it cannot slip through.
        Snapshots taken before keep answering from the old generation until they are released.
        """
        latest = layout.current_generation(self.root)
        with self._lock:
            if self._gen is None or latest is None or latest == self._gen.path:
                return False
        fresh = self._open(latest)  # opened outside the lock: searches go on meanwhile
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


class SnapshotReads:
    """The one-shot reads of :class:`indexer.protocols.Searcher`, each on a snapshot of its own (so
    two calls may see two generations: a request reads through one :meth:`snapshot` instead).

    A searcher class inherits them and defines ``snapshot``, ``refresh`` and ``close``.
    """

    def snapshot(self) -> Snapshot:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @property
    def info(self) -> IndexInfo:
        """The current generation's facts."""
        with self.snapshot() as s:
            return s.info

    def search(
        self, query: Mapping[str, float], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = (),
        ann: AnnSearch | None = None,
    ) -> list[Hit]:
        """:meth:`Snapshot.search <indexer.protocols.Snapshot.search>` on the current generation."""
        with self.snapshot() as s:
            return s.search(query, k, exclude, require, ann)

    def search_vector(
        self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = (),
        ann: AnnSearch | None = None,
    ) -> list[Hit]:
        """:meth:`Snapshot.search_vector <indexer.protocols.Snapshot.search_vector>` on the current generation."""
        with self.snapshot() as s:
            return s.search_vector(impacts, k, exclude, require, ann)

    def document(self, doc_id: str) -> DocRow | None:
        """:meth:`Snapshot.document <indexer.protocols.Snapshot.document>` on the current generation."""
        with self.snapshot() as s:
            return s.document(doc_id)

    def image_file(self, record: DocRow, image_root: str | Path | None = None) -> Path:
        """:meth:`Snapshot.image_file <indexer.protocols.Snapshot.image_file>` on the current generation."""
        with self.snapshot() as s:
            return s.image_file(record, image_root)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FollowingSearcher(SnapshotReads, Generic[G]):
    """A searcher that follows the published generation of ``index_root`` through a
    :class:`GenerationFollower` (``open_generation`` opens one); a subclass defines ``snapshot``."""

    def __init__(self, index_root: str | Path, open_generation: Callable[[Path], G]):
        self.root = Path(index_root)
        self._generations = GenerationFollower(self.root, open_generation)

    def refresh(self, require_bundle: Bundle | None = None) -> bool:
        """:meth:`GenerationFollower.refresh`."""
        return self._generations.refresh(require_bundle)

    def close(self) -> None:
        self._generations.close()


class LexicalSearcher(FollowingSearcher[Generation]):
    """Follows the published generation of an unsharded index root; ``refresh`` switches to new publishes.

    Read through :meth:`snapshot`: one request, one generation. The one-shot helpers
    (:meth:`search`, :meth:`document`, :attr:`info`, ...) each take a snapshot of their own, so two
    calls may see two generations.

    Thread-safe: Lucene's ``IndexSearcher`` is, the metadata reader serialises its lookups, and
    generations are reference-counted: a refresh retires the old one, which closes once the last
    snapshot on it is released. A generation of several shards is refused (IndexFormatError):
    :class:`indexer.sharded.ShardedSearcher` reads those, and any other.

    Parameters
    ----------
    index_root : the folder given to ``lexvla index --index``.
    """

    def __init__(self, index_root: str | Path):
        super().__init__(index_root, Generation)

    def snapshot(self) -> LexicalSnapshot:
        """Pin the current generation: ``with searcher.snapshot() as s: ...``."""
        return LexicalSnapshot(self._generations.acquire())
