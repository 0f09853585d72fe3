import math

import pytest
import torch

from models.losses import caption_word_loss, flops_penalty, info_nce, overuse_penalty, regularizer_weight


def test_overuse_penalty_matches_hand_computed_example():
    # N=2 images, V=3 words.
    s = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    # column means: [2, 0, 1]; sum of cubes = 8 + 0 + 1 = 9; total mass = 6
    # l = N*V * 9 / 6 = 6 * 1.5 = 9
    assert overuse_penalty(s).item() == pytest.approx(9.0)


def test_overuse_penalty_prefers_spread_over_a_word_used_everywhere():
    everywhere = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    specific = torch.eye(4)  # the same total mass, one distinct word per image
    assert overuse_penalty(everywhere) > 10 * overuse_penalty(specific)


def test_flops_penalty_is_sum_of_squared_means():
    s = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    assert flops_penalty(s).item() == pytest.approx(2.0**2 + 0 + 1.0**2)


def test_info_nce_is_low_for_matching_pairs_and_high_for_swapped():
    a = torch.eye(4) * 5
    scale = torch.tensor(3.0)
    assert info_nce(a, a, scale) < 0.1
    assert info_nce(a, a.flip(0), scale) > 2.0


def test_penalties_have_gradients():
    s = torch.rand(5, 7, requires_grad=True)
    (overuse_penalty(s) + flops_penalty(s)).backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()


def test_regularizer_weight_warms_up_quadratically():
    assert regularizer_weight(0, 1.0, 10) == 0.0
    assert regularizer_weight(5, 1.0, 10) == pytest.approx(0.25)
    assert regularizer_weight(20, 1.0, 10) == 1.0


def test_caption_word_loss_matches_hand_computed_example():
    image = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    words = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])  # the second row has no caption word: left out
    log_p = torch.log_softmax(torch.tensor([10.0, 0.0, 0.0]), dim=0)
    torch.testing.assert_close(caption_word_loss(image, words), -(log_p[0] + log_p[1]) / 2)


def test_caption_word_loss_prefers_the_captions_words():
    words = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    own = caption_word_loss(torch.tensor([[0.0, 2.0, 2.0, 0.0]]), words)
    other = caption_word_loss(torch.tensor([[2.0, 0.0, 0.0, 2.0]]), words)
    assert own < math.log(2) + 0.01 and other > 20.0  # log 2: the best for two equally weighted words
    image = torch.zeros(1, 4, requires_grad=True)
    caption_word_loss(image, words).backward()
    assert (image.grad[0, 1:3] < 0).all() and (image.grad[0, [0, 3]] > 0).all()  # raise the caption's words
