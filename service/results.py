"""What the engine returns: typed results, free of HTTP. Routers turn them into response models
(``service.api.convert``); the CLI reads them directly."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from indexer.hits import WordMatch, score_share
from service.query import EditedQuery


@dataclass(frozen=True)
class ImageHit:
    """One indexed image found, with the words it shares with the query (best contribution first)."""

    doc_id: str
    score: float
    width: int
    height: int
    matches: tuple[WordMatch, ...]

    def share(self, match: WordMatch) -> float:
        return score_share(match.contribution, self.score)


@dataclass(frozen=True)
class Versions:
    bundle: str
    index: str  # the version of the generation the hits came from


@dataclass(frozen=True)
class TextQuery:
    """The text that was encoded, the encoder's words, the edited map that was searched, and the
    words of the text past the encoder's token budget (not encoded)."""

    text: str
    encoded: dict[str, float]
    edited: EditedQuery
    not_encoded: list[str] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (word, why): every word that gave no weight


@dataclass(frozen=True)
class TextSearchResult:
    hits: list[ImageHit]
    query: TextQuery
    versions: Versions
    timings_ms: dict[str, float] = field(default_factory=dict)
    cache: dict[str, str] = field(default_factory=dict)
    path: str = "exact"  # which search found the hits: "exact" (Lucene) or "approximate" (indexer.ann)

    def to_cache(self) -> dict:
        """The cacheable part (hits, query, versions) as JSON-able data; :meth:`from_cache` reverses it."""
        e = self.query.edited
        return {
            "hits": [[h.doc_id, h.score, h.width, h.height, [[m.word, m.query_weight, m.doc_weight, m.contribution]
                                                             for m in h.matches]] for h in self.hits],
            "query": [self.query.text, list(self.query.encoded.items()),
                      [list(e.weights.items()), e.excluded, list(e.boosted.items()), e.added, e.ignored]],
            "versions": [self.versions.bundle, self.versions.index],
            "required": e.required,
            "path": self.path,
        }  # fmt: skip

    @classmethod
    def from_cache(cls, data: dict, timings_ms: dict[str, float], cache: dict[str, str],
                   not_encoded: Sequence[str] = ()) -> TextSearchResult:  # fmt: skip
        """The result :meth:`to_cache` stored; ``not_encoded`` is not stored (the engine finds it
        from the text, cached or not)."""
        text, encoded, (weights, excluded, boosted, added, ignored) = data["query"]
        hits = [ImageHit(d, s, w, h, tuple(WordMatch(*m) for m in matches)) for d, s, w, h, matches in data["hits"]]
        edited = EditedQuery(dict(weights), list(excluded), dict(boosted), list(added), list(ignored), list(data["required"]))
        query = TextQuery(text, dict(encoded), edited, list(not_encoded))
        return cls(hits, query, Versions(*data["versions"]), timings_ms, cache, data.get("path", "exact"))


@dataclass(frozen=True)
class ImageSearchResult:
    hits: list[ImageHit]
    words: dict[str, float]  # the image's words, after exclusions: the query that was searched
    versions: Versions
    timings_ms: dict[str, float]


@dataclass(frozen=True)
class WordHeatmap:
    word: str
    in_vocabulary: bool
    peak: float | None = None
    png: str | None = None  # data URL
    grid: list[list[float]] | None = None


@dataclass(frozen=True)
class EncodeResult:
    words: list[tuple[str, float]]
    bundle_version: str
    patch_grid: tuple[int, int]
    width: int
    height: int
    heatmaps: list[WordHeatmap]
    timings_ms: dict[str, float]


@dataclass(frozen=True)
class ReadinessResult:
    ready: bool
    bundle_version: str
    index_version: str
    index_bundle_version: str
    doc_count: int
    providers: dict[str, list[str]]
    cache: bool
    detail: str | None
