"""What a search answers: hits in the one result order, each explained by the words it shares with the query.

Every searcher (:mod:`indexer.protocols`) returns these, whatever the shard count or where the
shards run; the explanation is made from the document's stored impacts, so it is the same too.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from indexer.metadata import DocRow

__all__ = ["WordMatch", "Hit", "score_share", "rank_order", "ranked_top", "explain"]


@dataclass(frozen=True)
class WordMatch:
    """One shared word; weights are dequantised (impact / scale), contribution = their product."""

    word: str
    query_weight: float
    doc_weight: float
    contribution: float


def score_share(contribution: float, score: float) -> float:
    """The part of a hit's score one matched word makes (``contribution / score``; 0 for a zero score).

    The one definition: the API's ``share``, the page, the CLI and the report all use it.
    """
    return float(contribution) / float(score) if score else 0.0


@dataclass(frozen=True)
class Hit:
    """A result: ``score`` = Lucene's integer score / scale**2 = sum of the matches' contributions."""

    doc_id: str
    score: float
    matches: tuple[WordMatch, ...]
    record: DocRow | None = field(default=None, compare=False, repr=False)  # the metadata row, already read

    def share(self, match: WordMatch) -> float:
        """:func:`score_share` of one of this hit's matches."""
        return score_share(match.contribution, self.score)


def rank_order(doc_id: str, score: float) -> tuple[float, str]:
    """The one order of results: score descending, then document id ascending."""
    return (-score, doc_id)


def ranked_top(fetch: Callable[[int], list[tuple[str, int]]], k: int) -> list[tuple[str, int]]:
    """The top ``k`` of ``fetch(n)`` (Lucene's best ``n``, score descending) in :func:`rank_order`.

    Lucene breaks ties by its internal document number, which depends on how the index was built
    (indexing threads, segments, appends, shards), and ``TopDocs.merge`` across shards by shard
    then document number. Ordering ties by id instead makes the result independent of all that;
    for it to be exact, the documents tied with the ``k``-th score are fetched to their end.
    """
    n = k + 1
    while True:
        got = fetch(n)
        if len(got) < n or got[-1][1] != got[k - 1][1]:
            return sorted(got, key=lambda t: rank_order(t[0], t[1]))[:k]
        n *= 2


def explain(doc_id: str, int_score: int, q: Mapping[str, int], record: DocRow | None, scale: float) -> Hit:
    """The hit of ``doc_id`` for the quantised query ``q``: its score dequantised and every shared
    word's weights and contribution, largest contribution first (then by word)."""
    doc = record.impacts if record is not None else {}
    matches = [
        WordMatch(w, qi / scale, doc[w] / scale, (qi / scale) * (doc[w] / scale)) for w, qi in q.items() if w in doc
    ]
    matches.sort(key=lambda m: (-m.contribution, m.word))
    return Hit(doc_id, int_score / scale**2, tuple(matches), record)
