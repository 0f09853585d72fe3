"""A Redis cache that degrades to "no cache" when Redis is away, never to errors.

Every call has a short socket timeout. After a failure the cache is off and requests do not touch
Redis; a background thread pings it every ``probe_interval_s`` and turns the cache back on as
soon as Redis answers, so a restart costs about one probe interval, not a growing back-off.
Entries larger than ``max_entry_bytes`` are not stored: a few huge results must not evict the
many small ones.

Every entry is ``{"format": ENTRY_FORMAT, "value": ...}`` under a key that names the format too
(:func:`cache_key`). The values are compact positional lists (a text's ``[[word, weight], ...]``,
a result's :meth:`service.results.TextSearchResult.to_cache`, a heatmap's grid); when one of them
changes shape, ``ENTRY_FORMAT`` goes up, and the entries another build of the service wrote (in a
shared Redis, or before an upgrade) are misses, never misread: their keys differ, and an entry
found with another format or none is ignored (outcome ``stale``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import redis

from service import metrics

log = logging.getLogger(__name__)

# The layout of every value the service caches. 1: the bare positional lists (no version);
# 2: the same lists inside {"format": 2, "value": ...}. Bump it when any cached value changes shape.
ENTRY_FORMAT = 2


def cache_key(prefix: str, kind: str, versions: tuple[str, ...], request: Any) -> str:
    """``prefix:kind:f<ENTRY_FORMAT>:v1:v2:sha256(request)``; ``request`` must be JSON-able (any
    ``str``, even one with unpaired surrogates, hashes: they are encoded as they are)."""
    blob = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return ":".join([prefix, kind, f"f{ENTRY_FORMAT}", *versions, digest])


def _entry(raw: bytes) -> tuple[bool, Any]:
    """``(True, value)`` of a stored entry of this ``ENTRY_FORMAT``; ``(False, None)`` for any other."""
    try:
        data = json.loads(raw)
    except ValueError:
        return False, None
    if isinstance(data, dict) and data.keys() == {"format", "value"} and data["format"] == ENTRY_FORMAT:
        return True, data["value"]
    return False, None


class ResilientCache:
    """JSON values in Redis with a TTL.

    Parameters
    ----------
    url : Redis URL, or an empty string for no cache at all.
    ttl_s : time to live of every entry.
    socket_timeout_s : connect and read timeout of each call.
    probe_interval_s : pause between the pings that look for Redis while it is away.
    max_entry_bytes : serialised values larger than this are not stored.
    """

    def __init__(
        self, url: str, ttl_s: int = 3600, socket_timeout_s: float = 0.1, probe_interval_s: float = 0.5,
        max_entry_bytes: int = 256_000,
    ):  # fmt: skip
        self.url, self.ttl_s, self.probe_interval_s, self.max_entry_bytes = url, ttl_s, probe_interval_s, max_entry_bytes
        self._client = (
            redis.Redis.from_url(
                url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s, retry_on_timeout=False
            )
            if url
            else None
        )
        self._lock = threading.Lock()
        self._down = False
        self._closed = threading.Event()
        self._prober: threading.Thread | None = None

    @property
    def available(self) -> bool:
        """False when there is no Redis or it did not answer since its last failure."""
        return self._client is not None and not self._down

    def get(self, key: str, kind: str) -> Any | None:
        """The cached value, or ``None`` on a miss, for an entry of another format, or while Redis is down."""
        raw = self._call(lambda c: c.get(key))
        if raw is None:
            metrics.CACHE.labels(kind, "miss" if self.available else "unavailable").inc()
            return None
        current, value = _entry(raw)
        if not current:
            metrics.CACHE.labels(kind, "stale").inc()
            return None
        metrics.CACHE.labels(kind, "hit").inc()
        return value

    def set(self, key: str, value: Any, kind: str = "value") -> bool:
        """Store ``value`` for ``ttl_s``; ``False`` when it was not stored (too large, or Redis down)."""
        if not self.available:
            return False
        entry = {"format": ENTRY_FORMAT, "value": value}
        blob = json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
        if len(blob) > self.max_entry_bytes:
            metrics.CACHE.labels(kind, "too_large").inc()
            return False
        return bool(self._call(lambda c: c.set(key, blob, ex=self.ttl_s)))

    def ping(self) -> bool:
        """True when Redis answers now (and the cache is on again)."""
        if self._client is None:
            return False
        try:
            self._client.ping()
        except (redis.RedisError, OSError):
            return False
        with self._lock:
            if self._down:
                log.info("redis is back; cache on")
            self._down = False
        return True

    def _call(self, fn: Callable[[redis.Redis], Any]) -> Any:
        client = self._client
        if client is None or self._down:  # not available
            return None
        try:
            return fn(client)
        except (redis.RedisError, OSError) as exc:
            self._mark_down(exc)
            return None

    def _mark_down(self, exc: Exception) -> None:
        metrics.ERRORS.labels("cache").inc()
        with self._lock:
            if self._down:
                return
            self._down = True
            log.warning("redis unavailable (%s); cache off until a ping every %.2f s gets an answer", exc, self.probe_interval_s)
            if self._prober is None:
                self._prober = threading.Thread(target=self._probe, daemon=True, name="redis-probe")
                self._prober.start()

    def _probe(self) -> None:
        """Ping until Redis answers; the thread ends (under the lock) only while the cache is on."""
        while not self._closed.wait(self.probe_interval_s):
            self.ping()
            with self._lock:
                if not self._down:
                    self._prober = None
                    return

    def close(self) -> None:
        self._closed.set()
        prober = self._prober
        if prober is not None:
            prober.join(timeout=2)
        if self._client is not None:
            self._client.close()
