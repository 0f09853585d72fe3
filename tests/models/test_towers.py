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
    if model.image.prior is None:  # with a class prior the vector uses the whole image's class probabilities
        torch.testing.assert_close(vec, patches.amax(dim=1))
    text = model.encode_text_batch(["a man riding a white horse", "two dogs"])
    assert text.shape == (2, V) and (text >= 0).all() and (text > 0).any()


def test_gradients_reach_trainable_parts_only(model):
    model.train()
    with torch.no_grad():  # open the gates: at init they are 0 and only the gates themselves get gradient
        model.image.gate.fill_(1.0)
        model.text.gate.fill_(1.0)
    size = model.card.vision.image_size
    img, _ = model.encode_image_batch(torch.randn(2, 3, size, size))
    txt = model.encode_text_batch(["a red circle", "a blue square"])
    loss = info_nce(img, txt, model.logit_scale) + 1e-3 * overuse_penalty(img)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    # The adapter starts as identity (zero last layer), so at init only its last layer has gradient.
    names = ["image.codebook", "image.mapper.weight", "image.adapter.mlp.2.weight", "text.mapper.weight", "logit_scale",
             "image.gate", "text.gate", "text.exact.importance.weight"]
    for name in names:
        assert grads[name] is not None and grads[name].abs().sum() > 0, name
    assert all(not p.requires_grad for p in model.image.backbone.parameters())
    assert not model.text.codebook.requires_grad  # the text codebook stays frozen
    lora = [n for n in grads if "lora_" in n]
    assert bool(lora) == (model.card.text.lora.rank > 0)
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        model.image.gate.fill_(0.0 if model.image.prior is not None else 1.0)
        model.text.gate.fill_(0.0 if model.text.exact is not None else 1.0)
    model.eval()


def test_gates_start_closed_and_still_learn(model):
    """Untrained, a learned part that has a prior beside it adds nothing; its gate still gets gradient at 0."""
    size = model.card.vision.image_size
    img, _ = model.encode_image_batch(torch.randn(2, 3, size, size))
    txt = model.encode_text_batch(["a red circle", "a blue square"])
    info_nce(img, txt, model.logit_scale).backward()
    for part, has_prior in [(model.image, model.image.prior is not None), (model.text, model.text.exact is not None)]:
        assert float(part.gate.detach()) == (0.0 if has_prior else 1.0)
        assert part.gate.grad is not None and part.gate.grad.abs() > 0
    model.zero_grad(set_to_none=True)


def test_text_prompt_is_the_papers_for_causal_lms():
    card = load_card("tiny-random")
    assert card.text.readout == "last_token"
    assert card.text.prompt.startswith('The focus of "The man is riding a white horse." lies on important words: "man", "riding", "white", "horse".')
    assert card.text.prompt.endswith('The focus of "{text}" lies on important words:')
