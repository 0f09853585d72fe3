"""Bounds on the work the service takes on: a queue per kind of expensive work and a per-client rate.

Both refuse early instead of queueing without end: a full queue answers 503 with ``Retry-After``
(as serving engines such as TEI do), a client over its rate answers 429.
"""
from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi.concurrency import run_in_threadpool

from service import metrics
from service.exceptions import BatchTooLarge, Busy, InputError

__all__ = ["Busy", "WorkQueue", "RateLimiter", "check_batch"]

T = TypeVar("T")


def check_batch(n: int, limit: int, what: str, setting: str) -> None:
    """Refuse an empty batch (422) or one over ``limit`` (413, the message names the setting)."""
    if n == 0:
        raise InputError(f"no {what} given: send 1 to {limit}", "inputs" if what == "texts" else "file")
    if n > limit:
        raise BatchTooLarge(f"{n} {what} in one request; the limit is {limit} ({setting})")


class WorkQueue:
    """At most ``workers`` jobs of one kind run at once (in the thread pool) and at most ``queue``
    more requests wait for them; further requests are refused with :class:`Busy` at once.

    A request is admitted (:meth:`admit`) before it reads its body, so waiting requests hold at
    most one body each, and it takes a worker (:meth:`run`) only for the work itself, so a slow
    upload does not hold a worker. Must be used from the event loop.
    """

    def __init__(self, kind: str, workers: int, queue: int, retry_after_s: int = 1):
        self.kind, self.workers, self.queue, self.retry_after_s = kind, workers, queue, retry_after_s
        self._workers = asyncio.Semaphore(workers)
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Requests inside :meth:`admit` now (running or waiting)."""
        return self._admitted

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Count the request against the queue while inside; :class:`Busy` when it is full."""
        if self._admitted >= self.workers + self.queue:
            metrics.ERRORS.labels(f"busy_{self.kind}").inc()
            raise Busy(self.kind, self.retry_after_s)
        self._admitted += 1
        try:
            yield
        finally:
            self._admitted -= 1

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the thread pool, once one of the workers is free."""
        async with self._workers:
            return await run_in_threadpool(fn, *args)


class RateLimiter:
    """A token bucket per client: ``rate_per_s`` requests a second, ``burst`` at once.

    Keeps the ``max_clients`` most recently seen clients (a full bucket is what a new client
    gets anyway, so forgetting an idle one changes nothing). Thread-safe.
    """

    def __init__(self, rate_per_s: float, burst: int, max_clients: int = 10_000):
        self.rate, self.burst, self.max_clients = rate_per_s, burst, max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, time)
        self._lock = threading.Lock()

    def wait_s(self, client: str, now: float | None = None) -> float:
        """0 when ``client`` may make a request now (and it is counted), else the seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self._buckets[client] = (tokens - 1 if wait == 0 else tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait


def retry_after(wait_s: float, minimum: int = 1) -> str:
    """A ``Retry-After`` value in whole seconds."""
    return str(max(minimum, math.ceil(wait_s)))
