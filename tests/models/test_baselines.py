"""Zero-training baselines and interpretability metrics on a few real images (no mocks)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from models import baselines
from models.data.manifest import read_manifest
from models.vocab import singular

CLIPART = Path("/usr/share/openclipart/png")
IMAGES = {
    "dog": CLIPART / "animals/mammals/dog_04_drawn_with_strai_01.png",
    "apple": CLIPART / "food/apple_bitten_dan_gerhard_01.png",
    "bicycle": CLIPART / "transportation/bicycle_philippe_colin_01.png",
    "airplane": CLIPART / "transportation/airplane.png",
    "hopper": Path(matplotlib.get_data_path()) / "sample_data/grace_hopper.jpg",
}
CAPTIONS = {
    "dog": ["a drawing of a dog"], "apple": ["a bitten red apple"], "bicycle": ["a bicycle"],
    "airplane": ["an airplane in the sky"], "hopper": ["a woman in a military uniform"],
}
METRIC_KEYS = {f"{d}_R@{k}" for d in ("t2i", "i2t") for k in (1, 5, 10)}

pytestmark = pytest.mark.skipif(not all(p.is_file() for p in IMAGES.values()), reason="sample images missing")


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("baseline_images")
    for name, src in IMAGES.items():
        shutil.copy(src, root / f"{name}{src.suffix}")
    return root


def make_records(root: Path, captions: dict[str, list[str]], meta: dict[str, dict] | None = None):
    """A manifest over the sample images with the given captions (images without captions allowed)."""
    lines = [{"id": name, "image": f"{name}{src.suffix}", "captions": captions.get(name, []), "split": "test",
              "meta": (meta or {}).get(name, {})} for name, src in IMAGES.items()]
    path = root / f"manifest-{abs(hash(json.dumps(lines)))}.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return read_manifest(path, "test")


@pytest.fixture(scope="module")
def records(image_dir):
    return make_records(image_dir, CAPTIONS)


@pytest.fixture(scope="module")
def classes(records):
    return baselines.imagenet_top_classes([r.image for r in records])


@pytest.fixture(scope="module")
def encoder():
    return baselines.SentenceEncoder()


def test_imagenet_top_classes_sees_the_uniform(classes):
    from models.priors.imagenet import class_names

    ids, probs = classes
    assert ids.shape == probs.shape == (len(IMAGES), 5)
    assert np.all(np.diff(probs, axis=1) <= 0) and np.all(probs > 0) and np.all(probs.sum(1) <= 1 + 1e-5)
    assert class_names()[ids[list(IMAGES).index("hopper"), 0]] == "military uniform"


def test_lexical_ranks_the_uniform_first(image_dir, records):
    # Only the photo has a caption, so t2i R@1 is 100 exactly when it ranks first (strictly).
    only = make_records(image_dir, {"hopper": ["military uniform"]})
    out = baselines.imagenet_labels_lexical(only)  # end to end, CNN included
    assert out["images"] == len(IMAGES) and out["captions"] == 1
    assert out["t2i_R@1"] == 100.0


def test_lexical_ties_do_not_help(image_dir, classes):
    # No image has the words: all 5 scores are 0, a tie that counts against the query (rank 4).
    out = baselines.imagenet_labels_lexical(make_records(image_dir, {"hopper": ["a purple xylophone"]}), classes=classes)
    assert out["t2i_R@1"] == 0.0 and out["t2i_R@5"] == 100.0


def test_lexical_metrics(records, classes):
    out = baselines.imagenet_labels_lexical(records, classes=classes)
    assert set(out) == METRIC_KEYS | {"images", "captions"}
    assert out["images"] == len(IMAGES) and out["captions"] == sum(len(c) for c in CAPTIONS.values())
    assert all(0.0 <= out[k] <= 100.0 for k in METRIC_KEYS)


def test_dense_metrics_and_uniform_first(image_dir, records, classes, encoder):
    out = baselines.imagenet_labels_dense(records, encoder=encoder, classes=classes)
    assert set(out) == METRIC_KEYS | {"images", "captions"}
    assert all(0.0 <= out[k] <= 100.0 for k in METRIC_KEYS)
    assert out["t2i_R@10"] == 100.0  # only 5 images
    only = make_records(image_dir, {"hopper": ["a woman in military uniform"]})
    assert baselines.imagenet_labels_dense(only, encoder=encoder, classes=classes)["t2i_R@1"] == 100.0


def test_sentence_encoder_is_unit_norm_and_semantic(encoder):
    emb = encoder.encode(["a dog", "a puppy", "a spreadsheet of quarterly taxes"])
    assert emb.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]


def test_random_baseline(tmp_path):
    lines = [{"id": str(i), "image": f"{i}.png", "captions": [f"caption {i}"], "split": "test"} for i in range(400)]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    recs = read_manifest(tmp_path / "m.jsonl")  # the images are never opened
    out = baselines.random_baseline(recs, seed=3)
    assert out == baselines.random_baseline(recs, seed=3)
    assert out["analytic"] == pytest.approx({f"{d}_R@{k}": 100.0 * k / 400 for d in ("t2i", "i2t") for k in (1, 5, 10)})
    assert set(out) == METRIC_KEYS | {"images", "captions", "analytic"}
    for k in (1, 5, 10):
        assert abs(out[f"t2i_R@{k}"] - 100.0 * k / 400) < 4.0


def test_random_baseline_analytic_with_several_captions(tmp_path):
    lines = [{"id": str(i), "image": f"{i}.png", "captions": ["x", "y"], "split": "test"} for i in range(10)]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    analytic = baselines.random_baseline(read_manifest(tmp_path / "m.jsonl"))["analytic"]
    assert analytic["t2i_R@1"] == pytest.approx(10.0) and analytic["t2i_R@10"] == pytest.approx(100.0)
    assert analytic["i2t_R@1"] == pytest.approx(100.0 * 2 / 20)  # best of 2 captions among 20
    assert analytic["i2t_R@10"] == pytest.approx(100.0 * (1 - (10 * 9) / (20 * 19)))


# ---- interpretability metrics on an exported (untrained) bundle -----------------------------------
@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from models.export import export_bundle
    from models.train import load_trained

    return export_bundle(load_trained("lexvla-mini", None), tmp_path_factory.mktemp("bundle") / "lexvla-mini")


def test_word_retention(bundle):
    from models.evaluate import word_retention

    out = word_retention(bundle, ["a red apple"])
    assert out == {"retention": 100.0, "captions": 1, "words": 2, "dropped_examples": []}  # "a" is a stop word
    assert word_retention(bundle, ["the of and"])["words"] == 0


def test_word_retention_counts_top_k_drops(bundle):
    from models.bundle import Bundle
    from models.evaluate import word_retention
    from models.sparse import sparsify

    captions = ["a red apple", "a red apple"]
    top_1 = sparsify(bundle.encode_texts_dense(captions), 1)  # only each caption's strongest word
    out = word_retention(bundle, captions, vectors=top_1)
    assert out["words"] == 4 and out["retention"] == 50.0
    assert len(out["dropped_examples"]) == 2
    caption, dropped = out["dropped_examples"][0]
    assert caption == "a red apple" and len(dropped) == 1 and dropped[0] in {"red", "apple"}

    narrow = Bundle(bundle.path)
    narrow.config.text_top_k = 1
    assert narrow.encode_texts_typed(captions)[1] is not None  # the default card's typed-word floor ...
    assert word_retention(narrow, captions)["retention"] == 100.0  # ... keeps typed words beside the top-k


def test_image_word_precision(bundle, image_dir, records):
    from models.evaluate import image_word_precision

    out = image_word_precision(bundle, records)
    assert set(out) == {"precision_at_10", "images", "examples"}
    assert 0.0 <= out["precision_at_10"] <= 100.0 and out["images"] == len(IMAGES)
    rec_id, top, hits = out["examples"][0]
    assert rec_id == "dog" and len(top) == 10 and set(hits) <= set(top)

    # A caption with the plural of one of the dog drawing's top words scores that word as a hit.
    known = set(bundle.words)
    word = next(w for w in top if singular(w + "s", known) == w)
    plural = make_records(image_dir, {"dog": [f"two {word}s"]})
    got = image_word_precision(bundle, plural[:1])
    assert got["examples"][0][2] == [word] and got["precision_at_10"] == pytest.approx(100.0 / len(top))
    unrelated = make_records(image_dir, {"dog": ["a purple xylophone"]})
    assert image_word_precision(bundle, unrelated[:1])["precision_at_10"] == 0.0
    keywords = make_records(image_dir, {"dog": ["a purple xylophone"]}, meta={"dog": {"keywords": [word]}})
    assert image_word_precision(bundle, keywords[:1])["examples"][0][2] == [word]


def test_image_word_accuracy_counts_images_whose_top_words_hold_a_caption_word():
    import numpy as np

    from models.data.manifest import ManifestRecord
    from models.evaluate import image_word_accuracy
    from models.sparse import SparseVector

    class Words:  # what the metric reads of a bundle: its dimension -> word list
        words = ["icon", "dog", "cat", "tree", "car", "house", "flag"]

    vec = lambda *ids: SparseVector(np.array(ids, dtype=np.int64), np.ones(len(ids), dtype=np.float32))  # noqa: E731
    vectors = [vec(0, 4, 5, 6, 3, 1), vec(2, 0), vec(4, 5)]  # sorted by weight: "dog" is image 0's 6th word
    records = [ManifestRecord(id=str(i), image=f"{i}.png", captions=[c]) for i, c in
               enumerate(["two dogs", "a cat", "a red apple"])]  # fmt: skip
    got = image_word_accuracy(Words(), records, ks=(5, 10), vectors=vectors)
    # image 0: dogs (plural) is its 6th word, outside the top 5; image 1: cat first; image 2: nothing true
    assert got["accuracy_at_5"] == pytest.approx(100 / 3) and got["accuracy_at_10"] == pytest.approx(200 / 3)
    assert got["examples"][1] == ("1", "a cat", ["cat", "icon"], ["cat"])


def test_words_beyond_captions_counts_only_what_the_captions_do_not_cover():
    import numpy as np

    from models.data.manifest import ManifestRecord
    from models.evaluate import words_beyond_captions
    from models.sparse import SparseVector

    words = ["icon", "edit", "dog", "cat"]
    vec = lambda *ids: SparseVector(np.array(ids, dtype=np.int64), np.ones(len(ids), dtype=np.float32))  # noqa: E731
    vectors = [vec(0, 1), vec(0, 1), vec(0, 1, 2), vec(0, 3)]  # icon in all 4, edit in 3, dog and cat in 1 each
    records = [ManifestRecord(id=str(i), image=f"{i}.png", captions=[c]) for i, c in
               enumerate(["an icon", "icons of a dog", "edit icon", "icon, cat"])]  # fmt: skip
    got = words_beyond_captions(vectors, records, words)
    # icon: on 4 of 4 images, each caption holds it (icons counts as icon): not overuse. edit: on 3
    # images, one caption holds it. dog: on image 2, whose caption lacks it (image 1's holds it).
    assert got == [("edit", 0.75, 0.25, 0.5), ("dog", 0.25, 0.25, 0.25)]


def test_expansion_support_counts_words_people_wrote_beside_the_typed_ones(bundle):
    import numpy as np

    from models.data.manifest import ManifestRecord
    from models.evaluate import cooccurring_words, expansion_support
    from models.sparse import SparseVector

    annotations = ["apple, fruit, food", "red apple, fruit", "apple, holiday", "red shoes"]
    records = [ManifestRecord(id=str(i), image=f"{i}.png", captions=[c]) for i, c in enumerate(annotations)]
    known = set(bundle.words)
    together = cooccurring_words(records, known)
    assert together["apple"]["fruit"] == 2 and together["apple"]["holiday"] == 1 and together["red"]["shoe"] == 1  # plurals count as their singular

    def vec(**weights):
        ids = [bundle.vocab.index(w) for w in weights]
        return SparseVector(np.array(ids, dtype=np.int64), np.array(list(weights.values()), dtype=np.float32))

    captions = ["a red apple", "an apple", "a red apple"]
    vectors = [vec(apple=0.6, red=0.5, fruit=0.3, holiday=0.2, shoes=0.1),  # fruit: twice beside apple
               vec(apple=0.9, apples=0.3),  # the plural of a typed word is not an added word
               vec(apple=0.7, red=0.7)]  # adds nothing: not counted
    out = expansion_support(bundle, captions, vectors, together)
    assert out["support_at_10"] == pytest.approx(100.0 / 3) and out["queries"] == 1
    assert out["added"] == pytest.approx(1.0)
    assert out["examples"] == [("a red apple", ["fruit", "holiday", "shoes"], ["fruit"])]
    assert expansion_support(bundle, captions, vectors, together, min_records=1)["support_at_10"] == 100.0
