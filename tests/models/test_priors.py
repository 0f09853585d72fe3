"""The committed ImageNet class -> word prior (reads models/priors/imagenet.json only; no network)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from models.priors.imagenet import PRIOR_PATH, class_names, load_imagenet_prior, prior_matrix

# Words allowed on more than 20% of the classes: ImageNet is ~40% animals, ~22% mammals.
BROAD_OK = {"animal", "mammal"}


@pytest.fixture(scope="module")
def classes() -> list[dict]:
    return load_imagenet_prior()


def test_thousand_classes_in_order(classes):
    assert PRIOR_PATH.is_file()
    assert [c["index"] for c in classes] == list(range(1000))
    names = class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[999] == "toilet tissue"
    wnids = [c["wnid"] for c in classes if c["wnid"]]
    assert wnids == sorted(wnids) and len(set(wnids)) == len(wnids)  # ILSVRC order is by wnid


def test_words_are_clean(classes):
    for c in classes:
        assert c["words"], c["name"]
        for word, weight in c["words"].items():
            assert word.isalpha() and word.islower() and len(word) >= 2, (c["name"], word)
            assert 0.0 < weight <= 1.0


@pytest.mark.parametrize(
    ("index", "name", "word"),
    [
        (0, "tench", "fish"),
        (207, "golden retriever", "dog"),
        (207, "golden retriever", "retriever"),
        (281, "tabby", "cat"),
        (948, "Granny Smith", "apple"),
        (134, "crane bird", "bird"),
        (517, "crane", "crane"),
    ],
)
def test_spot_checks(classes, index, name, word):
    assert classes[index]["name"] == name
    assert word in classes[index]["words"]


def test_two_cranes(classes):
    bird, machine = classes[134], classes[517]
    assert bird["wnid"] == "n02012849" and machine["wnid"] == "n03126707"
    assert "bird" in bird["words"] and "animal" in bird["words"]
    assert "bird" not in machine["words"] and "machine" in machine["words"]


def test_prior_matrix_and_dog_breeds(classes):
    vocab = ["[PAD]", "Dog", "cat", "fish", "retriever", "zzzunused", "apple"]
    dims, matrix = prior_matrix(vocab)
    assert dims.dtype == np.int64 and matrix.dtype == np.float32
    assert matrix.shape == (1000, len(dims))
    assert list(dims) == [1, 2, 3, 4, 6]  # "Dog" matched case-insensitively; unused words dropped
    dog = matrix[:, list(dims).index(1)]
    assert (dog[151:269] > 0).all()  # every dog breed, Chihuahua .. Mexican hairless
    assert matrix[207, list(dims).index(4)] == 1.0
    assert matrix[281, list(dims).index(2)] > 0
    assert ((matrix >= 0) & (matrix <= 1)).all()


def test_no_word_covers_too_many_classes(classes):
    cover = Counter(w for c in classes for w in c["words"])
    too_broad = {w for w, n in cover.items() if n > 200 and w not in BROAD_OK}
    assert not too_broad, too_broad
    assert 100 <= cover["dog"] <= 130  # the 118 breeds plus wild dogs (dingo, dhole, ...)
    for jargon in ("placental", "carnivore", "vertebrate", "chordate", "ungulate", "artifact", "device", "entity"):
        assert jargon not in cover, jargon


# Modifiers of class names (place, nation, colour, use: "Irish setter", "golden retriever",
# "Arabian camel", "worm fence" alias "Virginia fence") and misleading heads ("bell cote" -> "cote",
# "Granny Smith" -> "smith"): the classifier spreads probability over look-alike classes, so these
# ended up on unrelated photos (a chicken photo got "irish"). Only head nouns may be words.
QUALIFIERS = {
    "irish", "staffordshire", "virginia", "arabian", "cote", "cisco", "golden", "american", "english",
    "german", "french", "african", "indian", "japanese", "siberian", "tibetan", "scottish", "welsh",
    "mexican", "yorkshire", "labrador", "great", "giant", "miniature", "standard", "common", "white",
    "black", "red", "grey", "gray", "military", "sports", "granny", "smith", "dane", "bernard", "pyrenees",
    "flandres", "hairless", "shepherd", "widow", "torpedo", "pictus", "frondosa",
}


def test_no_qualifier_becomes_a_word(classes):
    found = {(c["name"], w) for c in classes for w in c["words"] if w in QUALIFIERS}
    assert not found, sorted(found)


def test_every_class_has_a_word(classes):
    assert all(c["words"] for c in classes)
    assert all(max(c["words"].values()) >= 0.5 for c in classes)


def test_every_dog_breed_says_dog_and_animal(classes):
    breeds = classes[151:269]  # Chihuahua .. Mexican hairless
    assert breeds[0]["name"] == "Chihuahua" and breeds[-1]["name"] == "Mexican hairless"
    for c in breeds:
        assert {"dog", "animal"} <= set(c["words"]), (c["name"], c["words"])
        assert "toy" not in c["words"], c["name"]  # "toy dog" is a kind of dog, not a toy


@pytest.mark.parametrize(
    ("index", "name", "words", "not_words"),
    [
        (8, "hen", {"hen", "bird", "chicken"}, set()),
        (7, "cock", {"cock", "bird", "chicken"}, set()),
        (213, "Irish setter", {"setter", "dog"}, {"irish"}),
        (207, "golden retriever", {"retriever", "dog"}, {"golden"}),
        (179, "Staffordshire bullterrier", {"bullterrier", "dog"}, {"staffordshire", "bull"}),
        (354, "Arabian camel", {"camel", "dromedary"}, {"arabian"}),
        (817, "sports car", {"car"}, {"sports", "sport"}),
        (555, "fire engine", {"truck"}, {"fire", "engine"}),
        (948, "Granny Smith", {"apple", "fruit"}, {"granny", "smith"}),
        (912, "worm fence", {"fence"}, {"worm", "snake", "virginia"}),
        (442, "bell cote", {"shelter"}, {"bell", "cote", "cot"}),
        (150, "sea lion", {"seal"}, {"sea", "lion"}),
        (934, "hotdog", {"hotdog", "sandwich"}, {"dog", "hot"}),
        (761, "remote control", {"remote"}, {"control"}),
        (246, "Great Dane", {"dog"}, {"great", "dane"}),
        (256, "Newfoundland", {"newfoundland", "dog"}, set()),  # a one-word name is kept
    ],
)
def test_head_nouns_only(classes, index, name, words, not_words):
    c = classes[index]
    assert c["name"] == name
    assert words <= set(c["words"]), c["words"]
    assert not (not_words & set(c["words"])), c["words"]


def test_head_word_rule():
    from models.priors.build_imagenet import head_word

    assert head_word("Irish setter") == "setter"
    assert head_word("sports car") == "car"
    assert head_word("hen-of-the-woods") == "hen"  # the word before the preposition
    assert head_word("Great Dane") is None and head_word("Saint_Bernard") is None  # proper nouns
    assert head_word("Alsatian") is None and head_word("Newfoundland", common_only=False) == "newfoundland"
    assert head_word("bicycle-built-for-two") == "bicycle" and head_word("Crock Pot") == "pot"  # HEAD_OVERRIDES
