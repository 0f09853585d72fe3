"""The two LexVLA towers. Where a word's weight is computed: ``lexical_activation`` over codebook logits.

Image: frozen backbone -> patch features ``[B,P,d]`` -> adapter -> mapper -> logits against the
trainable visual codebook ``[V,d_c]`` -> ``log(1+relu)`` -> max over patches ``[B,V]``.
Text: LM (optionally with LoRA) -> hidden states -> mapper -> logits against the frozen text
codebook -> ``log(1+relu)``; read out at the prompt's last position (causal LMs) or max-pooled
over the caption's tokens (bidirectional encoders).
"""
from __future__ import annotations

import torch
from torch import nn


def lexical_activation(logits: torch.Tensor) -> torch.Tensor:
    """``log(1 + relu(x))``: non-negative, sub-linear word weights (SPLADE/LexVLA)."""
    return torch.log1p(torch.relu(logits))


def masked_max_pool(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over positions of ``[B, L, V]`` where ``mask [B, L]`` is 1 (at least one per row)."""
    return values.masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).amax(dim=1)


class Adapter(nn.Module):
    """Residual MLP on frozen patch features (the paper's learned adapter)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return x + self.mlp(x)


class ImageTower(nn.Module):
    def __init__(self, backbone: nn.Module, codebook: torch.Tensor, adapter_hidden: int):
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)  # frozen: features can be cached
        d_feat, d_code = backbone.feature_dim, codebook.shape[1]
        self.adapter = Adapter(d_feat, adapter_hidden)
        self.mapper = nn.Linear(d_feat, d_code)
        # Initialised from the text codebook, then trained (the paper's visual codebook).
        self.codebook = nn.Parameter(codebook.detach().clone().float())

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen BatchNorm/Dropout statistics
        return self

    def patch_logits(self, feats: torch.Tensor) -> torch.Tensor:
        """Backbone patch features ``[B,P,d]`` -> codebook logits ``[B,P,V]``."""
        mapped = self.mapper(self.adapter(feats))  # [B, P, d_c]
        return mapped @ self.codebook.t()  # [B, P, V]

    def from_features(self, feats: torch.Tensor, patches: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Image word weights ``[B,V]`` (and per-patch weights ``[B,P,V]`` when asked)."""
        logits = self.patch_logits(feats)
        # log1p(relu(.)) is monotonic, so pooling the logits first gives the same max over patches
        # while the activation (and its backward) runs on [B,V] instead of [B,P,V].
        vec = lexical_activation(logits.amax(dim=1))
        return vec, (lexical_activation(logits) if patches else None)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            feats = self.backbone.patch_features(pixels)
        return self.from_features(feats, patches=True)


class TextTower(nn.Module):
    def __init__(self, lm: nn.Module, vocab_token_ids: list[int], readout: str, skip_head: int = 1, skip_tail: int = 1):
        super().__init__()
        # Max-pooling reads only caption tokens: skip the template's first/last real tokens.
        self.skip_head, self.skip_tail = skip_head, skip_tail
        if readout not in ("last_token", "max_pool"):
            raise ValueError(f"readout must be last_token or max_pool, not {readout!r}")
        self.lm, self.readout = lm, readout
        embeddings = lm.get_input_embeddings().weight  # [vocab_all, d]
        ids = torch.tensor(vocab_token_ids, dtype=torch.long)
        # Frozen text codebook: the LM's own token embeddings of the kept words.
        self.register_buffer("codebook", embeddings.detach()[ids].clone().float(), persistent=True)
        d = embeddings.shape[1]
        self.mapper = nn.Linear(d, d)
        nn.init.eye_(self.mapper.weight)  # start from the LM's own lexical prediction
        nn.init.zeros_(self.mapper.bias)

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, L, d]

    def from_hidden(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """LM hidden states ``[B,L,d]`` -> word weights ``[B,V]``."""
        if self.readout == "last_token":
            last = attention_mask.sum(dim=1) - 1  # right padding: the prompt's final token
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # [B, d]
            return lexical_activation(self.mapper(pooled) @ self.codebook.t())
        token_logits = self.mapper(hidden) @ self.codebook.t()  # [B, L, V]
        # Max over the caption's tokens before the (monotonic) activation: same result, cheaper.
        return lexical_activation(masked_max_pool(token_logits, caption_mask(attention_mask, self.skip_head, self.skip_tail)))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.from_hidden(self.hidden_states(input_ids, attention_mask), attention_mask)


def caption_mask(attention_mask: torch.Tensor, skip_head: int, skip_tail: int) -> torch.Tensor:
    """Attention mask ``[B, L]`` without the template's ``skip_head`` first and ``skip_tail`` last real tokens."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device).unsqueeze(0)  # [1, L]
    length = attention_mask.sum(dim=1, keepdim=True)  # [B, 1]
    inside = (positions >= skip_head) & (positions < length - skip_tail)
    return attention_mask * inside.to(attention_mask.dtype)
