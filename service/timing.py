"""Stage timers that feed both the response's ``timings_ms`` and the Prometheus histogram."""
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
        """The stages plus ``total`` since the timer was made."""
        elapsed = time.perf_counter() - self._start
        metrics.STAGE_SECONDS.labels("total").observe(elapsed)
        return {**self.ms, "total": round(elapsed * 1000, 3)}
