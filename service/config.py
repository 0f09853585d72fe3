"""Service configuration: one pydantic-settings object read from ``LEXVLA_*`` environment variables."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the service can be told; every field is ``LEXVLA_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="LEXVLA_", env_file=".env", extra="ignore")

    bundle: Path = Field(Path("bundles/lexvla-mini"), description="model bundle directory")
    index: Path = Field(Path("index"), description="index root the indexer publishes into")
    redis_url: str = "redis://127.0.0.1:6379/0"
    cache_prefix: str = "lexvla"
    cache_ttl_s: int = Field(3600, ge=1)
    cache_socket_timeout_s: float = Field(0.1, gt=0)
    cache_backoff_s: float = Field(5.0, ge=0, description="first pause after a Redis failure; doubles to 60 s")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(0, ge=0, description="onnxruntime intra-op threads (0: its default)")
    ort_spinning: bool = Field(
        False, description="let onnxruntime threads busy-wait after a run (off: they would delay the Lucene step)"
    )
    workers: int = Field(1, ge=1, description="uvicorn worker processes")
    max_upload_bytes: int = Field(10_000_000, ge=1)
    max_pixels: int = Field(40_000_000, ge=1)
    max_query_chars: int = Field(512, ge=1)
    k_min: int = Field(1, ge=1)
    k_max: int = Field(100, ge=1)
    k_default: int = Field(12, ge=1)
    query_top_k: int = Field(0, ge=0, description="words kept from an encoded query (0: the bundle's text_top_k)")
    heatmap_top_n: int = Field(3, ge=1, le=32)
    thumb_size: int = Field(256, ge=16)
    reload_interval_s: float = Field(10.0, ge=0, description="poll for a new index generation (0: never)")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (a cached dependency; tests override it)."""
    return Settings()
