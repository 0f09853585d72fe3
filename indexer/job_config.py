"""What one index job is asked to do: :class:`IndexJobConfig`, and :class:`IndexEngine`, where it runs.

The bottom of the index job's layers; it knows no engine and no driver::

    job_config   the settings (this module)
    planner      plans each shard's inputs on the engine's workers (the driver keeps counts only)
    job_engine   the engine interface and the local engine
    ray_job      the Ray engine (optional: needs the ``ray`` extra)
    engines      picks one engine for an IndexEngine (the one module that knows both)
    publish      makes a generation from the engines' parts
    job          the driver, :func:`indexer.job.run_index_job`

Each module imports only modules listed above it (``tests/indexer/test_import_layers.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from indexer.ann import AnnBuild
from models.preprocess import DEFAULT_MAX_PIXELS

__all__ = ["IndexEngine", "IndexJobConfig"]


class IndexEngine(StrEnum):
    """Where an index job decodes, encodes and builds the shards' Lucene indexes."""

    LOCAL = "local"  # this process: decoding threads, one ONNX session, index build threads (java)
    RAY = "ray"  # the Ray cluster ``ray.init`` connects to (the ``ray`` extra)


@dataclass
class IndexJobConfig:
    """Settings of one ``lexvla index`` run."""

    bundle: Path
    input: str | Path  # a folder, a manifest, or a manifest's fsspec URL (indexer.manifest)
    root: Path
    batch_size: int = 32
    part_rows: int = 256  # engine RAY: rows each encode actor writes per part batch
    decode_workers: int = 2  # engine LOCAL: decoding threads
    index_threads: int = 2  # engine LOCAL: Lucene build threads (java)
    java_heap: str = "1g"
    max_pixels: int = DEFAULT_MAX_PIXELS
    rebuild: bool = False  # ignore the published generation and index every input afresh
    engine: IndexEngine = IndexEngine.LOCAL  # where encoding and the shard builds run
    shards: int | None = None  # None: the published generation's count (1 for a new index)
    device: str = "auto"
    progress: bool = True
    keep_generations: int = 2
    # Image paths under this folder are stored relative to it. Default: the root the published
    # index recorded, else the deepest folder holding every input of the first build.
    image_root: Path | None = None
    # The approximate path's structure (indexer.ann.AnnBuild), None for none; "base": the published
    # generation's settings (AnnBuild's defaults for a new index or a rebuild).
    ann: AnnBuild | None | str = "base"

    def __post_init__(self) -> None:
        self.engine = IndexEngine(self.engine)  # a ValueError for an unknown engine, before any work
