"""Service configuration: one pydantic-settings object read from ``LEXVLA_*`` environment variables."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from PIL import Image
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexer.ann import AnnSearch
from indexer.lucene_search import SLICE_DOCS

# Pillow refuses to open an image over twice its MAX_IMAGE_PIXELS, whatever the caller allows:
# the service's pixel limit stays under it, so that one limit answers, in one message.
PILLOW_MAX_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)


class Settings(BaseSettings):
    """Everything the service can be told; every field is ``LEXVLA_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="LEXVLA_", env_file=".env", extra="ignore")

    # The defaults are what `lexvla demo` builds (run from the repository root).
    bundle: Path = Field(Path("var/bundles/lexvla-mini"), description="model bundle directory")
    index: Path = Field(Path("var/index"), description="index root the indexer publishes into")
    image_root: Path | None = Field(
        None, description="folder where the indexed images are mounted; the index's relative paths resolve against it "
        "(default: the folder recorded when the index was built)",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="cache of query encodings and results (empty: no cache)")
    cache_prefix: str = Field("lexvla", description="prefix of every Redis key")
    cache_ttl_s: int = Field(3600, ge=1, description="seconds a cached entry lives")
    cache_socket_timeout_s: float = Field(0.1, gt=0, description="a slower Redis answer counts as a miss")
    cache_probe_interval_s: float = Field(
        0.5, gt=0, description="while Redis is away, a background ping this often turns the cache back on"
    )
    cache_max_entry_bytes: int = Field(256_000, ge=1, description="larger results are served but not cached")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description='ONNX device: "auto" uses CUDA when onnxruntime offers it')
    text_precision: Literal["fp32", "int8"] = Field(
        "fp32", description="int8: encode queries with the bundle's int8 text tower (`lexvla quantize-text`)"
    )
    query_mode: Literal["encoder", "table"] = Field(
        "encoder", description="table: inference-free queries, each word's row of the bundle's query table (`lexvla "
        "query-table`) instead of the text tower (no text model loaded; a one-word query gets the same vector, words "
        "lose their context, words without a row get no weight); needs text_precision fp32",
    )
    threads: int = Field(0, ge=0, description="onnxruntime intra-op threads (0: its default)")
    ort_spinning: bool = Field(
        False, description="let onnxruntime threads busy-wait after a run (off: they would delay the Lucene step)"
    )
    workers: int = Field(1, ge=1, description="uvicorn worker processes")
    keep_alive_s: int = Field(
        75, ge=1, le=3600,
        description="seconds an idle keep-alive connection stays open (uvicorn's timeout_keep_alive); clients and "
        "proxies should close idle connections sooner (httpx does after 5 s)",
    )  # fmt: skip
    encode_max_batch: int = Field(
        32, ge=1, description="queries encoded in one ONNX call: those that arrive while the encoder is busy wait and go together"
    )
    encode_max_wait_ms: float = Field(
        0.0, ge=0, le=1000,
        description="how long the encoder holds a batch open for more queries (0: it takes what is waiting and goes)",
    )  # fmt: skip
    # ---- bounded work per request
    max_upload_bytes: int = Field(10_000_000, ge=1, description="image file limit (the image routes' body: base64 and form overhead on top)")
    max_body_bytes: int = Field(1_000_000, ge=1, description="body limit of every other route")
    max_pixels: int = Field(
        40_000_000, ge=1, le=PILLOW_MAX_PIXELS,
        description=f"largest image (width x height) an upload may declare (at most {PILLOW_MAX_PIXELS}, Pillow's own limit)",
    )  # fmt: skip
    decode_side: int = Field(
        1024, ge=64, description="images longer than twice this are decoded at reduced size (long side up to 2x this)"
    )
    image_memory_mb: int = Field(1024, ge=16, description="memory image decoding may take at once, shared by the image workers")
    image_workers: int = Field(2, ge=1, description="image jobs (decode, encode, heatmaps, thumbnails) run at once")
    image_queue: int = Field(64, ge=0, description="image requests that may wait for a worker; more get 503 + Retry-After")
    retry_after_s: int = Field(1, ge=1, description="Retry-After of 503 (busy) and the minimum of 429 answers")
    max_query_chars: int = Field(
        512, ge=1, description="longest query text, and /embed_sparse text (the text encoder reads the bundle's "
        "max_caption_tokens tokens of it: /search lists the words past them in query.not_encoded)",
    )
    max_query_words: int = Field(
        256, ge=1, le=4000, description="words a query may have after edits, excluded words included (one Lucene clause each)"
    )
    max_embed_texts: int = Field(32, ge=1, description="texts one /embed_sparse request may hold (more: 413)")
    max_embed_images: int = Field(8, ge=1, description="images one /embed_sparse/images request may hold (more: 413)")
    max_heatmaps: int = Field(16, ge=0, description="heatmaps one /encode may draw (listed words plus heatmap_top_n)")
    k_min: int = Field(1, ge=1, description="fewest hits a search may ask for")
    k_max: int = Field(100, ge=1, description="most hits a search may ask for")
    k_default: int = Field(12, ge=1, description="hits when a search does not say")
    query_top_k: int = Field(0, ge=0, description="words kept from an encoded query (0: the bundle's text_top_k)")
    query_min_share: float = Field(0.1, ge=0.0, lt=1.0, description=(
        "an encoded query's expansion words under this share of its strongest weight are cut, its typed words stay "
        "(0 keeps them; measured in docs/query-cuts.md)"))
    heatmap_top_n: int = Field(3, ge=1, le=32, description="heatmaps /encode draws for its strongest words by default")
    thumb_size: int = Field(256, ge=16, description="long side of /images/{id}/thumb")
    access_log: bool = Field(False, description="log a line per request (uvicorn's access log; off: the metrics count requests either way)")
    reload_interval_s: float = Field(10.0, ge=0, description="poll for a new index generation (0: never)")
    jvm_heap: str = Field(
        "512m", pattern=r"^[1-9][0-9]*[kKmMgG]$",
        description="-Xmx of the JVM that searches Lucene in the server process (the index itself is memory-mapped, off heap)",
    )  # fmt: skip
    search_path: Literal["exact", "approximate"] = Field(
        "exact", description="how /search finds hits unless a request says: exact (Lucene, every match scored) or "
        "approximate (each shard's Seismic structure, scores and explanations still exact; docs/benchmarks.md has its recall)",
    )  # fmt: skip
    ann_query_cut: int = Field(AnnSearch.query_cut, ge=1, le=4096, description=(
        "approximate path: the query's strongest words whose postings are visited"))
    ann_heap_factor: float = Field(AnnSearch.heap_factor, gt=0.0, le=1.0, description=(
        "approximate path: a block of documents is visited when its summary reaches this share of the current "
        "k-th score (lower: slower, higher recall)"))
    search_replicas: int = Field(
        0, ge=0, description="serve every shard from this many Ray actors, with fail-over (0: shards in-process)"
    )
    search_slice_docs: int = Field(SLICE_DOCS, ge=0, description=(
        "exact path: one search scores a shard's segments on several threads, in slices of at least this many "
        "documents; 0: on one thread, which costs less CPU a search (for throughput; docs/scaling.md) but answers a lone "
        "query later"))
    # ---- who may call what
    admin_token: SecretStr | None = Field(
        None, description="/admin/* is disabled without it, and then needs `Authorization: Bearer <token>`"
    )
    cors_origins: list[str] = Field(
        default_factory=list, description='origins whose pages may call the API from a browser (JSON list; ["*"]: any)'
    )
    rate_limit_per_s: float = Field(0.0, ge=0, description="requests per second per client address (0: no limit)")
    rate_limit_burst: int = Field(20, ge=1, description="requests a client may make at once before the rate applies")

    @property
    def upload_body_bytes(self) -> int:
        """Body limit of the image routes: the file as base64 in JSON (4/3) plus form fields."""
        return self.max_upload_bytes * 4 // 3 + 64 * 1024

    @property
    def decode_bytes(self) -> int:
        """Memory one image worker's decode may take."""
        return self.image_memory_mb * 1_000_000 // self.image_workers

    def query_encoding(self, text_top_k: int) -> dict:
        """How an encoded text becomes the query vector (``Bundle.encode_texts``'s ``top_k`` and
        ``min_share``), for a bundle whose own top-k is ``text_top_k``."""
        return {"top_k": self.query_top_k or text_top_k, "min_share": self.query_min_share}

    def ann_search(self, path: str | None = None) -> AnnSearch | None:
        """The approximate path's settings for a request on ``path`` (``None``: :attr:`search_path`);
        ``None`` on the exact path."""
        if (path or self.search_path) == "exact":
            return None
        return AnnSearch(query_cut=self.ann_query_cut, heap_factor=self.ann_heap_factor)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (a cached dependency; tests override it)."""
    return Settings()


def settings_table() -> str:
    """The README's settings table (Markdown), generated from :class:`Settings` so the two agree.

    ``python -m service.config`` prints it.
    """
    rows = ["| variable | default | what |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "none" if default is None else (default.as_posix() if isinstance(default, Path) else default)
        rows.append(f"| `LEXVLA_{name.upper()}` | `{shown}` | {(field.description or '').replace('|', '/')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
