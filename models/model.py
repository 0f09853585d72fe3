"""``LexVLA``: both towers, the tokenizer and vocabulary built from one model card."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from models.backbones import ImageBackbone, input_embeddings, load_image_backbone, load_text_lm
from models.colours import COLOURS, ColourWords, colour_words
from models.preprocess import ImageSpec, TextPreprocessor
from models.registry import ModelCard, resolve_path
from models.towers import ClassPrior, ExactWords, ImageTower, TextTower, caption_mask, whole_word_dims
from models.vocab import Vocabulary

log = logging.getLogger(__name__)
# Words that say how a picture was made or published, not what it shows. Icon sets and clip art caption
# their drawings "... icon", so a head trained on them learned "icon" as a word for any plain drawing,
# and it was the word held-out pictures got wrongly most often (lexvla report at 9614b39: "icon" and
# "icons" 2,516 times among the 5 strongest words, true 14 times). The image head never writes them.
MEDIUM_WORDS = frozenset({"icon", "icons", "clipart", "emoji", "emojis", "illustration", "illustrations", "vector",
                          "graphic", "graphics", "image", "images", "picture", "pictures"})


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


# word_states of recent head-word lists, per process (LexVLA._cached_word_states)
_WORD_STATES: dict[tuple, torch.Tensor] = {}
WORD_STATES_KEPT = 8


def caption_word_dims(vocab: Vocabulary, tokenizer, preprocessor: TextPreprocessor, captions: list[str],
                      min_count: int = 1) -> list[int]:  # fmt: skip
    """Lexical dimensions that at least ``min_count`` of ``captions`` contain as whole words (or singulars),
    less the ``MEDIUM_WORDS``: the words a trained image head writes. Needs the tokenizer and vocabulary
    only, so a trainer knows its head before it builds the model once."""
    token_dim, lemma_dim, continues = (torch.from_numpy(t) for t in vocab.token_tables(tokenizer.get_vocab(), set()))
    counts: dict[int, int] = {}
    for caption in captions:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # long captions are truncated as in training
                ids = torch.tensor([preprocessor.caption_ids(caption)])
        except ValueError:
            continue
        dims = whole_word_dims(ids, token_dim, continues)
        lemmas = lemma_dim[ids] * (dims > 0).to(lemma_dim.dtype)
        for j in {int(d) - 1 for d in torch.cat([dims, lemmas], dim=1).flatten().tolist() if d > 0}:
            counts[j] = counts.get(j, 0) + 1
    return sorted(j for j, c in counts.items() if c >= min_count and vocab.words[j] not in MEDIUM_WORDS)


def load_lexicon(card: ModelCard) -> tuple[Any, set[str], Vocabulary, TextPreprocessor]:
    """``(tokenizer, special tokens, vocabulary, text preprocessor)`` of a card: the model's words without its weights."""
    tokenizer, special = load_tokenizer(card)
    vocab = Vocabulary.from_tokenizer_vocab(tokenizer.get_vocab(), special, card.vocab)
    return tokenizer, special, vocab, TextPreprocessor(tokenizer, card.text.prompt, card.text.max_caption_tokens, card.text.lowercase)


class LexVLA(nn.Module):
    """Image and text towers sharing one lexical vocabulary, with a learnable temperature.

    ``head_dims``: the vocabulary dimensions the trained heads may write (see ``models.towers``);
    ``None`` takes the card's choice (every word, or only the prior's words before training).
    """

    def __init__(self, card: ModelCard, head_dims: list[int] | None = None, seed: int | None = None):
        super().__init__()
        torch.manual_seed(card.seed if seed is None else seed)
        self.card = card
        self.tokenizer, special, self.vocab, self.text_preprocessor = load_lexicon(card)
        self.image_spec = ImageSpec(card.vision.image_size, card.vision.mean, card.vision.std)

        backbone = load_image_backbone(card.vision.backbone, resolve_path(card.vision.path, "image backbone"), card.vision.config)
        prior_dims, class_words, classifier = self._class_prior(backbone)
        colour_dims = colour_words(self.vocab.words) if card.vision.colour_weight > 0 else []
        self.head_dims = self._head_dims(head_dims, sorted(set(prior_dims) | {j for _, j in colour_dims}))

        lm = load_text_lm(card.text.backbone, resolve_path(card.text.path, "text model"), card.text.config)
        lm.requires_grad_(False)
        if card.text.lora.rank > 0:
            from peft import LoraConfig, get_peft_model

            lora = card.text.lora
            lm = get_peft_model(lm, LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules))
        head, tail = self.text_preprocessor.template_tokens
        dims = torch.tensor(self.head_dims, dtype=torch.long)
        exact = None
        if card.text.exact_match:
            token_dim, lemma_dim, continues = self.vocab.token_tables(self.tokenizer.get_vocab(), special)
            exact = ExactWords(torch.from_numpy(token_dim), torch.from_numpy(lemma_dim), torch.from_numpy(continues),
                               vocab_size=len(self.vocab), hidden=input_embeddings(lm).shape[1])
        head_token_ids = [self.vocab.token_ids[j] for j in self.head_dims]
        self.text = TextTower(lm, head_token_ids, dims, len(self.vocab), card.text.readout, exact=exact,
                              skip_head=head, skip_tail=tail, expansion=card.text.expansion,
                              exact_floor=card.text.exact_floor, min_relatedness=card.text.expansion_min_relatedness)
        if self.text.min_relatedness:
            if card.text.lora.rank > 0:
                raise ValueError(f"card {card.name}: expansion_min_relatedness needs a frozen LM (lora.rank 0)")
            self.text.word_states = self._cached_word_states([self.vocab.words[j] for j in self.head_dims], seed)

        prior = None
        if class_words is not None and classifier is not None:
            column = {int(j): k for k, j in enumerate(prior_dims)}
            matrix = torch.zeros(class_words.shape[0], len(self.head_dims))
            for k, j in enumerate(self.head_dims):
                if j in column:
                    matrix[:, k] = torch.from_numpy(class_words[:, column[j]])
            prior = ClassPrior(classifier, matrix, top_k=card.vision.class_prior_top_k)
        colours, columns = None, None
        if colour_dims:
            colours = ColourWords(card.vision.mean, card.vision.std, card.vision.colour_min_share,
                                  grid=card.vision.image_size // backbone.stride)
            column = {j: k for k, j in enumerate(self.head_dims)}
            columns = torch.zeros(len(COLOURS), len(self.head_dims))
            for c, j in colour_dims:
                columns[c, column[j]] = 1.0
        self.image = ImageTower(backbone, self.text.codebook, card.vision.adapter_hidden, dims, len(self.vocab), prior,
                                colours=colours, colour_columns=columns, colour_weight=card.vision.colour_weight)
        self.logit_scale = nn.Parameter(torch.tensor(2.6593))  # log(1/0.07), as CLIP
        log.info("%s: %d lexical dimensions", card.name, len(self.vocab))

    def _class_prior(self, backbone: ImageBackbone) -> tuple[list[int], np.ndarray | None, nn.Linear | None]:
        """``(prior_dims, class_words [C, len(prior_dims)], the backbone's classifier)`` of the card's
        class prior, or ``([], None, None)``."""
        if not self.card.vision.class_prior:
            return [], None, None
        head = getattr(backbone, "classifier", None)
        classifier = head[-1] if isinstance(head, nn.Sequential) else None
        if self.card.vision.class_prior != "imagenet" or not isinstance(classifier, nn.Linear):
            raise ValueError(f"card {self.card.name}: class prior {self.card.vision.class_prior!r} needs an ImageNet classifier backbone")
        from models.priors.imagenet import prior_matrix

        dims, matrix = prior_matrix(self.vocab.words)
        return [int(j) for j in dims], matrix, classifier

    def _head_dims(self, head_dims: list[int] | None, prior_dims: list[int]) -> list[int]:
        if head_dims is not None:
            return sorted(set(int(j) for j in head_dims) | set(prior_dims))
        if self.card.vision.head_vocab == "training" and prior_dims:
            return sorted(prior_dims)  # before training: the words the prior can say
        return list(range(len(self.vocab)))

    @torch.no_grad()
    def project_(self) -> None:
        """Keep the gates and the prior scale non-negative after an optimiser step (projected gradient).

        A gate clamped in the forward pass alone would stop receiving gradient once below 0.
        """
        for gate in (self.image.gate, self.text.gate, self.image.prior_scale):
            if gate is not None:
                gate.clamp_(min=0.0)

    @property
    def lm_trainable(self) -> bool:
        return self.card.text.lora.rank > 0

    @property
    def patch_grid(self) -> tuple[int, int]:
        side = self.card.vision.image_size // self.image.backbone.stride
        return side, side

    def caption_word_dims(self, captions: list[str], min_count: int = 1) -> list[int]:
        """:func:`caption_word_dims` with this model's tokenizer and vocabulary."""
        return caption_word_dims(self.vocab, self.tokenizer, self.text_preprocessor, captions, min_count)

    def _cached_word_states(self, words: list[str], seed: int | None) -> torch.Tensor:
        """``word_states(words)``, reused when this process built a model of the same text settings
        with the same head words before (the report builds one model per seed and variant of each
        run's head: 4 s of the LM each time). Whole lists are keyed, so the batches, and the result,
        are bit-identical to computing them anew; a random LM (no path) adds its seed to the key."""
        key = (json.dumps(dataclasses.asdict(self.card.text), sort_keys=True, default=str),
               None if self.card.text.path else (self.card.seed if seed is None else seed), tuple(words))
        if key not in _WORD_STATES:
            while len(_WORD_STATES) >= WORD_STATES_KEPT:
                _WORD_STATES.pop(next(iter(_WORD_STATES)))
            _WORD_STATES[key] = self.word_states(words)
        return _WORD_STATES[key].clone()

    @torch.no_grad()
    def word_states(self, words: list[str], batch_size: int = 512) -> torch.Tensor:
        """``[len(words), d]``: each word read alone as a caption, its unit caption state (``TextTower.caption_state``)."""
        states, training = [], self.text.lm.training
        self.text.lm.eval()  # no dropout: the same states whenever and with whatever seed a model is built
        try:
            for start in range(0, len(words), batch_size):
                ids, mask = self.text_inputs(words[start:start + batch_size])
                caption = caption_mask(mask, self.text.skip_head, self.text.skip_tail)
                states.append(self.text.caption_state(self.text.hidden_states(ids, mask), caption))  # [b, d]
        finally:
            self.text.lm.train(training)
        return torch.cat(states) if states else torch.zeros(0, self.text.codebook.shape[1])

    def text_inputs(self, texts: list[str], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask ``[B, L]`` of ``texts`` in the card's prompt."""
        ids, mask = self.text_preprocessor.batch(texts)
        return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)

    def encode_text_batch(self, texts: list[str], device: torch.device | str = "cpu") -> torch.Tensor:
        return self.text(*self.text_inputs(texts, device))

    def encode_image_batch(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image(pixels)
