"""The index's life in the service: opening it, checking it fits the bundle, reloading newer
generations, and what ``/readyz`` reports.

A newly published generation is switched to only when it was built with the served bundle
(:func:`indexer.metadata.bundle_mismatch`); a refused or broken one leaves the current one served.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from indexer.info import IndexInfo
from indexer.protocols import Searcher
from models.bundle import Bundle
from service import metrics
from service.cache import ResilientCache
from service.exceptions import StartupError
from service.results import ReadinessResult

__all__ = ["IndexLifecycle", "open_index", "check_versions"]

log = logging.getLogger(__name__)


def open_index(index_root: Path, replicas: int = 0, jvm_heap: str | None = None, slice_docs: int | None = None) -> Searcher:
    """The searcher of ``index_root`` (:func:`indexer.searchers.open_searcher`), or
    :class:`StartupError` when there is none or it cannot be read.

    In-process, this process's JVM is started first, with ``jvm_heap`` as its ``-Xmx`` (the heap
    is fixed when the JVM starts); with ``replicas``, each Ray actor has a JVM of its own.
    """
    try:
        import indexer.sharded  # noqa: F401 -- the in-process reader: jnius and the Lucene classes
        from indexer.info import IndexFormatError
        from indexer.layout import IndexNotFoundError
        from indexer.searchers import open_searcher
    except ImportError as exc:
        raise StartupError(f"the index reader (indexer.sharded) cannot be imported: {exc}") from exc
    try:
        if not replicas:
            from indexer.jvm import start_jvm

            start_jvm(jvm_heap)
        return open_searcher(index_root, replicas=replicas, slice_docs=slice_docs)
    except (IndexNotFoundError, IndexFormatError) as exc:
        raise StartupError(str(exc)) from exc


def check_versions(bundle: Bundle, info: IndexInfo) -> None:
    """Raise :class:`StartupError` when the index does not fit the bundle (``bundle_mismatch``)."""
    from indexer.metadata import bundle_mismatch

    problem = bundle_mismatch(info, bundle)
    if problem is not None:
        raise StartupError(
            f"index {info.index_version} was {problem} (the bundle the service loaded); "
            "serve the bundle the index was built with, or rebuild the index"
        )


class IndexLifecycle:
    """Which generation the service serves, and whether it is ready.

    Parameters
    ----------
    bundle, searcher, cache : the engine's open components.
    on_switch : called after each switch to a new generation (the engine forgets what it kept
        in memory for the old one).

    Raises :class:`StartupError` when the published index does not fit the bundle.
    """

    def __init__(self, bundle: Bundle, searcher: Searcher, cache: ResilientCache, on_switch: Callable[[], None] = lambda: None):
        self.bundle, self.searcher, self.cache, self._on_switch = bundle, searcher, cache, on_switch
        info = searcher.info
        check_versions(bundle, info)
        metrics.BUILD_INFO.clear()  # one label set: what this process serves now
        metrics.BUILD_INFO.labels(metrics.package_version(), bundle.config.name, bundle.version).set(1)
        metrics.INDEX_DOCUMENTS.set(info.doc_count)
        self._reload_lock = threading.Lock()

    def versions(self) -> dict[str, str]:
        """``{"bundle": ..., "index": ...}`` of what is being served right now."""
        return {"bundle": self.bundle.version, "index": self.searcher.info.index_version}

    def reload(self) -> tuple[bool, str]:
        """Switch to a newly published generation if its bundle version matches ours."""
        with self._reload_lock:
            from indexer.searcher import BundleMismatchError

            before = self.searcher.info.index_version
            try:
                switched = self.searcher.refresh(require_bundle=self.bundle)
            except BundleMismatchError as exc:
                metrics.RELOADS.labels("refused").inc()
                return False, f"published index refused ({exc}); serving {self.bundle.version}, kept {before}"
            except Exception as exc:  # a broken generation must not take the service down
                metrics.RELOADS.labels("error").inc()
                log.exception("index refresh failed")
                return False, f"refresh failed: {exc}"
            info = self.searcher.info
            if switched:
                metrics.RELOADS.labels("switched").inc()
                metrics.INDEX_DOCUMENTS.set(info.doc_count)
                self._on_switch()
                log.info("switched index %s -> %s", before, info.index_version)
                return True, f"switched from {before} to {info.index_version}"
            return False, f"already serving the newest index {info.index_version}"

    def readiness(self) -> ReadinessResult:
        """What ``/readyz`` reports."""
        from indexer.metadata import bundle_mismatch

        info = self.searcher.info
        problem = bundle_mismatch(info, self.bundle)
        ready = problem is None
        return ReadinessResult(ready, self.bundle.version, info.index_version, info.bundle_version, info.doc_count,
                               self.bundle.providers, self.cache.available, None if ready else f"the index was {problem}")  # fmt: skip
