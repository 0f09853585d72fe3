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


REGULARIZERS = {"overuse": overuse_penalty, "flops": flops_penalty, "none": None}


def regularizer_weight(step: int, weight: float, warmup_steps: int) -> float:
    """Quadratic warm-up of the regulariser weight (as SPLADE): 0 at step 0, ``weight`` after warm-up."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return weight
    return weight * (step / warmup_steps) ** 2
