"""The edge: the engine's typed results -> the response models the routes declare."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict

from service import results as r
from service import schemas as s
from service.echo import ECHO_CHARS, cut
from service.images import image_urls


def _words(weights) -> list[s.WordWeight]:
    items = weights.items() if isinstance(weights, dict) else weights
    return [s.WordWeight(word=w, weight=v) for w, v in items]


def hit(h: r.ImageHit) -> s.SearchHit:
    image_url, thumb_url = image_urls(h.doc_id)
    matches = [
        s.MatchedWord(word=m.word, query_weight=m.query_weight, image_weight=m.doc_weight,
                      contribution=m.contribution, share=h.share(m))
        for m in h.matches
    ]  # fmt: skip
    return s.SearchHit(id=h.doc_id, score=h.score, image_url=image_url, thumb_url=thumb_url, width=h.width,
                       height=h.height, matches=matches)  # fmt: skip


def versions(v: r.Versions) -> s.Versions:
    return s.Versions(bundle=v.bundle, index=v.index)


RESPONSE_WORDS = 50  # words a response lists of what the client sent (ignored, not encoded, left out)


def left_out(words: Sequence[tuple[str, str]]) -> list[s.LeftOutWord]:
    """The first ``RESPONSE_WORDS`` left-out words, each cut to ``ECHO_CHARS``."""
    return [s.LeftOutWord(word=cut(w, ECHO_CHARS), reason=why) for w, why in words[:RESPONSE_WORDS]]


def search_response(res: r.TextSearchResult) -> s.SearchResponse:
    e = res.query.edited
    bounded = lambda words: [cut(w, ECHO_CHARS) for w in words[:RESPONSE_WORDS]]  # noqa: E731
    query = s.QueryReport(text=res.query.text, words=_words(e.weights), encoded=_words(res.query.encoded),
                          excluded=e.excluded, boosted=e.boosted, added=e.added, ignored=bounded(e.ignored),
                          required=e.required, not_encoded=bounded(res.query.not_encoded),
                          left_out=left_out(res.query.left_out), left_out_count=len(res.query.left_out))  # fmt: skip
    return s.SearchResponse(hits=[hit(h) for h in res.hits], query=query, timings_ms=res.timings_ms, cache=res.cache,
                            versions=versions(res.versions), path=res.path)  # fmt: skip


def image_search_response(res: r.ImageSearchResult) -> s.ImageSearchResponse:
    return s.ImageSearchResponse(hits=[hit(h) for h in res.hits], words=_words(res.words), timings_ms=res.timings_ms,
                                 versions=versions(res.versions))  # fmt: skip


def heatmap(m: r.WordHeatmap) -> s.Heatmap:
    # only the fields that apply are set: the route answers with exclude_unset, as the page expects
    return s.Heatmap(**{k: v for k, v in asdict(m).items() if v is not None})


def encode_response(res: r.EncodeResult) -> s.EncodeResponse:
    return s.EncodeResponse(words=_words(res.words), bundle_version=res.bundle_version, patch_grid=res.patch_grid,
                            width=res.width, height=res.height, heatmaps=[heatmap(m) for m in res.heatmaps],
                            timings_ms=res.timings_ms)  # fmt: skip


def readiness(res: r.ReadinessResult) -> s.Readiness:
    return s.Readiness(**asdict(res))


def embed_response(vectors: Sequence[Mapping[str, float]], fmt: str,
                   dimension: Callable[[str], int]) -> list[list[s.SparseValue]] | list[dict[str, float]]:  # fmt: skip
    """``/embed_sparse``'s answer: ``{word: weight}`` maps as they are (``words``) or TEI's
    ``[{index, value}]`` lists, ``dimension(word)`` giving the index."""
    if fmt == "words":
        return [dict(vec) for vec in vectors]
    return [[s.SparseValue(index=dimension(w), value=v) for w, v in vec.items()] for vec in vectors]
