"""The engine behind the routes: one bundle, one searcher, one cache, and the three parts that use them.

* ``engine.search`` (:class:`service.search.Search`): queries encoded, searched and explained;
  the sparse vectors of texts.
* ``engine.images`` (:class:`service.images.Images`): uploads decoded, encoded and embedded;
  indexed images served, thumbnailed and heatmapped.
* ``engine.index`` (:class:`service.lifecycle.IndexLifecycle`): reloads of newer generations,
  readiness, the versions served.

Routes stay thin; their work is in small synchronous methods of these parts, which the routes run
in a thread pool (ONNX and Lucene work is CPU-bound). The errors they raise, and the HTTP status
of each, are :mod:`service.exceptions`.
"""
from __future__ import annotations

from indexer.protocols import Searcher
from models.bundle import Bundle, BundleError
from service.cache import ResilientCache
from service.config import Settings
from service.exceptions import NotFound, StartupError
from service.images import Images, image_urls
from service.lifecycle import IndexLifecycle, check_versions, open_index
from service.search import Search, unencoded_words

__all__ = ["Engine", "StartupError", "NotFound", "image_urls", "unencoded_words", "check_versions", "open_index"]


class Engine:
    """The service's parts over already-open components (:meth:`load` opens them from settings).

    Parameters
    ----------
    settings : service settings.
    bundle, searcher, cache : the model bundle, the index's searcher and the Redis cache.

    Raises :class:`StartupError` when the index was not built with the bundle.
    """

    def __init__(self, settings: Settings, bundle: Bundle, searcher: Searcher, cache: ResilientCache):
        self.settings, self.bundle, self.searcher, self.cache = settings, bundle, searcher, cache
        self.images = Images(settings, bundle, searcher, cache)
        self.index = IndexLifecycle(bundle, searcher, cache, on_switch=self.images.clear_thumbnails)  # checks the versions
        self.search = Search(settings, bundle, searcher, cache)

    @classmethod
    def load(cls, settings: Settings) -> Engine:
        """Open bundle, index and cache; fail fast with one clear message."""
        try:
            bundle = Bundle(settings.bundle, device=settings.device, threads=settings.threads, spinning=settings.ort_spinning,
                            text_precision=settings.text_precision, query_mode=settings.query_mode)  # fmt: skip
        except BundleError as exc:
            raise StartupError(str(exc)) from exc
        searcher = open_index(settings.index, settings.search_replicas, settings.jvm_heap, settings.search_slice_docs)
        cache = ResilientCache(
            settings.redis_url, settings.cache_ttl_s, settings.cache_socket_timeout_s, settings.cache_probe_interval_s,
            settings.cache_max_entry_bytes,
        )  # fmt: skip
        try:
            engine = cls(settings, bundle, searcher, cache)
        except StartupError:
            searcher.close()
            raise
        bundle.warm()  # create the sessions the query mode needs before the first request
        return engine

    def close(self) -> None:
        """Release the searcher, the cache connection and the query encoder's thread."""
        self.searcher.close()
        self.cache.close()
        self.search.close()
