import pytest
import torch

from models.losses import info_nce, overuse_penalty
from models.model import LexVLA
from models.registry import load_card


@pytest.fixture(scope="module", params=["tiny-random", "lexvla-mini"])
def model(request):
    return LexVLA(load_card(request.param)).eval()


def test_forward_shapes_and_non_negativity(model):
    size = model.card.vision.image_size
    vec, patches = model.encode_image_batch(torch.randn(2, 3, size, size))
    gh, gw = model.patch_grid
    V = len(model.vocab)
    assert vec.shape == (2, V) and patches.shape == (2, gh * gw, V)
    assert (vec >= 0).all() and (patches >= 0).all()
    torch.testing.assert_close(vec, patches.amax(dim=1))
    text = model.encode_text_batch(["a man riding a white horse", "two dogs"])
    assert text.shape == (2, V) and (text >= 0).all() and (text > 0).any()


def test_gradients_reach_trainable_parts_only(model):
    model.train()
    size = model.card.vision.image_size
    img, _ = model.encode_image_batch(torch.randn(2, 3, size, size))
    txt = model.encode_text_batch(["a red circle", "a blue square"])
    loss = info_nce(img, txt, model.logit_scale) + 1e-3 * overuse_penalty(img)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    # The adapter starts as identity (zero last layer), so at init only its last layer has gradient.
    for name in ["image.codebook", "image.mapper.weight", "image.adapter.mlp.2.weight", "text.mapper.weight", "logit_scale"]:
        assert grads[name] is not None and grads[name].abs().sum() > 0, name
    assert all(not p.requires_grad for p in model.image.backbone.parameters())
    assert not model.text.codebook.requires_grad  # the text codebook stays frozen
    lora = [n for n in grads if "lora_" in n]
    assert bool(lora) == (model.card.text.lora.rank > 0)
    model.zero_grad(set_to_none=True)
    model.eval()


def test_text_prompt_is_the_papers_for_causal_lms():
    card = load_card("tiny-random")
    assert card.text.readout == "last_token"
    assert card.text.prompt.startswith('The focus of "The man is riding a white horse." lies on important words: "man", "riding", "white", "horse".')
    assert card.text.prompt.endswith('The focus of "{text}" lies on important words:')
