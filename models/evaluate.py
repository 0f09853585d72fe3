"""Evaluation: retrieval R@1/5/10 in both directions, sparsity, overuse and PatchDis mIoU.

Vectors are evaluated exactly as they are indexed: top-k, L2-normalised sparse vectors from the
bundle (``Bundle.image_vectors`` / ``text_vectors``), scored by dot product.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
from scipy import sparse as sp

from models.sparse import SparseVector, quantize

RECALL_AT = (1, 5, 10)


def to_csr(vectors: Sequence[SparseVector], dim: int) -> sp.csr_matrix:
    """Stack sparse vectors into a ``[N, dim]`` CSR matrix."""
    indptr = np.cumsum([0] + [len(v) for v in vectors])
    ids = np.concatenate([v.ids for v in vectors]) if vectors else np.zeros(0, np.int64)
    vals = np.concatenate([v.weights for v in vectors]) if vectors else np.zeros(0, np.float32)
    return sp.csr_matrix((vals, ids, indptr), shape=(len(vectors), dim))


def recall_at_k(ranks: np.ndarray, ks: Sequence[int] = RECALL_AT) -> dict[int, float]:
    """Percentage of queries whose first relevant item has 0-based rank < k."""
    return {k: float(100.0 * np.mean(ranks < k)) for k in ks}


def retrieval_metrics(images: sp.csr_matrix, texts: sp.csr_matrix, text_image: np.ndarray) -> dict[str, float]:
    """R@K for text->image and image->text.

    Parameters
    ----------
    images : ``[N, V]`` image vectors.  texts : ``[M, V]`` caption vectors (sparse matrices or
        dense arrays).
    text_image : ``[M]`` index of each caption's image.
    """
    sim = texts @ images.T
    sim = sim.toarray() if sp.issparse(sim) else np.asarray(sim)  # [M, N]
    own = sim[np.arange(len(text_image)), text_image]
    # Ties count against the query (a zero vector ranks last, not first).
    t2i_rank = (sim > own[:, None]).sum(1) + (sim == own[:, None]).sum(1) - 1
    i2t_rank = np.full(images.shape[0], np.iinfo(np.int64).max)
    sim_t = sim.T  # [N, M]
    for m, n in enumerate(text_image):
        rank = int((sim_t[n] > sim_t[n, m]).sum() + (sim_t[n] == sim_t[n, m]).sum() - 1)
        i2t_rank[n] = min(i2t_rank[n], rank)
    out = {f"t2i_R@{k}": v for k, v in recall_at_k(t2i_rank).items()}
    out |= {f"i2t_R@{k}": v for k, v in recall_at_k(i2t_rank).items()}
    return out


def sparsity_stats(vectors: Sequence[SparseVector]) -> dict[str, float]:
    counts = np.array([len(v) for v in vectors]) if vectors else np.zeros(1)
    return {"mean_active": float(counts.mean()), "median_active": float(np.median(counts)), "max_active": float(counts.max())}


def overused_words(vectors: Sequence[SparseVector], words: Sequence[str], top: int = 20) -> list[tuple[str, float]]:
    """The ``top`` words active in the most vectors, with the fraction of vectors they appear in."""
    counts = Counter(int(i) for v in vectors for i in v.ids)
    n = max(1, len(vectors))
    return [(words[i], c / n) for i, c in counts.most_common(top)]


def patch_labels(masks: Sequence[tuple[str, np.ndarray]], box: tuple[int, int, int, int], size: int,
                 grid: tuple[int, int], classes: dict[str, int]) -> np.ndarray:
    """Ground-truth class per patch ``[gh*gw]`` (-1: background), by majority of the patch's pixels.

    ``masks`` are in original image coordinates; ``box`` is where the image sits inside the
    letterboxed ``size x size`` square the model saw.
    """
    from PIL import Image

    gh, gw = grid
    votes = np.zeros((len(classes) + 1, gh, gw), np.float32)
    votes[-1] = 0.5  # a patch needs more than half of its pixels on one class
    left, top, right, bottom = box
    for word, mask in masks:
        square = np.zeros((size, size), np.float32)
        resized = Image.fromarray(mask.astype(np.uint8) * 255).resize((right - left, bottom - top), Image.Resampling.NEAREST)
        square[top:bottom, left:right] = np.asarray(resized, np.float32) / 255.0
        pooled = square.reshape(gh, size // gh, gw, size // gw).mean(axis=(1, 3))
        votes[classes[word]] = np.maximum(votes[classes[word]], pooled)
    label = votes.argmax(0)
    return np.where(label == len(classes), -1, label).reshape(-1)


def patchdis_miou(patch_maps: Sequence[np.ndarray], labels: Sequence[np.ndarray], class_dims: Sequence[int],
                  predict: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, float]:
    """PatchDis: each object patch is assigned the class word with the highest lexical weight there.

    Parameters
    ----------
    patch_maps : per image ``[P, V]`` per-patch lexical weights.
    labels : per image ``[P]`` ground-truth class index, -1 for background (not scored).
    class_dims : lexical dimension of each class word.
    predict : replaces the model's choice (``[P, C] -> [P]``), e.g. a random baseline.
    """
    n = len(class_dims)
    inter, union = np.zeros(n), np.zeros(n)
    for maps, label in zip(patch_maps, labels, strict=True):
        scored = label >= 0
        if not scored.any():
            continue
        class_scores = maps[:, class_dims][scored]  # [p, C]
        pred = predict(class_scores) if predict else class_scores.argmax(1)
        truth = label[scored]
        for c in range(n):
            inter[c] += np.sum((pred == c) & (truth == c))
            union[c] += np.sum((pred == c) | (truth == c))
    present = union > 0
    return {"mIoU": float(100.0 * np.mean(inter[present] / union[present])) if present.any() else 0.0,
            "classes": int(present.sum())}


# ---- running an exported bundle over a manifest --------------------------------------------------
def flatten_captions(records) -> tuple[list[str], np.ndarray]:
    """All captions of ``records`` in order, and ``text_image[m]``: the record index of caption m."""
    captions: list[str] = []
    text_image: list[int] = []
    for n, rec in enumerate(records):
        captions += rec.captions
        text_image += [n] * len(rec.captions)
    return captions, np.asarray(text_image, dtype=np.int64)


def encode_records(bundle, records, batch_size: int = 32):
    """Sparse image and caption vectors of ``records`` exactly as the index would hold them.

    ``bundle``: an exported ``models.bundle.Bundle`` (ONNX), or a ``models.scoring.FeatureScorer``
    (the PyTorch heads on cached frozen features: what the report scores its many models with).

    Returns ``(image_vectors, text_vectors, text_image, dense_active)`` where ``text_image[m]`` is
    caption m's image and ``dense_active`` counts each vector's non-zero words before top-k.
    """
    from models.preprocess import load_image

    image_vecs, text_vecs = [], []
    dense_active: dict[str, list[int]] = {"image": [], "text": []}
    captions, text_image = flatten_captions(records)
    if hasattr(bundle, "dense_images"):  # a models.scoring.FeatureScorer: cached frozen features, heads only
        dense = bundle.dense_images(records)
        dense_active["image"] = (dense > 0).sum(1).tolist()
        image_vecs = bundle.image_vectors(dense)
        dense, typed = bundle.dense_texts(captions)
        dense_active["text"] = (dense > 0).sum(1).tolist()
        return image_vecs, bundle.text_vectors(dense, typed), text_image, dense_active
    for start in range(0, len(records), batch_size):
        dense, _ = bundle.encode_images_dense([load_image(r.image) for r in records[start : start + batch_size]])
        dense_active["image"] += (dense > 0).sum(1).tolist()
        image_vecs += bundle.image_vectors(dense)
    for start in range(0, len(captions), 256):
        dense, typed = bundle.encode_texts_typed(captions[start : start + 256])
        dense_active["text"] += (dense > 0).sum(1).tolist()
        text_vecs += bundle.text_vectors(dense, typed)
    return image_vecs, text_vecs, text_image, dense_active


def evaluate_retrieval(bundle, records, batch_size: int = 32, encoded: tuple | None = None) -> dict:
    """R@K both ways, active-word counts and the most used words for a bundle on ``records``.

    ``encoded``: ``encode_records(bundle, records)`` when the caller has it already.
    """
    images, texts, text_image, dense_active = encoded or encode_records(bundle, records, batch_size)
    dim = len(bundle.words)
    # What a person sees first: each image's 10 strongest words (vectors are sorted by weight).
    top10_vectors = [SparseVector(v.ids[:10], v.weights[:10]) for v in images]
    top10 = overused_words(top10_vectors, bundle.words)
    beyond = words_beyond_captions(top10_vectors, records, bundle.words)
    return {
        "images": len(images), "captions": len(texts),
        **retrieval_metrics(to_csr(images, dim), to_csr(texts, dim), text_image),
        "image_active": sparsity_stats(images), "text_active": sparsity_stats(texts),
        "image_active_before_top_k": float(np.mean(dense_active["image"])),
        "text_active_before_top_k": float(np.mean(dense_active["text"])),
        "image_overuse": overused_words(images, bundle.words), "text_overuse": overused_words(texts, bundle.words),
        "image_top10_overuse": top10, "image_top10_max_share": 100.0 * top10[0][1] if top10 else 0.0,
        "image_top10_beyond_captions": beyond[:20],
        "image_top10_max_share_beyond_captions": 100.0 * beyond[0][3] if beyond else 0.0,
    }


def evaluate_patchdis(bundle, records, seed: int = 0) -> dict:
    """PatchDis mIoU of a bundle on records with object masks, and a uniform random baseline."""
    from models.data.scenes import load_masks
    from models.preprocess import load_image

    scenes = [(rec, load_image(rec.image), load_masks(rec)) for rec in records]
    names = sorted({word for _, _, masks in scenes for word, _ in masks})
    missing = [w for w in names if bundle.vocab.index(w) is None]
    if missing:
        raise ValueError(f"class words not in the vocabulary: {missing}")
    classes = {w: c for c, w in enumerate(names)}
    maps, labels = [], []
    for _, img, masks in scenes:
        _, box = bundle.image_spec.letterbox(img)
        _, patches = bundle.encode_images_dense([img], patches=True)
        maps.append(patches[0])
        labels.append(patch_labels(masks, box, bundle.config.image_size, bundle.config.patch_grid, classes))
    dims = [bundle.vocab.index(w) for w in names]
    rng = np.random.default_rng(seed)
    model = patchdis_miou(maps, labels, dims)
    random = patchdis_miou(maps, labels, dims, predict=lambda s: rng.integers(0, s.shape[1], size=(s.shape[0],)))
    return {"mIoU": model["mIoU"], "random_mIoU": random["mIoU"], "classes": names, "images": len(scenes)}


# ---- interpretability: are the indexed words the words people use? ------------------------------
_WORD = re.compile(r"[a-z]+")


def content_words(text: str, vocab) -> list[str]:
    """Lower-case alphabetic words of ``text`` that are dimensions of ``vocab`` (in order, repeats kept)."""
    return [w for w in _WORD.findall(text.lower()) if vocab.index(w) is not None]


def word_retention(bundle, captions: Sequence[str], batch_size: int = 256,
                   vectors: Sequence[SparseVector] | None = None) -> dict:
    """How many of the captions' own vocabulary words survive in their indexed (top-k) text vectors.

    A caption's content words are its lower-case alphabetic words that are lexical dimensions
    (stop words are not); a word is retained when its dimension is in the sparse vector
    ``bundle.encode_texts`` gives with an impact of at least 1 once quantised (what Lucene sees). Retention is micro-averaged over all (caption, word) pairs,
    counting a word once per caption. ``vectors``: the captions' sparse vectors when already encoded.
    """
    if vectors is None:
        vectors = [v for start in range(0, len(captions), batch_size)
                   for v in bundle.encode_texts(list(captions[start : start + batch_size]))]
    total = kept = 0
    dropped_examples: list[tuple[str, list[str]]] = []
    for caption, vec in zip(captions, vectors, strict=True):
        active = set(quantize(vec, bundle.config.quant_scale))
        words = list(dict.fromkeys(content_words(caption, bundle.vocab)))
        dropped = [w for w in words if bundle.vocab.index(w) not in active]
        total += len(words)
        kept += len(words) - len(dropped)
        if dropped and len(dropped_examples) < 10:
            dropped_examples.append((caption, dropped))
    return {"retention": float(100.0 * kept / total) if total else 0.0, "captions": len(captions), "words": total,
            "dropped_examples": dropped_examples}


def words_beyond_captions(vectors: Sequence[SparseVector], records, words: Sequence[str]) -> list[tuple[str, float, float, float]]:
    """Words among the strongest of images their own captions do not justify.

    ``vectors[i]`` is record ``i``'s image vector. For each word that some vector holds while its
    record's captions and keywords lack it: ``(word, share of vectors holding it, share of records
    whose captions or keywords hold it, share of records whose vector holds it and whose captions
    and keywords do not)``, the last share largest first. A word that names a category covering
    many images ("icon" in a corpus of icons) may be among the strongest words of every image that
    carries it in its captions; only the images it is written on without them count as overuse.
    """
    from models.vocab import singular

    known = set(words)
    n = max(1, len(vectors))
    covers = [record_words(r, known) for r in records]
    covered = Counter(w for c in covers for w in c)
    used: Counter[str] = Counter()
    uncovered: Counter[str] = Counter()
    for vec, cover in zip(vectors, covers, strict=True):
        for j in vec.ids:
            word = words[int(j)]
            used[word] += 1
            uncovered[word] += (singular(word, known) or word) not in cover
    out = [(w, used[w] / n, covered[singular(w, known) or w] / n, c / n) for w, c in uncovered.items() if c]
    return sorted(out, key=lambda t: (-t[3], t[0]))


def record_words(record, known: set[str]) -> set[str]:
    """The lower-case words of a record's captions and ``meta["keywords"]``, each as its singular
    when that singular is one of the ``known`` vocabulary words (singular and plural count as one)."""
    from models.vocab import singular

    texts = list(record.captions)
    keywords = record.meta.get("keywords") if record.meta else None
    if keywords:
        texts += [keywords] if isinstance(keywords, str) else [str(x) for x in keywords]
    return {singular(w, known) or w for t in texts for w in _WORD.findall(t.lower())}


def cooccurring_words(records, known: set[str]) -> dict[str, Counter]:
    """``{word: Counter(other word -> records)}``: on how many records people wrote two words together
    (a record's captions and keywords, ``record_words``)."""
    together: dict[str, Counter] = {}
    for record in records:
        words = record_words(record, known) & known
        for word in words:
            together.setdefault(word, Counter()).update(words - {word})
    return together


def expansion_support(bundle, captions: Sequence[str], text_vectors: Sequence[SparseVector],
                      together: dict[str, Counter], k: int = 10, min_records: int = 2) -> dict:
    """Are the words a query adds words people write beside the words it typed?

    A query's expansion words are the words of its indexed text vector (impact >= 1) that the caption
    did not type. One is *supported* when, on at least ``min_records`` records of ``together``
    (``cooccurring_words`` of the training annotations), people wrote it beside one of the caption's
    typed words ("apple" beside "fruit"; not "apple" beside "shoes"). Support@k is the share of a
    query's ``k`` strongest expansion words that are supported, over the queries that add any;
    ``added`` is the mean number of expansion words per query.
    """
    from models.vocab import singular

    known = set(bundle.words)
    supports: list[float] = []
    added: list[int] = []
    examples: list[tuple[str, list[str], list[str]]] = []
    for caption, vec in zip(captions, text_vectors, strict=True):
        typed = {singular(w, known) or w for w in _WORD.findall(caption.lower())}
        impacts = quantize(vec, bundle.config.quant_scale)
        words = [bundle.words[int(i)] for i in vec.ids if impacts.get(int(i), 0) >= 1]  # sorted by weight
        expansion = [w for w in words if (singular(w, known) or w) not in typed]
        added.append(len(expansion))
        if not expansion:
            continue
        top = expansion[:k]
        beside = [together.get(t, Counter()) for t in typed]
        hits = [w for w in top if any(c[singular(w, known) or w] >= min_records for c in beside)]
        supports.append(len(hits) / len(top))
        if len(examples) < 8:
            examples.append((caption, top, hits))
    return {f"support_at_{k}": float(100.0 * np.mean(supports)) if supports else 0.0,
            "queries": len(supports), "added": float(np.mean(added)) if added else 0.0, "examples": examples}


def _image_vectors(bundle, records, vectors, batch_size: int) -> Sequence[SparseVector]:
    from models.preprocess import load_image

    if vectors is not None:
        return vectors
    return [v for start in range(0, len(records), batch_size)
            for v in bundle.encode_images([load_image(r.image) for r in records[start : start + batch_size]])]


def _top_word_hits(bundle, records, vectors: Sequence[SparseVector], k: int):
    """For each record: its image's ``k`` strongest words and those of them its captions or keywords hold
    (``record_words``: singular and plural count as one)."""
    from models.vocab import singular

    known = set(bundle.words)
    for rec, vec in zip(records, vectors, strict=True):
        top = [bundle.words[int(i)] for i in vec.ids[:k]]  # a SparseVector is sorted by weight
        relevant = record_words(rec, known)
        yield rec, top, [w for w in top if (singular(w.lower(), known) or w.lower()) in relevant]


def image_word_precision(bundle, records, k: int = 10, batch_size: int = 32,
                         vectors: Sequence[SparseVector] | None = None) -> dict:
    """Precision@k of each image's top-k indexed words against the words of its captions.

    Relevant words are the lower-case alphabetic words of the record's captions plus
    ``meta["keywords"]`` when present; singular and plural count as the same word (each word is
    mapped to its singular when that singular is a vocabulary word). An image with no active
    word scores 0. ``vectors``: the records' sparse image vectors when already encoded.
    """
    vectors = _image_vectors(bundle, records, vectors, batch_size)
    precisions: list[float] = []
    examples: list[tuple[str, list[str], list[str]]] = []
    for rec, top, hits in _top_word_hits(bundle, records, vectors, k):
        precisions.append(len(hits) / len(top) if top else 0.0)
        if len(examples) < 5:
            examples.append((rec.id, top, hits))
    precision = float(100.0 * np.mean(precisions)) if precisions else 0.0
    return {f"precision_at_{k}": precision, "images": len(precisions), "examples": examples}


def image_word_accuracy(bundle, records, ks: Sequence[int] = (5, 10), batch_size: int = 32,
                        vectors: Sequence[SparseVector] | None = None, examples: int = 8) -> dict:
    """Does an image say what it shows? The share of images whose ``k`` strongest indexed words
    include a word of their captions or keywords (``record_words``; singular and plural count as one),
    for each ``k`` in ``ks``; ``accuracy_at_5`` is the report's image word accuracy.

    Vocabulary dimensions are never function words, so a hit is a content word. ``examples``: the
    first records' ids with their 5 strongest words and the hits among them.
    """
    vectors = _image_vectors(bundle, records, vectors, batch_size)
    out: dict = {"images": len(vectors)}
    for k in ks:
        hits = [bool(h) for _, _, h in _top_word_hits(bundle, records, vectors, k)]
        out[f"accuracy_at_{k}"] = float(100.0 * np.mean(hits)) if hits else 0.0
    out["examples"] = [(rec.id, rec.captions[0] if rec.captions else "", top, hits)
                       for rec, top, hits in list(_top_word_hits(bundle, records[:examples], vectors[:examples], 5))]
    return out


# ---- is a written word true of the picture? ------------------------------------------------------
class WordTruth:
    """The words that are true of a picture, for judging the words the image side writes:

    * the words of its captions and keywords (``record_words``: singular and plural count as one);
    * their WordNet synonyms and hypernyms, all noun senses (a bulldog is a dog, an animal);
    * the colour words its own pixels show (``models.colours.pixel_colours``, HSV rules independent of
      the tower's colour extractor).

    Without WordNet's files (Debian's ``wordnet-base``) the second part is empty.
    """

    def __init__(self, wordnet_dir: str | None = None):
        from models.data.wordnet import WORDNET_DIR, Lexicon

        try:
            self.lexicon: Lexicon | None = Lexicon(wordnet_dir or WORDNET_DIR)
        except OSError:
            self.lexicon = None
        self._related: dict[str, frozenset[str]] = {}
        self._colours: dict[str, frozenset[str]] = {}

    def related(self, word: str) -> frozenset[str]:
        """``word``, its noun senses' synonyms and all their hypernyms (the last word of each lemma)."""
        if word in self._related:
            return self._related[word]
        out = {word}
        lexicon = self.lexicon
        if lexicon is not None:
            todo = [lexicon.synset(s) for s in lexicon.senses(word) if s.pos == "n"]
            seen: set[int] = set()
            while todo:
                synset = todo.pop()
                if synset.offset in seen:
                    continue
                seen.add(synset.offset)
                out |= {lemma.rsplit("_", 1)[-1].lower() for lemma in synset.lemmas}
                todo += lexicon.targets(synset, ("@", "@i"))
        self._related[word] = frozenset(out)
        return self._related[word]

    def colours(self, image_path: str) -> frozenset[str]:
        """Colour words of the picture's own pixels (with "grey" beside "gray"); cached by path."""
        if image_path not in self._colours:
            from models.colours import pixel_colours
            from models.preprocess import ImageError, load_image

            try:
                names = pixel_colours(load_image(image_path))
            except ImageError:
                names = set()
            self._colours[image_path] = frozenset(names | ({"grey"} if "gray" in names else set()))
        return self._colours[image_path]

    def of(self, record, known: set[str]) -> set[str]:
        """Every word true of ``record``'s picture, by the three rules above."""
        words = record_words(record, known)
        return {r for w in words for r in self.related(w)} | set(self.colours(record.image))


def top_word_precision(model, records, vectors: Sequence[SparseVector], k: int = 5, truth: WordTruth | None = None,
                       worst: int = 15, min_written: int = 3) -> dict:  # fmt: skip
    """Of the words an image writes among its ``k`` strongest, the share that are true of the picture
    (``WordTruth``), pooled over all (image, word) pairs; the same for colour words alone; and the
    words most often written untrue (``worst``, among words written at least ``min_written`` times):
    ``(word, times written, times true)``."""
    from models.colours import COLOURS
    from models.vocab import singular

    truth = truth or WordTruth()
    known = set(model.words)
    colour_words = set(COLOURS) | {"grey"}
    written: Counter[str] = Counter()
    true: Counter[str] = Counter()
    for rec, vec in zip(records, vectors, strict=True):
        allowed = truth.of(rec, known)
        for j in vec.ids[:k]:
            word = model.words[int(j)]
            written[word] += 1
            true[word] += word in allowed or (singular(word, known) or word) in allowed
    total, hits = sum(written.values()), sum(true.values())
    colour_total = sum(written[w] for w in colour_words)
    failing = sorted(((w, n, true[w]) for w, n in written.items() if n >= min_written and true[w] < n),
                     key=lambda t: (-(t[1] - t[2]), t[0]))
    return {"precision": 100.0 * hits / total if total else 0.0, "written": total,
            "colour_precision": 100.0 * sum(true[w] for w in colour_words) / colour_total if colour_total else None,
            "colour_written": colour_total, "worst": failing[:worst]}
