"""Stage timers that feed both the response's ``timings_ms`` and the ``lexvla_stage_seconds`` histogram."""
from __future__ import annotations

import time
from contextlib import contextmanager

from service import metrics


class StageTimer:
    """Collects ``{stage: milliseconds}``; ``with timer("encode"): ...``."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.ms[stage] = round(self.ms.get(stage, 0.0) + elapsed * 1000, 3)
            metrics.STAGE_SECONDS.labels(stage).observe(elapsed)

    def total(self) -> dict[str, float]:
        """The stages plus ``total`` since the timer was made (the response's ``timings_ms``; the
        histogram has only the stages: the whole request is ``lexvla_http_request_duration_seconds``)."""
        elapsed = time.perf_counter() - self._start
        return {**self.ms, "total": round(elapsed * 1000, 3)}
