"""Prometheus metrics, defined once per process."""
from __future__ import annotations

from prometheus_client import Counter, Histogram

STAGE_SECONDS = Histogram(
    "lexvla_stage_seconds",
    "Latency of each stage of a request",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REQUESTS = Counter("lexvla_requests_total", "Requests by route and status", ["route", "status"])
CACHE = Counter("lexvla_cache_total", "Cache look-ups by kind and outcome", ["kind", "outcome"])
ERRORS = Counter("lexvla_errors_total", "Errors by kind", ["kind"])
RELOADS = Counter("lexvla_index_reloads_total", "Index generation switches by outcome", ["outcome"])
