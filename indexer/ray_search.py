"""Shards served by Ray actors with replicas: the searcher interface when an index outgrows one machine.

Each shard of the published generation is served by ``replicas`` :class:`ShardReplica` actors, each
a :class:`indexer.sharded.ShardSearcher` (one JVM, one shard) in its own process, anywhere on the
cluster. A request fans out to one replica of every shard (round robin, all shards at once) and
merges their top-k exactly as :class:`indexer.sharded.ShardedSnapshot` does. A replica that dies
costs no request: its call is sent again to the next replica of the same shard, and the dead one is
dropped; only a shard with no live replica left fails the request.

:class:`RaySearcher` has the searcher interface (:class:`indexer.protocols.Searcher`). Replicas
follow ``CURRENT`` on their own; every answer carries the index
version it came from, and a snapshot that gets answers from two versions (a refresh racing with a
request) refuses them rather than mixing generations.
"""
from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer import layout
from indexer.ann import AnnSearch
from indexer.generation import shard_of
from indexer.hits import Hit, rank_order
from indexer.info import IndexInfo, read_info
from indexer.metadata import DocRow, resolve_path
from indexer.searcher import SnapshotReads
from indexer.sharded import merge_top
from models.sparse import quantize_weights

if TYPE_CHECKING:
    from models.bundle import Bundle


class ShardReplica:
    """One replica of one shard (run as a Ray actor): searches and reads documents of that shard."""

    def __init__(self, index_root: str, shard: int, slice_docs: int | None = None):
        from indexer.lucene_search import set_slice_docs
        from indexer.sharded import ShardSearcher

        if slice_docs is not None:
            set_slice_docs(slice_docs)
        self.searcher = ShardSearcher(index_root, shard)

    def search_vector(self, impacts: dict[str, int], k: int, exclude: list[str], require: list[str],
                      ann: AnnSearch | None = None) -> tuple[str, list[Hit]]:  # fmt: skip
        with self.searcher.snapshot() as snap:
            return snap.version, snap.search_vector(impacts, k, exclude, require, ann)

    def top(self, impacts: dict[str, int], k: int, exclude: list[str], require: list[str],
            ann: AnnSearch | None = None) -> tuple[str, list[tuple[str, int]]]:  # fmt: skip
        with self.searcher.snapshot() as snap:
            return snap.version, snap.top(impacts, k, exclude, require, ann)

    def count(self, impacts: dict[str, int]) -> tuple[str, int]:
        with self.searcher.snapshot() as snap:
            return snap.version, snap.count(impacts)

    def document(self, doc_id: str) -> tuple[str, DocRow | None]:
        with self.searcher.snapshot() as snap:
            return snap.version, snap.document(doc_id)

    def refresh(self) -> str:
        self.searcher.refresh()
        return self.searcher.info.index_version

    def pid(self) -> int:
        import os

        return os.getpid()


class NoReplicaError(RuntimeError):
    """Every replica of a shard is gone."""


class RaySearcher(SnapshotReads):
    """N shards x ``replicas`` Ray actors behind the searcher interface (:class:`indexer.protocols.Searcher`).

    Parameters
    ----------
    index_root : the index root; every node of the cluster must see it at this path.
    replicas : actors per shard.
    num_cpus : CPUs Ray reserves per actor (a fraction packs several on a small machine).
    """

    def __init__(self, index_root: str | Path, replicas: int = 2, num_cpus: float = 1.0, slice_docs: int | None = None):
        import ray

        if not ray.is_initialized():
            ray.init()
        self.root = Path(index_root)
        self._info = read_info(layout.require_generation(self.root))
        actor = ray.remote(num_cpus=num_cpus, max_restarts=0)(ShardReplica)
        self._lock = threading.Lock()
        self.replicas: list[list[Any]] = [
            [actor.remote(str(self.root), i, slice_docs) for _ in range(replicas)] for i in range(self._info.shards)
        ]
        self._turn = itertools.count()
        versions = {v for v in self._broadcast("refresh")}
        if versions != {self._info.index_version}:  # a publish while the replicas started: follow it
            self.refresh()

    # ---- calls with fail-over --------------------------------------------------------------
    def _pick(self, shard: int, skip: set) -> Any:
        with self._lock:
            live = [a for a in self.replicas[shard] if a not in skip]
            if not live:
                raise NoReplicaError(f"no live replica of shard {shard}")
            return live[next(self._turn) % len(live)]

    def _drop(self, shard: int, actor: Any) -> None:
        with self._lock:
            if actor in self.replicas[shard]:
                self.replicas[shard].remove(actor)

    def call(self, shards: Iterable[int], method: str, *args: Any) -> list:
        """``method(*args)`` on one replica of each of ``shards``, all at once; a replica that died
        is dropped and its call sent to another replica of its shard."""
        import ray
        from ray.exceptions import RayActorError

        shards = list(shards)
        tried: dict[int, set] = {s: set() for s in shards}
        pending = {}
        for s in shards:
            actor = self._pick(s, tried[s])
            pending[s] = (actor, getattr(actor, method).remote(*args))
        out = {}
        while pending:
            s, (actor, ref) = pending.popitem()
            try:
                out[s] = ray.get(ref)
            except RayActorError:
                self._drop(s, actor)
                tried[s].add(actor)
                nxt = self._pick(s, tried[s])
                pending[s] = (nxt, getattr(nxt, method).remote(*args))
        return [out[s] for s in shards]

    def _broadcast(self, method: str) -> list:
        import ray

        with self._lock:
            actors = [a for group in self.replicas for a in group]
        return ray.get([getattr(a, method).remote() for a in actors])

    # ---- the searcher interface (the one-shot reads are SnapshotReads') ----------------------
    def snapshot(self) -> RaySnapshot:
        with self._lock:
            return RaySnapshot(self, self._info)

    def refresh(self, require_bundle: Bundle | None = None) -> bool:
        """Move every replica to the newest published generation; same contract as
        :meth:`indexer.searcher.LexicalSearcher.refresh` (a shard count change needs new actors)."""
        from indexer.metadata import bundle_mismatch
        from indexer.searcher import BundleMismatchError

        latest = layout.current_generation(self.root)
        if latest is None:
            return False
        fresh = read_info(latest)
        if fresh.index_version == self.info.index_version:
            return False
        if fresh.shards != len(self.replicas):
            raise ValueError(f"{latest.name} has {fresh.shards} shards, the replicas serve {len(self.replicas)}: redeploy")
        problem = None if require_bundle is None else bundle_mismatch(fresh, require_bundle)
        if problem is not None:
            raise BundleMismatchError(f"{latest.name} was {problem}")
        self._broadcast("refresh")
        with self._lock:
            self._info = fresh
        return True

    def close(self) -> None:
        import ray

        with self._lock:
            actors = [a for group in self.replicas for a in group]
            self.replicas = [[] for _ in self.replicas]
        for a in actors:
            ray.kill(a)


class RaySnapshot:
    """One request's view: every answer must come from the generation ``info`` names."""

    def __init__(self, searcher: RaySearcher, info: IndexInfo):
        self._searcher, self._info = searcher, info
        self._released = False

    @property
    def info(self) -> IndexInfo:
        return self._info

    @property
    def released(self) -> bool:
        return self._released

    @property
    def version(self) -> str:
        return self.info.index_version

    def _answers(self, shards: Iterable[int], method: str, *args: Any) -> list:
        answers = self._searcher.call(shards, method, *args)
        versions = {v for v, _ in answers}
        if versions != {self.version}:
            raise RuntimeError(f"replicas answered from {sorted(versions)} while serving {self.version}; retry")
        return [a for _, a in answers]

    def search(self, query: Mapping[str, float], k: int = 10, exclude: Iterable[str] = (), require: Iterable[str] = (),
               ann: AnnSearch | None = None) -> list[Hit]:  # fmt: skip
        return self.search_vector(quantize_weights(query, self.info.quant_scale), k, exclude, require, ann)

    def search_vector(self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = (),
                      require: Iterable[str] = (), ann: AnnSearch | None = None) -> list[Hit]:
        per_shard = self._answers(range(self.info.shards), "search_vector", dict(impacts), int(k), list(exclude), list(require), ann)
        return merge_top(per_shard, k, key=lambda h: rank_order(h.doc_id, h.score))

    def top(self, impacts: Mapping[str, int], k: int = 10, exclude: Iterable[str] = (),
            require: Iterable[str] = (), ann: AnnSearch | None = None) -> list[tuple[str, int]]:
        per_shard = self._answers(range(self.info.shards), "top", dict(impacts), int(k), list(exclude), list(require), ann)
        return merge_top(per_shard, k, key=lambda t: rank_order(t[0], t[1]))

    def count(self, impacts: Mapping[str, int]) -> int:
        return sum(self._answers(range(self.info.shards), "count", dict(impacts)))

    def document(self, doc_id: str) -> DocRow | None:
        return self._answers([shard_of(doc_id, self.info.shards)], "document", doc_id)[0]

    def image_file(self, record: DocRow, image_root: str | Path | None = None) -> Path:
        """:meth:`LexicalSnapshot.image_file <indexer.snapshot.LexicalSnapshot.image_file>`."""
        return resolve_path(record.path, image_root or self.info.image_root)

    def close(self) -> None:
        self._released = True

    def __enter__(self) -> RaySnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
