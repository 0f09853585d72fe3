"""Prometheus metrics, defined once per process.

``lexvla_http_request_duration_seconds`` is each request from the first byte in to the last byte
out; ``lexvla_stage_seconds`` holds only the stages inside it (encode, search, explain, ...), so a
sum over ``stage`` is the time spent in stages and never counts a request twice.

With several uvicorn workers every process keeps its own counters. ``lexvla serve --workers N``
therefore runs prometheus_client's multiprocess mode: each worker writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary folder unless set) and ``/metrics`` adds them up.
"""
from __future__ import annotations

import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

HTTP_SECONDS = Histogram(
    "lexvla_http_request_duration_seconds", "Whole requests, by route template and method", ["route", "method"], buckets=BUCKETS
)
STAGE_SECONDS = Histogram("lexvla_stage_seconds", "Stages inside a request (they do not overlap)", ["stage"], buckets=BUCKETS)
REQUESTS = Counter("lexvla_requests_total", "Requests by route and status", ["route", "status"])
CACHE = Counter("lexvla_cache_total", "Cache look-ups by kind and outcome", ["kind", "outcome"])
ERRORS = Counter("lexvla_errors_total", "Errors by kind", ["kind"])
RELOADS = Counter("lexvla_index_reloads_total", "Index generation switches by outcome", ["outcome"])
# Gauges: the newest value any live worker set (all workers serve the same bundle and index).
BUILD_INFO = Gauge(
    "lexvla_build_info", "Always 1; the labels say what is running", ["version", "bundle", "bundle_version"],
    multiprocess_mode="livemostrecent",
)  # fmt: skip
INDEX_DOCUMENTS = Gauge(
    "lexvla_index_documents", "Documents in the index generation being served", multiprocess_mode="livemostrecent"
)


def package_version() -> str:
    try:
        return version("lexvla-search")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def exposition() -> bytes:
    """The text ``/metrics`` answers: this process's metrics, or every worker's in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


def prepare_multiprocess_dir() -> Path | None:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at an empty folder before workers start (they inherit it).

    A folder named in the environment is emptied of earlier runs' files, as prometheus_client
    requires; otherwise a temporary one is made and returned, for the caller to delete at exit.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if not given:
        made = Path(tempfile.mkdtemp(prefix="lexvla-metrics-"))
        os.environ[MULTIPROC_ENV] = str(made)
        return made
    folder = Path(given)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    return None
