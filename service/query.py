"""Word-space query editing, in Lucene's query syntax: ``+word``, ``-word``, ``word^2``, plus the
explicit ``boost``/``require``/``exclude`` fields of a request.

A text query is encoded into ``{word: weight}``; the user can then edit that map directly in
word space. Everything here is pure (no model, no index) so it is unit-tested on its own.

Semantics (as in Lucene and Elasticsearch's ``query_string``)
-------------------------------------------------------------
* a plain word: part of the text the encoder reads; it counts softly (a hit need not have it).
* ``+word`` / ``require [word]``: a hit must carry the word (Lucene's MUST). The word is scored
  too: with the encoder's weight when the text has it, else added at the query's largest weight.
* ``-word`` / ``exclude [word]``: drop the word from the query and every hit whose image carries
  it (MUST_NOT). An exclusion wins over a boost or a requirement of the same word.
* ``word^f`` / ``boost {word: f}``: multiply the word's weight by ``f``; a word the encoder did not
  produce is added with weight ``f * base`` where ``base`` is the query's largest weight (1.0 when
  the query is empty). ``+word^f`` requires and boosts.
* A word that is not a dimension of the vocabulary is reported in ``ignored``, never dropped silently.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from models.preprocess import InputError
from service.echo import echo

MAX_BOOST = 100.0
_BOOST = re.compile(r"^(\+?)([^\s^+]+)\^(\d+(?:\.\d+)?|\.\d+)$")
_REQUIRE = re.compile(r"^\+([^\s^+-][^\s^]*)$")
_EXCLUDE = re.compile(r"^-([^\s^+-][^\s^]*)$")


@dataclass(frozen=True)
class QueryEdits:
    """A query split into the text to encode and the word-space edits to apply after encoding."""

    text: str
    boosts: dict[str, float] = field(default_factory=dict)
    excludes: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()  # each also in ``boosts`` (at least x1), so it is scored

    def normalized(self) -> dict:
        """A canonical, JSON-able form (the cache key's part that comes from the request)."""
        return {
            "text": self.text,
            "boosts": {w: round(f, 6) for w, f in sorted(self.boosts.items())},
            "excludes": sorted(set(self.excludes)),
            "requires": sorted(set(self.requires)),
        }


@dataclass
class EditedQuery:
    """The query map sent to the searcher plus a report of what each edit did."""

    weights: dict[str, float]
    excluded: list[str]
    boosted: dict[str, float]
    added: list[str]
    ignored: list[str]
    required: list[str] = field(default_factory=list)  # hits must carry these (each is in ``weights``)


def parse_inline(query: str) -> QueryEdits:
    """Split inline operators out of ``query``.

    Parameters
    ----------
    query : free text with optional ``+word``, ``-word``, ``word^2`` and ``+word^2`` tokens.

    Returns
    -------
    QueryEdits whose ``text`` is the remaining words, whitespace-collapsed.
    """
    words: list[str] = []
    boosts: dict[str, float] = {}
    excludes: list[str] = []
    requires: list[str] = []
    for token in query.split():
        if m := _BOOST.match(token):
            boosts[m.group(2)] = boosts.get(m.group(2), 1.0) * float(m.group(3))
            if m.group(1):
                requires.append(m.group(2))
        elif m := _REQUIRE.match(token):
            boosts.setdefault(m.group(1), 1.0)
            requires.append(m.group(1))
        elif m := _EXCLUDE.match(token):
            excludes.append(m.group(1))
        else:
            words.append(token)
    return QueryEdits(" ".join(words), boosts, tuple(excludes), tuple(dict.fromkeys(requires)))


def merge_edits(
    inline: QueryEdits, boost: Mapping[str, float] | None, exclude: Iterable[str] | None, require: Iterable[str] | None = None
) -> QueryEdits:
    """Combine inline edits with the request's explicit ``boost`` map and ``exclude`` and ``require`` lists.

    Raises
    ------
    InputError
        for a boost factor that is not in ``(0, MAX_BOOST]``.
    """
    boosts = dict(inline.boosts)
    for word, factor in (boost or {}).items():
        if not 0 < factor <= MAX_BOOST:
            raise InputError(f"boost for {echo(word)} must be in (0, {MAX_BOOST:g}], got {factor}", "boost")
        boosts[word.strip()] = boosts.get(word.strip(), 1.0) * float(factor)
    excludes = tuple(dict.fromkeys([*inline.excludes, *(w.strip() for w in exclude or ())]))
    requires = tuple(w for w in dict.fromkeys([*inline.requires, *(w.strip() for w in require or ())]) if w)
    for word in requires:
        boosts.setdefault(word, 1.0)
    for word, factor in boosts.items():
        if not 0 < factor <= MAX_BOOST:
            raise InputError(f"boost for {echo(word)} must be in (0, {MAX_BOOST:g}], got {factor}", "boost")
    return QueryEdits(inline.text, {w: f for w, f in boosts.items() if w}, tuple(w for w in excludes if w), requires)


def apply_edits(
    weights: Mapping[str, float], edits: QueryEdits, canonical: Callable[[str], str | None]
) -> EditedQuery:
    """Apply ``edits`` to an encoded query map.

    Parameters
    ----------
    weights : the encoder's ``{word: weight}``.
    edits : boosts and exclusions (``edits.text`` is not used here).
    canonical : vocabulary lookup, word -> the vocabulary's spelling, or ``None`` if absent.
    """
    out = dict(weights)
    base = max(out.values(), default=1.0)
    ignored: list[str] = []
    excluded: list[str] = []
    for raw in edits.excludes:
        word = canonical(raw)
        if word is None:
            ignored.append(raw)
            continue
        out.pop(word, None)
        excluded.append(word)
    boosted: dict[str, float] = {}
    added: list[str] = []
    for raw, factor in edits.boosts.items():
        word = canonical(raw)
        if word is None:
            ignored.append(raw)
        elif word in excluded:
            continue  # an exclusion wins over a boost of the same word
        else:
            if word not in out:
                added.append(word)
            out[word] = out.get(word, base) * factor
            boosted[word] = factor
    ordered = dict(sorted(out.items(), key=lambda kv: -kv[1]))
    required = [w for w in dict.fromkeys(canonical(raw) for raw in edits.requires) if w is not None and w in ordered]
    return EditedQuery(ordered, excluded, boosted, added, list(dict.fromkeys(ignored)), required)
