"""Training objective: symmetric InfoNCE on lexical similarity plus a sparsity regulariser.

Each function takes a batch of lexical vectors ``s [N, V]`` (non-negative) and returns a scalar.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def lexical_similarity(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Cosine of lexical vectors ``[N, V] x [M, V] -> [N, M]``: what the L2-normalised index scores."""
    return F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).t()


def info_nce(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP, Radford et al. 2021); pair ``i`` of the batch is the positive."""
    logits = logit_scale.exp().clamp(max=100.0) * lexical_similarity(image, text)  # [N, N]
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def overuse_penalty(s: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """LexVLA's overuse penalty (Li et al., NeurIPS 2024):

    ``l = N*V * sum_j (sum_i s_ij / N)^3 / sum_j sum_i s_ij``

    Words whose mean activation over the batch is large are penalised cubically relative to the
    total mass, so activating a meaningless word for every image costs far more than activating
    many specific words for few images.
    """
    n, v = s.shape
    mean_per_word = s.sum(dim=0) / n  # [V]
    return n * v * mean_per_word.pow(3).sum() / (s.sum() + eps)


def flops_penalty(s: torch.Tensor) -> torch.Tensor:
    """FLOPS regulariser (Paria et al., ICLR 2020; SPLADE): ``sum_j (sum_i s_ij / N)^2``."""
    return s.mean(dim=0).pow(2).sum()


def caption_word_loss(image: torch.Tensor, words: torch.Tensor, scale: float = 10.0) -> torch.Tensor:
    """Image-to-words cross-entropy (Joulin et al., ECCV 2016, "Learning Visual Features from Large
    Weakly Supervised Data"): ``softmax(scale * s_i)`` over the words should put its mass on the
    words of image ``i``'s caption, ``words [N, V]`` (0/1), each weighted equally.

    The contrastive loss only asks an image to be closer to its caption than to the others in the
    batch, which any shared code of words satisfies; this asks the image's strongest words to be
    the caption's own. Rows without a caption word are left out.
    """
    count = words.sum(dim=-1)
    keep = count > 0
    if not keep.any():
        return image.sum() * 0.0
    log_p = F.log_softmax(scale * image[keep], dim=-1)
    return -((words[keep] / count[keep, None]) * log_p).sum(dim=-1).mean()


REGULARIZERS = {"overuse": overuse_penalty, "flops": flops_penalty, "none": None}


def regularizer_weight(step: int, weight: float, warmup_steps: int) -> float:
    """Quadratic warm-up of the regulariser weight (as SPLADE): 0 at step 0, ``weight`` after warm-up."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return weight
    return weight * (step / warmup_steps) ** 2
