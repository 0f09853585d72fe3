"""The untrained default model already says the right words: the lexical priors of both towers."""
from dataclasses import replace
from pathlib import Path

import matplotlib
import pytest
import torch

from models.model import LexVLA
from models.preprocess import load_image
from models.registry import load_card

PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"  # a person in military uniform


@pytest.fixture(scope="module")
def mini():
    return LexVLA(load_card("lexvla-mini")).eval()


def words_of(model, row: torch.Tensor) -> dict[str, float]:
    nz = row.nonzero().flatten().tolist()
    return {model.vocab.words[i]: float(row[i]) for i in nz}


@pytest.mark.parametrize("caption,expected", [
    ("a red apple", {"red", "apple"}),
    ("A man riding a white horse.", {"man", "riding", "white", "horse"}),
    ("two black dogs", {"two", "black", "dogs", "dog"}),  # the singular comes with the plural
    ("penguins on the ice", {"penguins", "penguin", "ice"}),
])
def test_untrained_text_vector_is_the_captions_own_words(mini, caption, expected):
    with torch.no_grad():
        vec = mini.encode_text_batch([caption])[0]
    assert set(words_of(mini, vec)) == expected  # no function words, nothing else before training


def test_word_pieces_do_not_light_their_first_piece(mini):
    """A word the tokenizer splits is not a dimension; its first piece must not stand in for it."""
    pieces = mini.tokenizer.encode("zebrafishes", add_special_tokens=False).tokens
    assert len(pieces) > 1 and pieces[1].startswith("##")
    with torch.no_grad():
        vec = mini.encode_text_batch(["zebrafishes"])[0]
    assert pieces[0] not in words_of(mini, vec)


def test_untrained_image_vector_names_the_imagenet_object():
    model = LexVLA(load_card("lexvla-mini")).eval()
    pixels = torch.from_numpy(model.image_spec.batch([load_image(PHOTO)]))
    with torch.no_grad():
        vec, patches = model.encode_image_batch(pixels)
    top = [model.vocab.words[i] for i in vec[0].topk(5).indices.tolist()]
    assert "uniform" in top and "military" in top, top
    # the same words are on the per-patch maps (heatmaps), strongest where the uniform is
    j = model.vocab.index("uniform")
    assert patches[0, :, j].max() > 0


def test_head_words_come_from_training_captions_and_the_prior(mini):
    dims = mini.caption_word_dims(["a red apple", "red apples", "a red car"], min_count=2)
    assert {mini.vocab.words[j] for j in dims} == {"red", "apple"}
    card = load_card("lexvla-mini")
    trained_shape = LexVLA(card, head_dims=dims)
    assert set(dims) <= set(trained_shape.head_dims) and set(mini.head_dims) <= set(trained_shape.head_dims)


def test_without_expansion_a_query_holds_only_its_own_words():
    """``text.expansion: false``: however the importance is trained, no word the caption lacks appears."""
    card = load_card("lexvla-mini")
    model = LexVLA(replace(card, text=replace(card.text, expansion=False))).eval()
    assert model.text.mapper is None and model.text.gate is None
    assert not any(name.startswith("text.mapper") for name, _ in model.named_parameters())
    with torch.no_grad():
        torch.nn.init.normal_(model.text.exact.importance.weight, std=0.5)  # as if trained
        vecs = model.encode_text_batch(["a red apple", "two black dogs on the beach"])
    assert set(words_of(model, vecs[0])) <= {"red", "apple"}
    assert set(words_of(model, vecs[1])) <= {"two", "black", "dogs", "dog", "beach"}
    assert (vecs[0] > 0).sum() == 2  # softplus importance: every typed word keeps some weight


def test_a_text_tower_needs_words_from_somewhere():
    card = load_card("tiny-random")
    with pytest.raises(ValueError, match="exact-match path, the expansion, or both"):
        LexVLA(replace(card, text=replace(card.text, exact_match=False, expansion=False)))
