"""``LexVLA``: both towers, the tokenizer and vocabulary built from one model card."""
from __future__ import annotations

import logging
import os

import torch
from torch import nn

from models.backbones import load_image_backbone, load_text_lm
from models.preprocess import ImageSpec, TextPreprocessor
from models.registry import ModelCard, resolve_path
from models.towers import ImageTower, TextTower
from models.vocab import Vocabulary

log = logging.getLogger(__name__)


def load_tokenizer(card: ModelCard):
    """The text tower's tokenizer as a ``tokenizers.Tokenizer`` plus its special tokens."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    source = resolve_path(card.text.tokenizer or card.text.path, "text tokenizer")
    if source is None:
        raise ValueError(f"card {card.name}: the text tower needs a tokenizer path")
    kwargs = {"gguf_file": card.text.tokenizer_gguf} if card.text.tokenizer_gguf else {}
    hf_tok = AutoTokenizer.from_pretrained(source, **kwargs)
    return hf_tok.backend_tokenizer, set(hf_tok.all_special_tokens)


class LexVLA(nn.Module):
    """Image and text towers sharing one lexical vocabulary, with a learnable temperature."""

    def __init__(self, card: ModelCard):
        super().__init__()
        torch.manual_seed(card.seed)
        self.card = card
        self.tokenizer, special = load_tokenizer(card)
        self.vocab = Vocabulary.from_tokenizer_vocab(self.tokenizer.get_vocab(), special, card.vocab)
        self.text_preprocessor = TextPreprocessor(
            self.tokenizer, card.text.prompt, card.text.max_caption_tokens, card.text.lowercase
        )
        self.image_spec = ImageSpec(card.vision.image_size, card.vision.mean, card.vision.std)

        lm = load_text_lm(card.text.backbone, resolve_path(card.text.path, "text model"), card.text.config)
        lm.requires_grad_(False)
        if card.text.lora.rank > 0:
            from peft import LoraConfig, get_peft_model

            lora = card.text.lora
            lm = get_peft_model(lm, LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules))
        head, tail = self.text_preprocessor.template_tokens
        self.text = TextTower(lm, self.vocab.token_ids, card.text.readout, skip_head=head, skip_tail=tail)

        backbone = load_image_backbone(card.vision.backbone, resolve_path(card.vision.path, "image backbone"), card.vision.config)
        self.image = ImageTower(backbone, self.text.codebook, card.vision.adapter_hidden)
        self.logit_scale = nn.Parameter(torch.tensor(2.6593))  # log(1/0.07), as CLIP
        log.info("%s: %d lexical dimensions", card.name, len(self.vocab))

    @property
    def lm_trainable(self) -> bool:
        return self.card.text.lora.rank > 0

    @property
    def patch_grid(self) -> tuple[int, int]:
        side = self.card.vision.image_size // self.image.backbone.stride
        return side, side

    def encode_text_batch(self, texts: list[str], device: torch.device | str = "cpu") -> torch.Tensor:
        ids, mask = self.text_preprocessor.batch(texts)
        return self.text(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))

    def encode_image_batch(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image(pixels)
