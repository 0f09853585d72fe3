"""The searcher interface, declared: what every searcher and every snapshot offers.

It knows no implementation: the one place that picks a searcher for an index root is
:func:`indexer.searchers.open_searcher`, which knows them all.

Three implementations, one interface (searcher -> its snapshot: what it serves):

* :class:`indexer.searcher.LexicalSearcher` -> :class:`indexer.snapshot.LexicalSnapshot`: an unsharded index.
* :class:`indexer.sharded.ShardedSearcher` -> :class:`indexer.sharded.ShardedSnapshot`: any shard count, in this process.
* :class:`indexer.ray_search.RaySearcher` -> :class:`indexer.ray_search.RaySnapshot`: shards on Ray actors, with replicas.

(:class:`indexer.sharded.ShardSearcher`, one shard of a generation, is what a Ray replica serves.)
A request reads through one :meth:`Searcher.snapshot`: everything it reads then comes from one
generation, however the searcher refreshes meanwhile. mypy checks that each class satisfies these
protocols (the block at the end of :mod:`indexer.searchers`); ``tests/indexer/test_protocols.py``
checks real objects at run time.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

from indexer.ann import AnnSearch
from indexer.hits import Hit
from indexer.info import IndexInfo
from indexer.metadata import DocRow

if TYPE_CHECKING:
    from models.bundle import Bundle

__all__ = ["Snapshot", "Searcher"]


@runtime_checkable
class Snapshot(Protocol):
    """One generation of an index, pinned until :meth:`close` (or the ``with`` block's end)."""

    @property
    def info(self) -> IndexInfo:
        """The pinned generation's facts."""
        ...

    @property
    def version(self) -> str:
        """The pinned generation's ``index_version`` (what caches key their entries on)."""
        ...

    @property
    def released(self) -> bool: ...

    def search(
        self, query: Mapping[str, float], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = (),
        ann: AnnSearch | None = None,
    ) -> list[Hit]:
        """Top-``k`` documents for a ``{word: weight}`` query (quantised with the index's scale),
        each explained; none carrying a word of ``exclude``, none missing a word of ``require``.
        Exact (Lucene) by default; with ``ann``, from the approximate structure (:mod:`indexer.ann`),
        scores and explanations still exact."""
        ...

    def search_vector(
        self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = (),
        ann: AnnSearch | None = None,
    ) -> list[Hit]:
        """:meth:`search` with an already quantised query."""
        ...

    def top(
        self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = (),
        ann: AnnSearch | None = None,
    ) -> list[tuple[str, int]]:
        """The bare search: ``[(doc_id, integer score)]`` in result order, no metadata read."""
        ...

    def count(self, impacts: Mapping[str, int]) -> int:
        """How many documents carry at least one word of the quantised query."""
        ...

    def document(self, doc_id: str) -> DocRow | None:
        """The stored record of one indexed image, or ``None``."""
        ...

    def image_file(self, record: DocRow, image_root: str | Path | None = None) -> Path:
        """The file of ``record``: a relative path lies under ``image_root`` (default: the root the
        generation recorded at indexing)."""
        ...

    def close(self) -> None:
        """Release the generation (idempotent)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class Searcher(Protocol):
    """Follows the published generation of an index root; :meth:`refresh` switches to a newer one."""

    @property
    def root(self) -> Path: ...

    @property
    def info(self) -> IndexInfo:
        """The current generation's facts."""
        ...

    def snapshot(self) -> Snapshot:
        """Pin the current generation: ``with searcher.snapshot() as s: ...``."""
        ...

    def refresh(self, require_bundle: Bundle | None = None) -> bool:
        """Switch to a newer published generation; True when it switched. With ``require_bundle``,
        one built for another bundle is refused (:class:`indexer.searcher.BundleMismatchError`)
        and the current one stays."""
        ...

    # one-shot reads, each on a snapshot of its own (two calls may see two generations)
    def search(
        self, query: Mapping[str, float], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = (),
        ann: AnnSearch | None = None,
    ) -> list[Hit]: ...

    def search_vector(
        self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = (),
        ann: AnnSearch | None = None,
    ) -> list[Hit]: ...

    def document(self, doc_id: str) -> DocRow | None: ...

    def image_file(self, record: DocRow, image_root: str | Path | None = None) -> Path: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...
