"""The one place that picks a searcher for an index root: :func:`open_searcher`.

The interface every searcher has is declared in :mod:`indexer.protocols`, which knows no
implementation; this module knows them all: in this process :class:`indexer.sharded.ShardedSearcher`
(any shard count), on Ray actors :class:`indexer.ray_search.RaySearcher`. Each is imported only when
it is opened (the in-process one starts jnius, the Ray one needs the ``ray`` extra).

mypy checks here that every implementation satisfies the protocols (the block at the end of this
module); ``tests/indexer/test_protocols.py`` checks real objects at run time.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from indexer import layout
from indexer.info import read_info
from indexer.protocols import Searcher

__all__ = ["open_searcher"]


def open_searcher(index_root: str | Path, replicas: int = 0, num_cpus: float = 1.0, slice_docs: int | None = None) -> Searcher:
    """The searcher that serves ``index_root``: with ``replicas`` > 0, a
    :class:`~indexer.ray_search.RaySearcher` (``replicas`` Ray actors per shard, each reserving
    ``num_cpus``); otherwise a :class:`~indexer.sharded.ShardedSearcher` in this process (its JVM).
    ``slice_docs``: :func:`indexer.lucene_search.set_slice_docs` for the Lucene searchers it opens,
    here or in each actor (0: one thread scores a search's segments; ``None``: left as this process
    has it, the default unless ``set_slice_docs`` changed it).

    The published generation is read first, so a missing or unreadable index fails here
    (:class:`indexer.layout.IndexNotFoundError`, :class:`indexer.info.IndexFormatError`) before
    any actor starts. In-process, a generation of one shard is served by the sharded searcher too:
    it reads it as :class:`~indexer.searcher.LexicalSearcher` does (no merge), and it still serves
    the index after a ``--rebuild`` re-shards it, which the unsharded searcher refuses.
    """
    root = Path(index_root)
    read_info(layout.require_generation(root))
    if replicas > 0:
        from indexer.ray_search import RaySearcher

        return RaySearcher(root, replicas=replicas, num_cpus=num_cpus, slice_docs=slice_docs)
    from indexer.lucene_search import set_slice_docs
    from indexer.sharded import ShardedSearcher

    if slice_docs is not None:
        set_slice_docs(slice_docs)

    return ShardedSearcher(root)


if TYPE_CHECKING:  # never runs: mypy checks here that every implementation satisfies the protocols
    from indexer.protocols import Snapshot
    from indexer.ray_search import RaySearcher, RaySnapshot
    from indexer.searcher import LexicalSearcher
    from indexer.sharded import ShardedSearcher, ShardedSnapshot, ShardSearcher
    from indexer.snapshot import LexicalSnapshot

    def _implementations(
        lexical: LexicalSearcher, sharded: ShardedSearcher, shard: ShardSearcher, ray: RaySearcher,
        lexical_snapshot: LexicalSnapshot, sharded_snapshot: ShardedSnapshot, ray_snapshot: RaySnapshot,
    ) -> tuple[list[Searcher], list[Snapshot]]:  # fmt: skip
        return [lexical, sharded, shard, ray], [lexical_snapshot, sharded_snapshot, ray_snapshot]
