"""The lexical dimensions: which tokenizer entries are words, and id <-> word.

A lexical dimension ``j`` corresponds to tokenizer id ``token_ids[j]`` and is shown as
``words[j]``. Special, unused, punctuation, numeric and sub-word-fragment tokens are dropped by
default (configurable per model card); the kept list is stored in the bundle as ``vocab.json``.
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

SENTENCEPIECE_SPACE = "\u2581"  # "▁" marks a word start in SentencePiece vocabularies


@dataclass
class VocabConfig:
    drop_special: bool = True
    drop_unused: bool = True
    drop_punctuation: bool = True
    drop_subword: bool = True
    drop_numeric: bool = True
    ascii_only: bool = True
    min_chars: int = 2
    extra_drop: list[str] = field(default_factory=list)


_UNUSED = re.compile(r"^\[unused\d+\]$|^<unused\d+>$")


def _is_punctuation(text: str) -> bool:
    return all(unicodedata.category(ch).startswith(("P", "S")) for ch in text)


def normalize_token(token: str) -> tuple[str, bool]:
    """Return ``(surface word, starts_a_word)`` for a WordPiece or SentencePiece token."""
    if token.startswith("##"):
        return token[2:], False
    if token.startswith(SENTENCEPIECE_SPACE):
        return token[1:], True
    return token, True


def keep_token(token: str, special: set[str], cfg: VocabConfig, sentencepiece: bool) -> str | None:
    """The word a token contributes as a lexical dimension, or ``None`` when it is masked out."""
    if cfg.drop_special and token in special:
        return None
    if cfg.drop_unused and _UNUSED.match(token):
        return None
    if token.startswith("<") and token.endswith(">") and cfg.drop_special:
        return None  # byte-fallback pieces such as <0x0A>
    word, starts = normalize_token(token)
    # In SentencePiece a piece without "▁" continues a word; in WordPiece "##" marks it.
    is_fragment = (not starts) or (sentencepiece and not token.startswith(SENTENCEPIECE_SPACE))
    if cfg.drop_subword and is_fragment:
        return None
    if not word or len(word) < cfg.min_chars:
        return None
    if cfg.drop_punctuation and _is_punctuation(word):
        return None
    if cfg.drop_numeric and any(ch.isdigit() for ch in word):
        return None
    if cfg.ascii_only and not (word.isascii() and word.isalpha()):
        return None
    if word.lower() in cfg.extra_drop:
        return None
    return word


@dataclass
class Vocabulary:
    """Kept lexical dimensions: ``words[j]`` is shown for dimension ``j`` = tokenizer id ``token_ids[j]``."""

    words: list[str]
    token_ids: list[int]

    def __post_init__(self) -> None:
        if len(self.words) != len(self.token_ids):
            raise ValueError("words and token_ids differ in length")
        self._index = {w: j for j, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def index(self, word: str) -> int | None:
        """Dimension of ``word`` (exact, then lower-case), or ``None`` when it is not a dimension."""
        j = self._index.get(word)
        return j if j is not None else self._index.get(word.lower())

    @classmethod
    def from_tokenizer_vocab(
        cls, vocab: dict[str, int], special: set[str], cfg: VocabConfig | None = None
    ) -> Vocabulary:
        cfg = cfg or VocabConfig()
        sentencepiece = any(t.startswith(SENTENCEPIECE_SPACE) for t in vocab)
        kept: dict[str, int] = {}
        for token, tid in sorted(vocab.items(), key=lambda t: t[1]):
            word = keep_token(token, special, cfg, sentencepiece)
            if word is not None and word not in kept:  # first id wins for duplicate surfaces
                kept[word] = tid
        return cls(words=list(kept), token_ids=list(kept.values()))

    def save(self, path: Path, cfg: VocabConfig | None = None) -> None:
        doc = {"words": self.words, "token_ids": self.token_ids, "config": asdict(cfg) if cfg else None}
        Path(path).write_text(json.dumps(doc, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        doc = json.loads(Path(path).read_text())
        return cls(words=doc["words"], token_ids=doc["token_ids"])
