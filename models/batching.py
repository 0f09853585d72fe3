"""Dynamic micro-batching: many callers hand in one item each, one worker runs them in batches.

Used where one serialised resource does the work better in bulk: the text encoder (one ONNX call
for the queries that arrived together, ``service.engine``) and the Lucene search (one crossing into
Java for the searches waiting, which Java then runs on all cores, ``indexer.searcher``).

Under no load a caller's item runs alone at once (with ``max_wait_s=0``); under load, the items
that arrive while a batch runs form the next batch, up to ``max_batch``. ``max_wait_s`` lets the
worker hold a batch open a little longer for more items. Each caller gets its own result or its own
exception: one bad item does not fail the batch it rode in.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Run ``run_batch(items) -> results`` on one worker for items given one at a time by many threads.

    Parameters
    ----------
    run_batch : takes a list of items, returns one result per item, in order; an element that is an
        exception is raised to that item's caller only. An exception raised by ``run_batch`` itself
        reaches every caller of the batch.
    max_batch : most items in one call.
    max_wait_s : how long the worker waits for more items after the first one of a batch arrived
        (0: it takes what is waiting and goes).
    executor : where batches run; one thread of its own by default. A shared one-thread executor
        (such as the JVM thread) serialises batches with the other work given to it.
    """

    def __init__(self, run_batch: Callable[[list[T]], Sequence[R | BaseException]], max_batch: int = 64,
                 max_wait_s: float = 0.0, executor: Executor | None = None, name: str = "batch"):  # fmt: skip
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait_s >= 0, got {max_batch} and {max_wait_s}")
        self.run_batch, self.max_batch, self.max_wait_s = run_batch, max_batch, max_wait_s
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: list[tuple[T, Future, float]] = []  # (item, its caller's future, arrival time)
        self._scheduled = False  # a drain is queued or running on the executor
        self._cond = threading.Condition()
        self.batches = 0  # batches run so far, and the items in them (for tests and metrics)
        self.items = 0

    def __call__(self, item: T) -> R:
        """The result of ``item`` (blocks until its batch has run)."""
        future: Future = Future()
        with self._cond:
            self._pending.append((item, future, time.monotonic()))
            start, self._scheduled = not self._scheduled, True
            self._cond.notify()
        if start:
            self._executor.submit(self._drain)
        return future.result()

    def close(self) -> None:
        """Stop the worker thread this batcher started (a shared executor is left alone)."""
        if self._own_executor:
            self._executor.shutdown(wait=False)

    def _drain(self) -> None:
        with self._cond:
            if self.max_wait_s > 0:
                deadline = self._pending[0][2] + self.max_wait_s
                while len(self._pending) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            if self._pending:
                self._executor.submit(self._drain)  # the rest go next (behind this batch on the executor)
            else:
                self._scheduled = False
            self.batches += 1
            self.items += len(batch)
        try:
            results = self.run_batch([item for item, _, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} items gave {len(results)} results")
        except BaseException as exc:  # noqa: BLE001 -- every caller of the batch gets it, the worker goes on
            for _, future, _ in batch:
                future.set_exception(exc)
            return
        for (_, future, _), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
