"""Where an index job runs: the engines the driver (:func:`indexer.job.run_index_job`) plugs in.

The driver does every step that is the same wherever the work runs: planning, the checkpoint,
the progress bar and rejects, publishing. An engine does only what differs::

    step         LocalEngine (this process)           RayEngine (indexer.ray_job: a Ray cluster)
    inputs       the input, streamed in chunks        the input, streamed in chunks
    plan_shards  one thread per shard                 one Ray task per shard
    queue        read lazily by encode                written to WORK/todo/*.parquet
    encode       decoding threads, one ONNX session   Ray Data: decoding tasks, encoding actors
    seal_parts   one part after the other             one Ray task per part
    build_parts  Lucene build threads (java)          one Ray task per part

Both write the same checkpoint: each encoded batch becomes one batch of every shard's part it
hashes to (``indexer.shard_build.write_batch``), named after the run, so a job killed at any point
keeps its finished batches and encodes only the rest when run again.

This module knows no other engine: :func:`indexer.engines.engine_class` picks one for an
:class:`~indexer.job_config.IndexEngine`.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.encode import Reject, encode_local
from indexer.manifest import InputItem, iter_inputs
from indexer.planner import ShardPlan, plan_shard
from indexer.shard_build import PartsReport, build_parts, seal_parts, write_batch

if TYPE_CHECKING:
    from indexer.job_config import IndexJobConfig
    from models.bundle import Bundle

__all__ = ["JobEngine", "LocalEngine"]


class JobEngine(ABC):
    """What one engine does for one job run; see the module's table.

    The driver calls :meth:`inputs`, :meth:`plan_shards`, :meth:`queue` with the planned chunks, :meth:`encode`,
    :meth:`close` once encoding ends (however it ends), then :meth:`seal_parts` and
    :meth:`build_parts`. ``work`` is the job's staging folder, ``run`` names the batches this run
    writes. The two static methods need no job: :func:`indexer.publish.publish_rows` builds with them.
    """

    def __init__(self, cfg: IndexJobConfig, bundle: Bundle, work: Path, shards: int, run: str) -> None:
        self.cfg, self.bundle, self.work, self.shards, self.run = cfg, bundle, work, shards, run

    @abstractmethod
    def inputs(self) -> Iterator[list[InputItem]]:
        """The items of ``cfg.input``, a chunk at a time."""

    @abstractmethod
    def queue(self, todo: Iterable[list[InputItem]]) -> None:
        """Take the planned inputs, chunk by chunk (read from the plan's files), for :meth:`encode`."""

    @staticmethod
    @abstractmethod
    def plan_shards(args: list[tuple[str, int, str | None]]) -> list[ShardPlan]:
        """``indexer.planner.plan_shard`` for every shard (``indexer.planner.plan_args``), in shard order."""

    @abstractmethod
    def encode(self, known_bad: Mapping[str, str]) -> Iterator[tuple[int, list[Reject]]]:
        """Decode and encode the queued inputs into batches of the parts (names starting with
        ``f"{run}-"``); yields ``(documents written, rejects)`` as batches complete. Content in
        ``known_bad`` (SHA-256 -> reason) is rejected again without decoding."""

    def close(self) -> None:  # noqa: B027 - optional: most engines keep nothing outside the parts
        """Remove what the engine kept for this run besides the parts."""

    @staticmethod
    @abstractmethod
    def seal_parts(work: Path, shards: int, run: str, image_root: Path | None) -> list[int]:
        """``indexer.shard_build.seal_part`` for every part; documents per part."""

    @staticmethod
    @abstractmethod
    def build_parts(work: Path, docs: list[int], threads: int, heap: str, progress: bool) -> PartsReport:
        """Build the Lucene index of every part holding documents (``docs`` per part)."""


class LocalEngine(JobEngine):
    """This process: threads decode, the bundle's ONNX session encodes, threads run the Lucene build."""

    def __init__(self, cfg: IndexJobConfig, bundle: Bundle, work: Path, shards: int, run: str) -> None:
        super().__init__(cfg, bundle, work, shards, run)
        self._todo: Iterable[list[InputItem]] = ()

    def inputs(self) -> Iterator[list[InputItem]]:
        return iter_inputs(self.cfg.input)

    @staticmethod
    def plan_shards(args: list[tuple[str, int, str | None]]) -> list[ShardPlan]:
        with ThreadPoolExecutor(min(len(args), os.cpu_count() or 1), thread_name_prefix="plan") as pool:
            return list(pool.map(lambda a: plan_shard(*a), args))

    def queue(self, todo: Iterable[list[InputItem]]) -> None:
        self._todo = todo  # read as encode goes: the plan's files, shard after shard

    def encode(self, known_bad: Mapping[str, str]) -> Iterator[tuple[int, list[Reject]]]:
        cfg = self.cfg
        items = (it for chunk in self._todo for it in chunk)
        batches = encode_local(self.bundle, items, cfg.batch_size, cfg.decode_workers, cfg.max_pixels, known_bad)
        for k, (rows, rejects) in enumerate(batches):
            if rows:  # the checkpoint unit: one encoded batch, written before the next is encoded
                write_batch(self.work, self.shards, rows, f"{self.run}-{k:06d}")
            yield len(rows), rejects

    @staticmethod
    def seal_parts(work: Path, shards: int, run: str, image_root: Path | None) -> list[int]:
        return seal_parts(work, shards, run, image_root)

    @staticmethod
    def build_parts(work: Path, docs: list[int], threads: int, heap: str, progress: bool) -> PartsReport:
        return build_parts(work, docs, threads, heap, progress)
