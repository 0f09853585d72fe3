"""A Redis cache that degrades to "no cache" when Redis is away, never to errors.

Every call has a short socket timeout; after a failure the cache stays off for a back-off period
(doubling up to ``MAX_BACKOFF_S``) instead of paying a timeout on every request.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from typing import Any

import redis

from service import metrics

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 60.0


def cache_key(prefix: str, kind: str, versions: tuple[str, ...], request: Any) -> str:
    """``prefix:kind:v1:v2:sha256(request)``; ``request`` must be JSON-able."""
    blob = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:32]
    return ":".join([prefix, kind, *versions, digest])


class ResilientCache:
    """JSON values in Redis with a TTL.

    Parameters
    ----------
    url : Redis URL, or an empty string for no cache at all.
    ttl_s : time to live of every entry.
    socket_timeout_s : connect and read timeout of each call.
    backoff_s : first pause after a failure.
    """

    def __init__(self, url: str, ttl_s: int = 3600, socket_timeout_s: float = 0.1, backoff_s: float = 5.0):
        self.url, self.ttl_s, self.first_backoff_s = url, ttl_s, backoff_s
        self._client = (
            redis.Redis.from_url(
                url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s, retry_on_timeout=False
            )
            if url
            else None
        )
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._backoff_s = backoff_s

    @property
    def available(self) -> bool:
        """False when there is no Redis or it is inside a back-off period."""
        return self._client is not None and time.monotonic() >= self._down_until

    def get(self, key: str, kind: str) -> Any | None:
        """The cached value, or ``None`` on a miss or while Redis is down."""
        raw = self._call(lambda c: c.get(key))
        if raw is None:
            metrics.CACHE.labels(kind, "miss" if self.available else "unavailable").inc()
            return None
        metrics.CACHE.labels(kind, "hit").inc()
        return json.loads(raw)

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` for ``ttl_s``; silently skipped while Redis is down."""
        blob = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        self._call(lambda c: c.set(key, blob, ex=self.ttl_s))

    def ping(self) -> bool:
        """True when Redis answers now (ignores and resets the back-off)."""
        if self._client is None:
            return False
        with self._lock:
            self._down_until = 0.0
        return bool(self._call(lambda c: c.ping()))

    def _call(self, fn):
        if not self.available:
            return None
        try:
            result = fn(self._client)
        except (redis.RedisError, OSError) as exc:
            self._mark_down(exc)
            return None
        with self._lock:
            self._backoff_s = self.first_backoff_s
        return result

    def _mark_down(self, exc: Exception) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self._backoff_s
            log.warning("redis unavailable (%s); cache off for %.1f s", exc, self._backoff_s)
            self._backoff_s = min(MAX_BACKOFF_S, max(self._backoff_s * 2, 0.1))
        metrics.ERRORS.labels("cache").inc()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
