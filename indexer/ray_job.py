"""The index job's Ray engine: the driver streams the manifest and plans; the cluster's workers
decode, encode and write each shard's part batches (``indexer.ray_encode``), seal the parts and
build their Lucene indexes; the driver assembles and publishes. Only ids, fingerprints and reject
reasons pass through the driver.

Imported by :func:`indexer.engines.engine_class` only when a job asks for
``IndexEngine.RAY``: Ray is an optional extra. The job's staging folder must be on a filesystem
every worker sees (one machine, or a shared filesystem).
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from indexer.encode import Reject
from indexer.job_engine import JobEngine
from indexer.manifest import InputItem, iter_inputs
from indexer.planner import ShardPlan, plan_shard
from indexer.ray_encode import encode_to_parts
from indexer.shard_build import PartsReport, build_part, part_dir, reused_parts, seal_args, seal_part

if TYPE_CHECKING:
    from indexer.job_config import IndexJobConfig
    from models.bundle import Bundle


class RayEngine(JobEngine):
    """The Ray cluster ``ray.init`` connects to (started on this machine when none is running)."""

    def __init__(self, cfg: IndexJobConfig, bundle: Bundle, work: Path, shards: int, run: str) -> None:
        super().__init__(cfg, bundle, work, shards, run)
        self._todo_dir = work / "todo"
        shutil.rmtree(self._todo_dir, ignore_errors=True)
        self._todo_dir.mkdir(parents=True)
        self._chunks = self._queued = 0

    def inputs(self) -> Iterator[list[InputItem]]:
        return iter_inputs(self.cfg.input)  # bounded chunks: a manifest of any length

    @staticmethod
    def plan_shards(args: list[tuple[str, int, str | None]]) -> list[ShardPlan]:
        _connect()
        task = ray.remote(num_cpus=1, max_retries=0)(plan_shard)
        return ray.get([task.remote(*a) for a in args])

    def queue(self, todo: Iterable[list[InputItem]]) -> None:
        # one file per actor batch: Ray Data reads a file as one block, decoded by one task
        rows = self.cfg.part_rows
        for chunk in todo:
            for j in range(0, len(chunk), rows):
                part = chunk[j : j + rows]
                table = pa.table({"doc_id": [it.doc_id for it in part], "path": [it.path for it in part],
                                  "meta": [json.dumps(it.meta) for it in part]})  # fmt: skip
                pq.write_table(table, self._todo_dir / f"todo-{self._chunks:06d}-{j // rows:05d}.parquet")
            self._chunks += 1
            self._queued += len(chunk)

    def encode(self, known_bad: Mapping[str, str]) -> Iterator[tuple[int, list[Reject]]]:
        if not self._queued:
            return
        cfg = self.cfg
        yield from encode_to_parts(cfg.bundle, self.bundle.image_spec, self._todo_dir, self.work, self.shards, self.run,
                                   batch_size=cfg.batch_size, part_rows=cfg.part_rows, max_pixels=cfg.max_pixels,
                                   known_bad=known_bad)  # fmt: skip

    def close(self) -> None:
        shutil.rmtree(self._todo_dir, ignore_errors=True)

    @staticmethod
    def seal_parts(work: Path, shards: int, run: str, image_root: Path | None) -> list[int]:
        _connect()
        task = ray.remote(num_cpus=1, max_retries=0)(seal_part)
        return ray.get([task.remote(*a) for a in seal_args(work, shards, run, image_root)])

    @staticmethod
    def build_parts(work: Path, docs: list[int], threads: int, heap: str, progress: bool) -> PartsReport:
        """One task (one CPU, one Lucene build thread) per part holding documents; ``threads`` and
        ``progress`` are the local engine's and not used here."""
        todo = [i for i, n in enumerate(docs) if n]
        if not todo:
            return PartsReport(docs, [])
        _connect()
        task = ray.remote(num_cpus=1, max_retries=0)(build_part)
        return reused_parts(docs, todo, ray.get([task.remote(str(part_dir(work, i)), 1, heap) for i in todo]))


def _connect() -> None:
    """Connect to the cluster (``ray.init``: a local one is started when none is running)."""
    if not ray.is_initialized():
        ray.init()
