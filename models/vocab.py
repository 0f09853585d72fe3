"""The lexical dimensions: which tokenizer entries are words, and id <-> word.

A lexical dimension ``j`` corresponds to tokenizer id ``token_ids[j]`` and is shown as
``words[j]``. Special, unused, punctuation, numeric, sub-word-fragment and function-word (``STOPWORDS``)
tokens are dropped by default (configurable per model card); the kept list is stored in the bundle as ``vocab.json``.
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

SENTENCEPIECE_SPACE = "\u2581"  # "▁" marks a word start in SentencePiece vocabularies

# English function words: never a lexical dimension, so they can neither dominate a query nor be
# "explained" as a match. Content words (colours, numbers spelled out, spatial nouns) stay.
STOPWORDS = frozenset("""
a an the this that these those some any each every either neither no nor not only own same such
and or but if then else than so as because while although though unless until whether
of at by for with about against between into through during before after above below to from up
down in out on off over under again further once here there when where why how all both few more
most other very too just also can will would shall should could may might must
is am are was were be been being have has had having do does did doing done
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her
hers herself it its itself they them their theirs themselves what which who whom whose
s t d ll m o re ve y isn aren wasn weren hasn haven hadn doesn don didn won wouldn shan shouldn
couldn mustn mightn needn ain let us via per etc
""".split())


@dataclass
class VocabConfig:
    drop_special: bool = True
    drop_unused: bool = True
    drop_punctuation: bool = True
    drop_subword: bool = True
    drop_numeric: bool = True
    ascii_only: bool = True
    min_chars: int = 2
    drop_stopwords: bool = True
    extra_drop: list[str] = field(default_factory=list)


# Plural -> singular beyond the regular -s/-es/-ies endings (see ``singular``).
IRREGULAR_PLURALS = {
    "men": "man", "women": "woman", "children": "child", "people": "person", "mice": "mouse", "geese": "goose",
    "feet": "foot", "teeth": "tooth", "knives": "knife", "leaves": "leaf", "wolves": "wolf", "wives": "wife",
    "lives": "life", "halves": "half", "shelves": "shelf", "calves": "calf", "loaves": "loaf", "thieves": "thief",
    "oxen": "ox", "sheep": "sheep", "fish": "fish", "deer": "deer",
}


def singular(word: str, known: set[str] | dict[str, int]) -> str | None:
    """The singular of an English plural ``word`` when that singular is in ``known`` (else ``None``)."""
    w = word.lower()
    if w in IRREGULAR_PLURALS:
        candidates = [IRREGULAR_PLURALS[w]]
    elif w.endswith("ies") and len(w) > 4:
        candidates = [w[:-3] + "y"]
    elif w.endswith(("ses", "xes", "zes", "ches", "shes")):
        candidates = [w[:-2], w[:-1]]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 3:
        candidates = [w[:-1]]
    else:
        return None
    return next((c for c in candidates if c != w and c in known), None)


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
    if word.lower() in cfg.extra_drop or (cfg.drop_stopwords and word.lower() in STOPWORDS):
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

    def token_tables(self, tokenizer_vocab: dict[str, int], special: set[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per tokenizer id: ``(token_dim, lemma_dim, continues)``, int64/int64/bool arrays.

        ``token_dim[t]`` is 1 + the lexical dimension of token ``t`` (0: not a dimension),
        ``lemma_dim[t]`` 1 + that of its singular form when it is a plural (0: none), and
        ``continues[t]`` says that ``t`` continues the previous token's word.
        """
        size = max(tokenizer_vocab.values(), default=-1) + 1
        token_dim = np.zeros(size, np.int64)
        lemma_dim = np.zeros(size, np.int64)
        continues = np.zeros(size, bool)
        token_dim[np.asarray(self.token_ids, np.int64)] = np.arange(1, len(self) + 1)
        for j, tid in enumerate(self.token_ids):
            lemma = singular(self.words[j], self._index)
            if lemma is not None:
                lemma_dim[tid] = self._index[lemma] + 1
        sentencepiece = any(t.startswith(SENTENCEPIECE_SPACE) for t in tokenizer_vocab)
        for token, tid in tokenizer_vocab.items():
            if token in special or (token.startswith("<") and token.endswith(">")):
                continue
            continues[tid] = token.startswith("##") or (sentencepiece and not token.startswith(SENTENCEPIECE_SPACE))
        return token_dim, lemma_dim, continues

    def save(self, path: Path, cfg: VocabConfig | None = None) -> None:
        doc = {"words": self.words, "token_ids": self.token_ids, "config": asdict(cfg) if cfg else None}
        Path(path).write_text(json.dumps(doc, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        doc = json.loads(Path(path).read_text())
        return cls(words=doc["words"], token_ids=doc["token_ids"])
