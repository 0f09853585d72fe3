"""MicroBatcher: concurrent items run together, each caller gets its own result or error."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from models.batching import MicroBatcher


class Recorder:
    """A ``run_batch`` that squares numbers, fails on negative ones and records each batch."""

    def __init__(self, hold: threading.Event | None = None):
        self.batches: list[list[int]] = []
        self.hold = hold

    def __call__(self, items: list[int]) -> list:
        if self.hold is not None:
            self.hold.wait(10)
        self.batches.append(list(items))
        if 13 in items:
            raise RuntimeError("13 fails the whole batch")
        return [ValueError(f"negative: {x}") if x < 0 else x * x for x in items]


def test_alone_an_item_runs_at_once_in_a_batch_of_one():
    rec = Recorder()
    batcher = MicroBatcher(rec, max_batch=8)
    assert [batcher(x) for x in (1, 2, 3)] == [1, 4, 9]
    assert rec.batches == [[1], [2], [3]]


def test_items_that_arrive_while_a_batch_runs_form_the_next_ones_up_to_max_batch():
    hold = threading.Event()
    rec = Recorder(hold)
    batcher = MicroBatcher(rec, max_batch=4)
    with ThreadPoolExecutor(11) as pool:
        first = pool.submit(batcher, 0)
        time.sleep(0.2)  # item 0 is inside run_batch, held
        rest = [pool.submit(batcher, x) for x in range(1, 11)]
        time.sleep(0.3)  # all ten wait behind it
        hold.set()
        assert first.result() == 0 and [f.result() for f in rest] == [x * x for x in range(1, 11)]
    assert rec.batches[0] == [0]
    assert [len(b) for b in rec.batches[1:]] == [4, 4, 2]
    assert sorted(x for b in rec.batches for x in b) == list(range(11))
    assert (batcher.batches, batcher.items) == (4, 11)


def test_an_error_reaches_only_its_callers():
    hold = threading.Event()
    rec = Recorder(hold)
    batcher = MicroBatcher(rec, max_batch=8)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher, 1)
        time.sleep(0.2)
        bad, good = pool.submit(batcher, -5), pool.submit(batcher, 6)
        time.sleep(0.2)
        hold.set()
        assert first.result() == 1 and good.result() == 36
        with pytest.raises(ValueError, match="negative: -5"):
            bad.result()
    assert rec.batches[1] == [-5, 6]  # they shared a batch
    with pytest.raises(RuntimeError, match="13 fails"):
        batcher(13)  # run_batch raising reaches the callers of that batch ...
    assert batcher(3) == 9  # ... and the worker goes on


def test_max_wait_holds_a_batch_open_for_late_items():
    rec = Recorder()
    batcher = MicroBatcher(rec, max_batch=3, max_wait_s=1.0)
    with ThreadPoolExecutor(3) as pool:
        t0 = time.monotonic()
        futures = [pool.submit(batcher, 1)]
        time.sleep(0.05)
        futures += [pool.submit(batcher, 2), pool.submit(batcher, 3)]
        assert [f.result() for f in futures] == [1, 4, 9]
        assert time.monotonic() - t0 < 0.8  # a full batch goes without waiting out max_wait
    assert rec.batches == [[1, 2, 3]]
    t0 = time.monotonic()
    assert batcher(4) == 16 and time.monotonic() - t0 >= 0.99  # alone, it waits max_wait for company


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(Recorder(), max_batch=0)
    with pytest.raises(ValueError, match="max_wait_s"):
        MicroBatcher(Recorder(), max_wait_s=-1)
