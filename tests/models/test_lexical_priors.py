"""The untrained default model already says the right words: the lexical priors of both towers."""
from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

from models.model import LexVLA
from models.preprocess import load_image
from models.registry import load_card
from models.towers import caption_mask

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
    # the class "military uniform" says its head noun and hypernyms, not its modifier "military"
    assert "uniform" in top and "clothing" in top and "military" not in top, top
    # the same words are on the per-patch maps (heatmaps), strongest where the uniform is
    j = model.vocab.index("uniform")
    assert patches[0, :, j].max() > 0


def test_head_words_come_from_training_captions_and_the_prior(mini):
    dims = mini.caption_word_dims(["a red apple", "red apples", "a red car", "apple icon", "car icons"], min_count=2)
    assert {mini.vocab.words[j] for j in dims} == {"red", "apple", "car"}  # never "icon": it names no thing shown
    card = load_card("lexvla-mini")
    trained_shape = LexVLA(card, head_dims=dims)
    assert set(dims) <= set(trained_shape.head_dims) and set(mini.head_dims) <= set(trained_shape.head_dims)


def test_without_expansion_a_query_holds_only_its_own_words():
    """``text.expansion: false``: however the importance is trained, no word the caption lacks appears."""
    card = load_card("lexvla-mini")
    model = LexVLA(replace(card, text=replace(card.text, expansion=False, expansion_min_relatedness=0.0))).eval()
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


def test_exact_floor_keeps_every_typed_word():
    """``text.exact_floor``: however the importance and expansion are trained, each of the caption's
    own words weighs at least that share of the vector's strongest word."""
    card = load_card("lexvla-mini")
    caption = "icon, desktop, computer"
    floored = LexVLA(replace(card, text=replace(card.text, exact_floor=0.25))).eval()
    plain = LexVLA(replace(card, text=replace(card.text, exact_floor=0.0))).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        torch.nn.init.normal_(floored.text.mapper.weight, std=0.2)  # an expansion towards other words ...
        floored.text.gate.fill_(1.0)
        floored.text.exact.importance.bias.fill_(-12.0)  # ... and typed words silenced, as if trained
        plain.load_state_dict(floored.state_dict())
        own = plain.encode_text_batch([caption])[0]
        vec = floored.encode_text_batch([caption])[0]
    words = {"icon", "desktop", "computer"}  # every typed word ("desktop" is no prior word since modifiers are none)
    assert all(words_of(plain, own)[w] < 1e-4 * float(own.max()) for w in words)  # silenced ...
    kept = words_of(floored, vec)
    assert all(kept[w] >= 0.25 * float(vec.max()) - 1e-6 for w in words), kept  # ... but not below the floor
    others = {w: x for w, x in words_of(plain, own).items() if w not in words}
    assert {w: x for w, x in kept.items() if w not in words} == pytest.approx(others)  # the rest unchanged


def test_a_floored_bundle_keeps_every_typed_word_in_the_query(tmp_path):
    """Exported with a floor, the text graph also says which words were typed; ``encode_texts`` keeps
    them beside the top-k, with weights the index sees (impact >= 1), however many expansion words
    outrank them."""
    from models.export import export_bundle
    from models.sparse import quantize, sparsify

    card = load_card("lexvla-mini")
    # no relatedness gate: it would keep the unrelated words of this flat expansion out of the top-k
    model = LexVLA(replace(card, text=replace(card.text, exact_floor=0.25, expansion_min_relatedness=0.0))).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        torch.nn.init.normal_(model.text.mapper.weight, std=0.2)  # a flat expansion of hundreds of words
        model.text.gate.fill_(1.0)
    bundle = export_bundle(model, tmp_path / "bundle")
    caption = "icon, desktop, computer"
    dense, typed = bundle.encode_texts_typed([caption])
    assert {bundle.words[i] for i in np.flatnonzero(typed[0])} == {"icon", "desktop", "computer"}
    top_only = sparsify(dense, bundle.config.text_top_k)[0].words(bundle.words)
    assert not {"icon", "computer"} <= set(top_only)  # the top-k alone drops typed words here ...
    (vec,) = bundle.encode_texts([caption])
    impacts = {bundle.words[i]: v for i, v in quantize(vec, bundle.config.quant_scale).items()}
    assert {"icon", "desktop", "computer"} <= {w for w, v in impacts.items() if v >= 1}  # ... the bundle does not
    assert len(vec) <= bundle.config.text_top_k + 3


def test_exact_floor_needs_the_exact_match_path():
    card = load_card("tiny-random")
    with pytest.raises(ValueError, match="exact_floor"):
        LexVLA(replace(card, text=replace(card.text, exact_match=False, exact_floor=0.2)))


RELATED = ["apple", "fruit", "pear"]  # words the frozen MiniLM finds related to "a red apple"
UNRELATED = ["shoes", "holiday", "penny", "laundry", "diet"]  # expansion words earlier bundles added to it


def gated(card, mini, words, threshold=0.3):
    dims = [mini.vocab.index(w) for w in words]
    return LexVLA(replace(card, text=replace(card.text, expansion_min_relatedness=threshold)), head_dims=dims).eval()


def test_relatedness_gate_opens_for_related_words_only(mini):
    """The gate is the frozen LM's cosine between the caption and each word read alone, above the threshold."""
    card = load_card("lexvla-mini")
    model = gated(card, mini, RELATED + UNRELATED)
    ids, mask = model.text_inputs(["a red apple"])
    caption = caption_mask(mask, model.text.skip_head, model.text.skip_tail)
    with torch.no_grad():
        gate = model.text.relatedness_gate(model.text.hidden_states(ids, mask), caption)[0]  # [D]
    by_word = {model.vocab.words[j]: float(g) for j, g in zip(model.head_dims, gate, strict=True)}
    assert all(by_word[w] > 0.1 for w in RELATED), by_word
    assert all(by_word[w] == 0.0 for w in UNRELATED), by_word
    assert by_word["apple"] > by_word["fruit"] > by_word["pear"]  # nearer words pass more


def test_a_gated_expansion_adds_only_related_words_in_the_exported_bundle(mini, tmp_path):
    """However the expansion is trained, the gate scales it word by word (the same weights without a
    gate add unrelated words), and the exported ONNX graph does the same."""
    from models.export import export_bundle

    card = load_card("lexvla-mini")
    model = gated(card, mini, RELATED + UNRELATED)
    plain = LexVLA(card, head_dims=model.head_dims).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        torch.nn.init.normal_(model.text.mapper.weight, std=0.3)  # an expansion towards many words ...
        model.text.mapper.bias.fill_(0.5)
        model.text.gate.fill_(1.0)
        plain.load_state_dict(model.state_dict())
        free = words_of(plain, plain.encode_text_batch(["a red apple"])[0])
        kept = words_of(model, model.encode_text_batch(["a red apple"])[0])
    assert set(UNRELATED) & set(free)  # ... unrelated ones among them without the gate
    assert not set(UNRELATED) & set(kept) and {"red", "apple"} <= set(kept)
    bundle = export_bundle(model, tmp_path / "bundle")  # raises when ONNX and PyTorch disagree
    (vec,) = bundle.encode_texts(["a red apple"])
    assert set(vec.words(bundle.words)) == set(kept)


def test_relatedness_gate_needs_the_expansion_and_a_frozen_lm():
    card = load_card("tiny-random")
    with pytest.raises(ValueError, match="needs the expansion"):
        LexVLA(replace(card, text=replace(card.text, expansion=False, expansion_min_relatedness=0.3)))
    with pytest.raises(ValueError, match="frozen LM"):
        LexVLA(replace(card, text=replace(card.text, expansion_min_relatedness=0.3)))
    no_lora = replace(card.text, lora=replace(card.text.lora, rank=0), expansion_min_relatedness=0.3)
    model = LexVLA(replace(card, text=no_lora), head_dims=list(range(100, 140)))
    assert model.text.word_states.shape == (len(model.head_dims), model.text.codebook.shape[1])
    assert torch.allclose(model.text.word_states.norm(dim=1), torch.ones(len(model.head_dims)), atol=1e-5)


def test_word_states_do_not_depend_on_the_seed_or_dropout(mini):
    """Word states are the frozen LM's own: the same for a trained model's seed and for the seed it is
    loaded with for export, and the same as read from a model in eval mode."""
    card = load_card("lexvla-mini")
    dims = [mini.vocab.index(w) for w in RELATED + UNRELATED]
    gated_card = replace(card, text=replace(card.text, expansion_min_relatedness=0.3))
    one, two = LexVLA(gated_card, head_dims=dims, seed=1), LexVLA(gated_card, head_dims=dims, seed=2)
    torch.testing.assert_close(one.text.word_states, two.text.word_states)
    torch.testing.assert_close(one.text.word_states, one.eval().word_states([one.vocab.words[j] for j in one.head_dims]))


ANIMAL_WORDS = {"dog", "animal", "mammal", "cat", "bird", "retriever", "terrier", "hound", "spaniel", "primate"}
STARS = [Path("/usr/share/openclipart/png/shapes/stars") / f"{name}.png" for name in ("star_15pt07step", "star_25pt12step")]


def test_the_image_prior_writes_no_animal_on_an_abstract_symbol(mini):
    """Star drawings the ImageNet classifier is unsure of: summing every class's probability into its
    words made dog, animal and mammal among their 5 strongest words (118 dog breeds add up); the
    card's top-5 classes do not."""
    missing = [str(p) for p in STARS if not p.is_file()]
    assert not missing, f"Debian openclipart-png is needed (bash scripts/setup.sh): {missing}"
    pixels = torch.from_numpy(mini.image_spec.batch([load_image(p) for p in STARS]))
    assert mini.image.prior.top_k == 5
    for top_k, expect_animals in ((5, False), (0, True)):
        mini.image.prior.top_k = top_k
        try:
            with torch.no_grad():
                vec, _ = mini.encode_image_batch(pixels)
        finally:
            mini.image.prior.top_k = 5
        for row in vec:
            top5 = {mini.vocab.words[i] for i in row.topk(5).indices.tolist()}
            assert bool(top5 & ANIMAL_WORDS) == expect_animals, (top_k, top5)
