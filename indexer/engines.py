"""The one place that picks an index job's engine: :func:`engine_class`.

The only module that knows both engines: the local one (:mod:`indexer.job_engine`) and the Ray one
(:mod:`indexer.ray_job`, imported only when asked for: Ray is an optional extra). The driver
(:func:`indexer.job.run_index_job`) and :func:`indexer.publish.publish_rows` ask it for theirs.
"""
from __future__ import annotations

from indexer.job_config import IndexEngine
from indexer.job_engine import JobEngine, LocalEngine

__all__ = ["engine_class"]


def engine_class(kind: IndexEngine) -> type[JobEngine]:
    """The engine that runs ``kind`` (the Ray one imported only when asked for: Ray is optional)."""
    if IndexEngine(kind) is IndexEngine.RAY:
        from indexer.ray_job import RayEngine

        return RayEngine
    return LocalEngine
