"""Unit tests of the word-space query editing (no model, no index)."""
from __future__ import annotations

import pytest

from models.preprocess import InputError
from service.query import QueryEdits, apply_edits, merge_edits, parse_inline

VOCAB = {"horse", "dog", "red", "car", "circle"}


def canonical(word: str) -> str | None:
    return word.lower() if word.lower() in VOCAB else None


def test_parse_inline_splits_operators_from_text():
    edits = parse_inline("a red  car +horse circle^2.5 -dog")
    assert edits.text == "a red car"
    assert edits.boosts == {"horse": 1.0, "circle": 2.5}  # a required word is scored too
    assert edits.excludes == ("dog",)
    assert edits.requires == ("horse",)  # Lucene's +: a hit must have it; circle^2.5 is only weighed


def test_parse_inline_keeps_plain_hyphens_and_carets():
    edits = parse_inline("well-known - x^ ^2")
    assert edits.text == "well-known - x^ ^2"
    assert edits.boosts == {} and edits.excludes == ()


def test_plus_with_boost_requires_and_boosts():
    edits = parse_inline("+horse^3 dog^2")
    assert edits.boosts == {"horse": 3.0, "dog": 2.0} and edits.requires == ("horse",)


def test_merge_adds_required_words_and_apply_reports_them():
    edits = merge_edits(parse_inline("red +car"), None, ["dog"], ["horse", "car", "dog", "zebra"])
    assert edits.requires == ("car", "horse", "dog", "zebra")
    assert edits.boosts == {"car": 1.0, "horse": 1.0, "dog": 1.0, "zebra": 1.0}
    out = apply_edits({"red": 0.8, "car": 0.5}, edits, canonical)
    assert out.required == ["car", "horse"]  # dog: the exclusion wins; zebra: not in the vocabulary
    assert out.weights == {"red": 0.8, "horse": 0.8, "car": 0.5} and out.ignored == ["zebra"]
    assert edits.normalized()["requires"] == ["car", "dog", "horse", "zebra"]


def test_merge_combines_inline_and_explicit():
    edits = merge_edits(parse_inline("red horse^2 -dog"), {"horse": 1.5, "car": 2}, ["circle", "dog"])
    assert edits.boosts == {"horse": 3.0, "car": 2.0}
    assert edits.excludes == ("dog", "circle")


@pytest.mark.parametrize("factor", [0, -1, 1000])
def test_merge_rejects_bad_factors(factor):
    with pytest.raises(InputError, match="boost"):
        merge_edits(parse_inline("red"), {"horse": factor}, None)


def test_exclusion_removes_word_and_wins_over_boost():
    out = apply_edits({"red": 0.8, "dog": 0.6}, QueryEdits("", {"dog": 2.0}, ("dog",)), canonical)
    assert out.weights == {"red": 0.8}
    assert out.excluded == ["dog"] and out.boosted == {}


def test_boost_multiplies_present_and_adds_absent_at_base():
    out = apply_edits({"red": 0.8, "car": 0.4}, QueryEdits("", {"car": 3.0, "horse": 0.5}, ()), canonical)
    assert out.weights["car"] == pytest.approx(1.2)
    assert out.weights["horse"] == pytest.approx(0.4)  # 0.5 x the largest weight
    assert out.added == ["horse"]
    assert list(out.weights) == ["car", "red", "horse"]  # sorted by weight


def test_unknown_words_are_reported_not_dropped_silently():
    out = apply_edits({"red": 1.0}, QueryEdits("", {"zebra": 2.0}, ("qwxz",)), canonical)
    assert out.ignored == ["qwxz", "zebra"]
    assert out.weights == {"red": 1.0}


def test_edits_on_empty_query_use_unit_base():
    out = apply_edits({}, QueryEdits("", {"Horse": 2.0}, ()), canonical)
    assert out.weights == {"horse": 2.0}


def test_normalized_is_order_independent():
    a = QueryEdits("red", {"a": 1.0, "b": 2.0}, ("x", "y"))
    b = QueryEdits("red", {"b": 2.0, "a": 1.0}, ("y", "x"))
    assert a.normalized() == b.normalized()
