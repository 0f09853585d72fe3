"""The two LexVLA towers. Where a word's weight is computed: this file.

Every weight is a sum of a *prior* that needs no training and a *learned* part that starts at
zero (its gate is initialised to 0 where a prior exists), so an untrained model already says sensible words and
training refines them:

Image: frozen backbone -> patch features ``[B,P,d]``.
  - learned: adapter -> mapper -> logits against the trainable visual codebook ``[D,d_c]`` ->
    ``lexical_activation`` -> max over patches, times ``gate``;
  - prior (``ClassPrior``, optional): the backbone's own frozen ImageNet classifier gives class
    probabilities, and a fixed class -> word matrix turns them into word weights (e.g. golden
    retriever -> retriever, dog). The image vector uses the whole image's class probabilities; the
    per-patch maps use each patch's, so heatmaps show where a class word is.
  - familiarity (fitted after training, ``models.train.fit_familiarity``): the learned part is
    scaled by how close the image's pooled features lie to the training images' (max cosine to
    ``prototypes``, mapped through ``familiar_range`` onto [0, 1]). On a picture unlike any it
    learned from (a photo, for a model trained on drawings) the tower says its prior's words,
    not associations learned on other pictures; on training-like pictures the factor is 1.
  - word-rate calibration: the sum is multiplied by a fixed per-word factor ``word_scale`` (1 until
    ``models.train.fit_word_scale`` sets it after training), so that no word is among the strongest
    words of most images -- the overuse penalty's aim, enforced on the training images' statistics.
  - colour words (card option ``vision.colour_weight``; ``models.colours`` says how they are read
    from the pixels): after the calibration, each colour said weighs ``colour_weight`` x the
    image's strongest other word (``ImageTower.with_colours``), or what the heads gave it if more.
Text: LM -> hidden states ``[B,L,d]``.
  - prior (``ExactWords``): the caption's own whole words (and their singular forms) with a
    per-token importance that starts at 1 and is learned;
  - learned expansion (card option ``text.expansion``, on by default): pooled state -> mapper ->
    logits against the frozen text codebook -> ``lexical_activation``, times ``gate``. Without it a
    query vector holds only the words typed, and every matched word is one of them.
  - relatedness gate on the expansion (card option ``text.expansion_min_relatedness``): a word may
    be added only as far as the frozen LM finds it related to the whole caption, by the cosine of
    the caption's pooled state with the pooled state of the word read alone (``word_states``). The
    learned expansion can rank related words; it cannot add words unrelated to what was typed
    ("a red apple" -> fruit, pear, but not shoes or holiday).

``D`` ("head dimensions") is the set of vocabulary dimensions the trained heads may write: every
word by default, or the words the training captions use plus the prior's words (card option
``head_vocab: "training"``). Both towers return full vocabulary-sized vectors ``[B,V]``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from models.backbones import ImageBackbone, input_embeddings
from models.colours import ColourWords


def lexical_activation(logits: torch.Tensor) -> torch.Tensor:
    """``log(1 + relu(x))``: non-negative, sub-linear word weights (SPLADE/LexVLA)."""
    return torch.log1p(torch.relu(logits))


def masked_max_pool(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over positions of ``[B, L, V]`` where ``mask [B, L]`` is 1 (at least one per row)."""
    return values.masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).amax(dim=1)


def masked_mean_pool(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over positions of ``[B, L, d]`` where ``mask [B, L]`` is 1."""
    m = mask.to(values.dtype).unsqueeze(-1)
    return (values * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


class _PatchMaxLogits(torch.autograd.Function):
    """``max_p (mapped[b, p] . codebook[j])`` ``[B, D]`` without autograd keeping ``[B, P, D]`` around.

    Autograd's ``amax`` backward rebuilds a tie mask, counts ties and broadcasts the gradient over
    the whole ``[B, P, D]`` logits; here the backward scatters the gradient onto each word's winning
    patch (one ``[B, P, D]`` buffer) and runs the two matmuls. Same value and gradient (a tie sends
    it to one patch instead of splitting it); a training step of the default takes about a third
    less time (``bench/train_step.py``).
    """

    @staticmethod
    def forward(ctx, mapped: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        ctx.codebook_dtype = codebook.dtype
        codebook = codebook.to(mapped.dtype)  # under autocast the mapper's output may be bfloat16
        values, index = (mapped @ codebook.t()).max(dim=1)  # [B, D] each
        ctx.save_for_backward(mapped, codebook, index)
        return values

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        mapped, codebook, index = ctx.saved_tensors
        batch, patches, dim = mapped.shape
        grad = grad.to(mapped.dtype)
        scattered = grad.new_zeros(batch, patches, codebook.shape[0]).scatter_(1, index.unsqueeze(1), grad.unsqueeze(1))
        grad_mapped = scattered @ codebook if ctx.needs_input_grad[0] else None
        grad_codebook = None
        if ctx.needs_input_grad[1]:
            grad_codebook = (scattered.reshape(-1, codebook.shape[0]).t() @ mapped.reshape(-1, dim)).to(ctx.codebook_dtype)
        return grad_mapped, grad_codebook


def patch_max_logits(mapped: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """``(mapped @ codebook.T).amax(dim=1)``: ``[B, P, d] x [D, d] -> [B, D]``, with a lean backward
    when gradients are needed (``_PatchMaxLogits``); the plain expression otherwise (and in ONNX export)."""
    if torch.is_grad_enabled() and (mapped.requires_grad or codebook.requires_grad) and not torch.jit.is_tracing():
        return _PatchMaxLogits.apply(mapped, codebook)
    return (mapped @ codebook.t()).amax(dim=1)


class ToVocabulary(nn.Module):
    """Scatters ``[..., D]`` head outputs into ``[..., V]`` vocabulary vectors (zeros elsewhere).

    A gather from ``[0, x_1 .. x_D]`` with a constant index: one ONNX ``Gather``, no scatter.
    """

    index: torch.Tensor

    def __init__(self, head_dims: torch.Tensor, vocab_size: int):
        super().__init__()
        index = torch.zeros(vocab_size, dtype=torch.long)
        index[head_dims] = torch.arange(1, len(head_dims) + 1)
        self.register_buffer("index", index, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = torch.cat([torch.zeros_like(x[..., :1]), x], dim=-1)
        return padded.index_select(-1, self.index)


class Adapter(nn.Module):
    """Residual MLP on frozen patch features (the paper's learned adapter)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        first, out = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.mlp = nn.Sequential(first, nn.GELU(), out)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return x + self.mlp(x)


class ClassPrior(nn.Module):
    """Frozen classifier ``[C,d]`` + fixed class -> word matrix ``[C,D]``: word weights from class probabilities.

    With ``top_k`` only the ``top_k`` most probable classes contribute. Summing every class's
    probability into its words lets a picture the classifier does not know (a flag, a star rating)
    collect a word shared by many classes: ImageNet's 118 dog breeds put "dog" among the strongest
    words of about one symbol in twelve. With the top 5, a dog photo still sums its breeds into
    "dog"; a symbol gets "dog" only if a breed is among its five best guesses.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    class_words: torch.Tensor

    def __init__(self, classifier: nn.Linear, class_words: torch.Tensor, top_k: int = 0):
        super().__init__()
        self.register_buffer("weight", classifier.weight.detach().clone().float())
        self.register_buffer("bias", classifier.bias.detach().clone().float())
        self.register_buffer("class_words", class_words.float())
        self.top_k = int(top_k)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Features ``[..., d]`` -> expected word weights ``[..., D]`` under the (top-k) class distribution."""
        probs = torch.softmax(feats @ self.weight.t() + self.bias, dim=-1)  # [..., C]
        if self.top_k:
            kth = probs.topk(self.top_k, dim=-1).values[..., -1:]  # [..., 1]
            probs = probs * (probs >= kth).to(probs.dtype)
        return probs @ self.class_words


class ImageTower(nn.Module):
    colour_columns: torch.Tensor
    head_dims: torch.Tensor
    word_scale: torch.Tensor
    prototypes: torch.Tensor
    familiar_range: torch.Tensor

    def __init__(self, backbone: ImageBackbone, codebook: torch.Tensor, adapter_hidden: int, head_dims: torch.Tensor,
                 vocab_size: int, prior: ClassPrior | None = None, colours: ColourWords | None = None,
                 colour_columns: torch.Tensor | None = None, colour_weight: float = 0.0):  # fmt: skip
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)  # frozen: features can be cached
        d_feat, d_code = backbone.feature_dim, codebook.shape[1]
        self.adapter = Adapter(d_feat, adapter_hidden)
        self.mapper = nn.Linear(d_feat, d_code)
        # Initialised from the text codebook rows of the head dimensions, then trained (the visual codebook).
        self.codebook = nn.Parameter(codebook.detach().clone().float())
        # 0: an untrained tower is its prior alone; without a prior the learned part is all there is.
        self.gate = nn.Parameter(torch.zeros(()) if prior is not None else torch.ones(()))
        self.prior = prior
        self.prior_scale = nn.Parameter(torch.ones(())) if prior is not None else None
        self.register_buffer("head_dims", head_dims.clone(), persistent=True)
        # Per-word factors [D], fitted on the training images after training (models.train.fit_word_scale).
        self.register_buffer("word_scale", torch.ones(len(head_dims)), persistent=True)
        # [K, d] unit centroids of the training images' pooled features and the [unfamiliar, familiar]
        # cosines between which the learned part fades in (models.train.fit_familiarity); K = 0: always 1.
        self.register_buffer("prototypes", torch.zeros(0, d_feat), persistent=True)
        self.register_buffer("familiar_range", torch.zeros(2), persistent=True)
        self.to_vocab = ToVocabulary(head_dims, vocab_size)
        # Colour words from the pixels (models.colours): [C, D] 1 where colour c is spelled by head word k.
        self.colours = colours if colour_weight > 0 else None
        self.colour_weight = float(colour_weight)
        self.register_buffer("colour_columns", colour_columns.float() if colour_columns is not None
                             else torch.zeros(0, len(head_dims)), persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen BatchNorm/Dropout statistics
        return self

    def colour_shares(self, pixels: torch.Tensor, patches: bool) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """Each colour's foreground share ``[B, C]`` (and per patch ``[B, P, C]``), or ``None`` without colour words."""
        if self.colours is None:
            return None
        return self.colours(pixels, patches=patches)

    def with_colours(self, vec: torch.Tensor, per_patch: torch.Tensor | None,
                     colours: tuple[torch.Tensor, torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """Head words ``[B, D]`` (``[B, P, D]``) with the colour words written in: each said colour
        (``ColourWords.strength`` of its share) weighs ``colour_weight`` x the image's strongest other
        word, or what the heads gave it when that is more."""
        assert self.colours is not None  # called only with shares, which only a colour module gives
        shares, patch_shares = colours
        strength = self.colours.strength(shares)  # [B, C]
        reference = vec.detach().amax(dim=1, keepdim=True)  # [B, 1]
        vec = torch.maximum(vec, self.colour_weight * reference * (strength @ self.colour_columns))
        if per_patch is not None and patch_shares is not None:
            # where in the picture: each patch's share of the colour, times the image's strength
            local = (patch_shares * strength.unsqueeze(1)) @ self.colour_columns  # [B, P, D]
            per_patch = torch.maximum(per_patch, self.colour_weight * reference.unsqueeze(1) * local)
        return vec, per_patch

    def patch_logits(self, feats: torch.Tensor) -> torch.Tensor:
        """Backbone patch features ``[B,P,d]`` -> codebook logits ``[B,P,D]``."""
        return self.mapper(self.adapter(feats)) @ self.codebook.t()  # [B, P, d_c] x [d_c, D]

    def familiarity(self, feats: torch.Tensor) -> torch.Tensor:
        """``[B, 1]`` in [0, 1]: how like the training images patch features ``[B,P,d]`` are (1 without prototypes)."""
        if self.prototypes.shape[0] == 0:
            return torch.ones(feats.shape[0], 1, dtype=feats.dtype, device=feats.device)
        pooled = nn.functional.normalize(feats.mean(dim=1), dim=-1)  # [B, d]
        nearest = (pooled @ self.prototypes.t()).amax(dim=1, keepdim=True)  # [B, 1]: cosine to the closest centroid
        low, high = self.familiar_range[0], self.familiar_range[1]
        return ((nearest - low) / (high - low).clamp(min=1e-6)).clamp(0.0, 1.0)

    def from_features(self, feats: torch.Tensor, patches: bool = True,
                      colours: tuple[torch.Tensor, torch.Tensor | None] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """Image word weights ``[B,V]`` (and per-patch weights ``[B,P,V]`` when asked) from patch
        features, with the colour words of ``colours`` (``colour_shares`` of the same pixels) when given."""
        # log1p(relu(.)) is monotonic: pooling the logits first gives the same max over patches
        # while the activation (and its backward) runs on [B,D] instead of [B,P,D].
        gate = self.gate.clamp(min=0.0) * self.familiarity(feats)  # [B, 1]; non-negative, the gradient still flows at 0
        if patches:
            logits = self.patch_logits(feats)
            vec = gate * lexical_activation(logits.amax(dim=1))
            per_patch = gate.unsqueeze(-1) * lexical_activation(logits)
        else:
            vec = gate * lexical_activation(patch_max_logits(self.mapper(self.adapter(feats)), self.codebook))
            per_patch = None
        if self.prior is not None:
            assert self.prior_scale is not None  # made together with the prior
            scale = self.prior_scale.clamp(min=0.0)
            vec = vec + scale * self.prior(feats.mean(dim=1))  # the classifier's own view: pooled features
            if per_patch is not None:
                per_patch = per_patch + scale * self.prior(feats)
        vec = vec * self.word_scale
        per_patch = per_patch * self.word_scale if per_patch is not None else None
        if colours is not None and self.colours is not None:  # after the calibration, which never lowers a colour
            vec, per_patch = self.with_colours(vec, per_patch, colours)
        return self.to_vocab(vec), (self.to_vocab(per_patch) if per_patch is not None else None)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            feats = self.backbone.patch_features(pixels)
        vec, per_patch = self.from_features(feats, patches=True, colours=self.colour_shares(pixels, patches=True))
        assert per_patch is not None  # asked for with patches=True
        return vec, per_patch


def whole_word_dims(input_ids: torch.Tensor, token_dim: torch.Tensor, continues: torch.Tensor) -> torch.Tensor:
    """``[B,L]``: 1 + the lexical dimension of each token that is a whole word, 0 elsewhere.

    A token is a whole word when it is a dimension and the next token does not continue it, so
    "pen" of "pen ##guin" is not the word "pen".
    """
    dims = token_dim[input_ids]
    next_continues = torch.cat([continues[input_ids[:, 1:]], torch.zeros_like(continues[input_ids[:, :1]])], dim=1)
    return dims * (next_continues == 0).to(dims.dtype)


class ExactWords(nn.Module):
    """The exact-match path: a caption's own whole words, each with a learned importance.

    ``token_dim[t]``/``lemma_dim[t]`` give tokenizer id ``t``'s lexical dimension and that of its
    singular form, plus one (0: none); ``continues[t]`` is 1 for a token that continues the previous
    word (WordPiece ``##``, SentencePiece pieces without ``▁``). A token counts only when it is a
    whole word (``whole_word_dims``).
    The importance is ``softplus(w . h + b)``, 1 for every word before training.
    """

    token_dim: torch.Tensor
    lemma_dim: torch.Tensor
    continues: torch.Tensor

    def __init__(self, token_dim: torch.Tensor, lemma_dim: torch.Tensor, continues: torch.Tensor,
                 vocab_size: int, hidden: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.register_buffer("token_dim", token_dim.long(), persistent=False)
        self.register_buffer("lemma_dim", lemma_dim.long(), persistent=False)
        self.register_buffer("continues", continues.float(), persistent=False)
        self.importance = nn.Linear(hidden, 1)
        nn.init.zeros_(self.importance.weight)
        nn.init.constant_(self.importance.bias, math.log(math.e - 1.0))  # softplus(b) = 1

    def forward(self, input_ids: torch.Tensor, hidden: torch.Tensor, caption: torch.Tensor) -> torch.Tensor:
        """``input_ids [B,L]``, hidden states ``[B,L,d]``, caption mask ``[B,L]`` -> word weights ``[B,V]``."""
        weight = nn.functional.softplus(self.importance(hidden).squeeze(-1))  # [B, L]
        return self._scatter(input_ids, caption, weight)

    def caption_words(self, input_ids: torch.Tensor, caption: torch.Tensor) -> torch.Tensor:
        """``[B,V]``: 1 for each word the caption holds (whole words and singulars), 0 elsewhere."""
        return self._scatter(input_ids, caption, torch.ones(input_ids.shape, device=input_ids.device)).clamp(max=1.0)

    def _scatter(self, input_ids: torch.Tensor, caption: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        dims = whole_word_dims(input_ids, self.token_dim, self.continues)  # [B, L]
        weight = weight * (dims > 0).to(weight.dtype) * caption.to(weight.dtype)
        out = torch.zeros(input_ids.shape[0], self.vocab_size + 1, dtype=weight.dtype, device=weight.device)
        out = out.scatter_add(1, dims, weight).scatter_add(1, self.lemma_dim[input_ids], weight)
        return out[:, 1:]


class TextTower(nn.Module):
    codebook: torch.Tensor
    word_states: torch.Tensor

    def __init__(self, lm: nn.Module, head_token_ids: list[int], head_dims: torch.Tensor, vocab_size: int,
                 readout: str, exact: ExactWords | None = None, skip_head: int = 1, skip_tail: int = 1,
                 expansion: bool = True, exact_floor: float = 0.0, min_relatedness: float = 0.0):
        super().__init__()
        if not expansion and exact is None:
            raise ValueError("a text tower needs the exact-match path, the expansion, or both")
        if not 0.0 <= exact_floor <= 1.0 or (exact_floor and exact is None):
            raise ValueError(f"exact_floor must be in [0, 1] and needs the exact-match path, not {exact_floor!r}")
        if not 0.0 <= min_relatedness < 1.0 or (min_relatedness and not expansion):
            raise ValueError(f"expansion_min_relatedness must be in [0, 1) and needs the expansion, not {min_relatedness!r}")
        self.min_relatedness = float(min_relatedness)
        # Each of the caption's own words weighs at least exact_floor x the vector's strongest word,
        # so the learned importance and expansion can rank a typed word low but never drop it.
        self.exact_floor = float(exact_floor)
        # Pooled readouts read only caption tokens: skip the template's first/last real tokens.
        self.skip_head, self.skip_tail = skip_head, skip_tail
        if readout not in ("last_token", "max_pool", "mean_pool"):
            raise ValueError(f"readout must be last_token, max_pool or mean_pool, not {readout!r}")
        self.lm, self.readout, self.exact = lm, readout, exact
        embeddings = input_embeddings(lm)  # [vocab_all, d]
        ids = torch.tensor(head_token_ids, dtype=torch.long)
        # Frozen text codebook: the LM's own token embeddings of the head words.
        self.register_buffer("codebook", embeddings.detach()[ids].clone().float(), persistent=True)
        d = embeddings.shape[1]
        self.mapper: nn.Linear | None = None
        self.gate: nn.Parameter | None = None
        if expansion:
            self.mapper = nn.Linear(d, d)
            nn.init.eye_(self.mapper.weight)  # the LM's own lexical prediction, gated off until trained
            nn.init.zeros_(self.mapper.bias)
            # Without an exact-match path the expansion is the whole text vector: it starts open.
            self.gate = nn.Parameter(torch.zeros(()) if exact is not None else torch.ones(()))
        # [D, d] unit vectors: the frozen LM's caption state of each head word read alone (LexVLA.word_states).
        self.register_buffer("word_states", torch.zeros(len(head_dims) if min_relatedness else 0, d), persistent=False)
        self.to_vocab = ToVocabulary(head_dims, vocab_size)

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, L, d]

    def expansion(self, hidden: torch.Tensor, attention_mask: torch.Tensor, caption: torch.Tensor) -> torch.Tensor:
        """Learned word weights over the head dimensions ``[B,D]``, times the relatedness gate when there is one."""
        weights = self._expansion(hidden, attention_mask, caption)
        if self.min_relatedness:
            weights = weights * self.relatedness_gate(hidden, caption)
        return weights

    def _expansion(self, hidden: torch.Tensor, attention_mask: torch.Tensor, caption: torch.Tensor) -> torch.Tensor:
        mapper = self.mapper
        assert mapper is not None, "the text tower was built without the expansion"
        if self.readout == "last_token":
            last = attention_mask.sum(dim=1) - 1  # right padding: the prompt's final token
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # [B, d]
            return lexical_activation(mapper(pooled) @ self.codebook.t())
        if self.readout == "mean_pool":
            return lexical_activation(mapper(masked_mean_pool(hidden, caption)) @ self.codebook.t())
        token_logits = mapper(hidden) @ self.codebook.t()  # [B, L, D]
        # Max over the caption's tokens before the (monotonic) activation: same result, cheaper.
        return lexical_activation(masked_max_pool(token_logits, caption))

    @staticmethod
    def caption_state(hidden: torch.Tensor, caption: torch.Tensor) -> torch.Tensor:
        """The caption's unit-length mean-pooled state ``[B,d]`` (the LM's sentence embedding, template excluded)."""
        return nn.functional.normalize(masked_mean_pool(hidden, caption), dim=-1)

    def relatedness_gate(self, hidden: torch.Tensor, caption: torch.Tensor) -> torch.Tensor:
        """``[B,D]`` in [0, 1]: 0 for a head word whose cosine with the caption is at most
        ``min_relatedness``, rising linearly to 1 at cosine 1."""
        cosine = self.caption_state(hidden, caption) @ self.word_states.t()  # [B, D]
        return ((cosine - self.min_relatedness) / (1.0 - self.min_relatedness)).clamp(0.0, 1.0)

    def from_hidden(self, hidden: torch.Tensor, attention_mask: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """LM hidden states ``[B,L,d]`` -> word weights ``[B,V]``."""
        caption = caption_mask(attention_mask, self.skip_head, self.skip_tail)
        if self.mapper is None:  # the caption's own words only: every query word is a word typed
            assert self.exact is not None  # __init__: a tower without the expansion has the exact-match path
            return self.exact(input_ids, hidden, caption)
        assert self.gate is not None  # made together with the mapper
        vec = self.to_vocab(self.gate.clamp(min=0.0) * self.expansion(hidden, attention_mask, caption))
        if self.exact is not None:
            vec = vec + self.exact(input_ids, hidden, caption)
            if self.exact_floor:
                floor = self.exact_floor * vec.amax(dim=1, keepdim=True)  # [B, 1]
                vec = torch.maximum(vec, floor * self.exact.caption_words(input_ids, caption))
        return vec

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.from_hidden(self.hidden_states(input_ids, attention_mask), attention_mask, input_ids)

    def typed_words(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B,V]``: 1 for each of the caption's own words (the words the floor holds up)."""
        if self.exact is None:
            raise ValueError("typed_words needs the exact-match path (card option text.exact_match)")
        return self.exact.caption_words(input_ids, caption_mask(attention_mask, self.skip_head, self.skip_tail))


def caption_mask(attention_mask: torch.Tensor, skip_head: int, skip_tail: int) -> torch.Tensor:
    """Attention mask ``[B, L]`` without the template's ``skip_head`` first and ``skip_tail`` last real tokens."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device).unsqueeze(0)  # [1, L]
    length = attention_mask.sum(dim=1, keepdim=True)  # [B, 1]
    inside = (positions >= skip_head) & (positions < length - skip_tail)
    return attention_mask * inside.to(attention_mask.dtype)
