"""The inference-free query path: a table of the text tower's own per-word outputs, and no text session."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from models.bundle import Bundle, BundleError
from models.data.wordnet import WORDNET_DIR, single_words
from models.query_table import QUERY_TABLE_FILE, QueryTable, build_query_table, split_words
from models.sparse import sparsify

WORDS = ["red", "blue", "dog", "dogs", "cat", "circle", "star", "apple", "tree", "car", "house"]
SPLIT = ["teapot", "giraffe"]  # "tea ##pot", "gi ##raf ##fe": no vocabulary word, a row of their own


@pytest.fixture(scope="module")
def expanded_dir(tmp_path_factory):
    """A lexvla-mini bundle whose text tower expands (gate open) and weighs its typed words unevenly
    (random importance), with a table of ``WORDS`` and ``SPLIT``. Its floor (0.3) is the card's."""
    from models.export import export_bundle
    from models.model import LexVLA
    from models.registry import load_card

    model = LexVLA(load_card("lexvla-mini"))
    with torch.no_grad():
        model.text.gate.fill_(1.0)
        weight = model.text.exact.importance.weight
        weight.copy_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)) * 0.1)
    out = tmp_path_factory.mktemp("qt") / "expanded"
    export_bundle(model, out)
    build_query_table(out, words=WORDS, extra_words=[*SPLIT, "red", "dog-house", "x"])
    return out


def _close(a, b) -> None:
    """Two sparse vectors hold the same words with the same weights (ONNX batches round differently)."""
    assert set(a.ids.tolist()) == set(b.ids.tolist())
    np.testing.assert_allclose(sorted(a.weights), sorted(b.weights), rtol=1e-5, atol=1e-6)


def test_a_one_word_query_gets_the_text_towers_own_vector(expanded_dir):
    encoder, table = Bundle(expanded_dir, device="cpu"), Bundle(expanded_dir, device="cpu", query_mode="table")
    meta = table.query_table.meta
    assert meta["word_rows"] == len(WORDS) and meta["extra_rows"] == len(SPLIT)  # "red" is a word; "dog-house" two
    assert meta["exact_floor"] == 0.3 and meta["typed"] and meta["row_k"] == table.config.text_top_k
    queries = [*WORDS, *SPLIT, "Dogs", "  red  "]  # lower-cased and stripped as the tower reads them
    for query in queries:
        (want,), (got,) = encoder.encode_texts([query]), table.encode_texts([query])
        _close(got, want)
    dog = table.encode_texts(["dog"])[0].words(table.words)
    assert len(dog) > 5 and "dog" in dog  # a row is the word and its expansion, not the word alone
    assert encoder.version == table.version and table.text_encoder_id.startswith(f"{table.version}+table-")
    assert table.text_encoder_id != encoder.text_encoder_id


def test_a_rebuilt_table_gets_another_cache_identity(expanded_dir, tmp_path):
    """Caches of encoded queries and of results key on ``text_encoder_id``: a table rebuilt with other
    rows or another combine must not answer from the old table's entries."""
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(expanded_dir, copy)
    before = Bundle(copy, device="cpu", query_mode="table")
    build_query_table(copy, words=WORDS, extra_words=[*SPLIT, "red", "dog-house", "x"], combine="sum")
    after = Bundle(copy, device="cpu", query_mode="table")
    assert after.version == before.version and after.text_encoder_id != before.text_encoder_id
    assert Bundle(copy, device="cpu", query_mode="table").text_encoder_id == after.text_encoder_id  # stable per table


def test_words_are_typed_exactly_as_the_text_tower_types_them(expanded_dir):
    encoder, table = Bundle(expanded_dir, device="cpu"), Bundle(expanded_dir, device="cpu", query_mode="table")
    captions = ["Two DOGS chase a red cat", "a penguin, a teapot and 3 giraffes", "red red red", "dog-house",
                "the cars of the houses", "a circle and a star."]  # fmt: skip
    _, want = encoder.encode_texts_typed(captions)
    _, got = table.encode_texts_typed(captions)
    np.testing.assert_array_equal(got, want > 0)
    long = " ".join(["tree"] * 40 + ["apple"])  # past the 32-token budget: "apple" is not read by either
    with pytest.warns(UserWarning, match="truncated"):
        _, want = encoder.encode_texts_typed([long])
    with pytest.warns(UserWarning, match="truncated"):
        _, got = table.encode_texts_typed([long])
    np.testing.assert_array_equal(got, want > 0)


def test_rows_combine_by_max_then_the_floor_and_top_k_apply(expanded_dir):
    bundle = Bundle(expanded_dir, device="cpu", query_mode="table")
    table, vocab = bundle.query_table, bundle.vocab
    query, words = "a red dog and a blue car", ["red", "dog", "blue", "car"]
    rows = [table.row(vocab.index(w)) for w in words]
    for combine, fold in (("max", np.maximum), ("sum", np.add)):
        for floor in (0.3, 0.9):  # the card's, and one that holds every typed word near the top
            bundle.query_table = dataclasses.replace(table, meta=table.meta | {"combine": combine, "exact_floor": floor})
            expected = np.zeros(len(vocab), np.float32)
            for ids, vals in rows:
                expected[ids] = fold(expected[ids], vals)
            typed = np.zeros((1, len(vocab)), bool)
            typed[0, [vocab.index(w) for w in words]] = True
            expected[typed[0]] = np.maximum(expected[typed[0]], np.float32(floor) * expected.max())
            dense, mask = bundle.encode_texts_typed([query])
            np.testing.assert_allclose(dense[0], expected, rtol=1e-6)
            np.testing.assert_array_equal(mask, typed)
            vec = bundle.encode_texts([query])[0]
            _close(vec, sparsify(expected[None], bundle.config.text_top_k, keep=typed)[0])
            weights = vec.words(bundle.words)
            assert all(weights[w] >= floor * max(weights.values()) * (1 - 1e-5) for w in words)


def test_table_mode_makes_no_text_session(expanded_dir, monkeypatch):
    import models.bundle

    made = []
    real = models.bundle.create_session
    monkeypatch.setattr(models.bundle, "create_session", lambda path, *a, **kw: made.append(path.name) or real(path, *a, **kw))
    bundle = Bundle(expanded_dir, device="cpu", query_mode="table").warm()
    bundle.encode_texts(["a red dog"] * 3)
    bundle.encode_images_dense([Image.new("RGB", (40, 40), "white")])
    assert bundle.providers["text"] == ["query_table"]
    assert made == ["image_encoder.onnx"] and bundle._text_session is None
    with pytest.raises(BundleError, match="no text session"):
        bundle.text_session  # noqa: B018
    Bundle(expanded_dir, device="cpu").warm()  # the encoder mode warms both towers
    assert made == ["image_encoder.onnx", "image_encoder.onnx", "text_encoder.onnx"]


def test_words_without_a_row_get_no_weight_and_are_listed(expanded_dir):
    table, encoder = Bundle(expanded_dir, device="cpu", query_mode="table"), Bundle(expanded_dir, device="cpu")
    text = "A teapot and an axolotl near 42 Trees, a house and the axolotl"
    # teapot: a split word with a row; trees: a typed word without a row (the floor holds it up); 42: no word
    assert table.unknown_words(text) == ["axolotl"]
    assert encoder.unknown_words(text) == []  # the text tower reads every token
    assert len(table.encode_texts(["axolotl"])[0]) == 0  # rank last, as an empty query does
    weights = table.encode_texts([text])[0].words(table.words)
    assert {"house", "trees", "tree"} <= set(weights) and not any(w.startswith("ax") for w in weights)


def test_a_table_of_a_tower_without_floor_and_with_a_long_prompt(bundle_dir, tmp_path):
    """tiny-random: the paper's in-context prompt around the caption, no floor (no typed output)."""
    copy = tmp_path / "tiny"
    shutil.copytree(bundle_dir, copy)
    with pytest.raises(BundleError, match="lexvla query-table"):
        Bundle(copy, query_mode="table")
    build_query_table(copy, words=["red", "dog", "horse"])
    encoder, table = Bundle(copy), Bundle(copy, query_mode="table")
    assert table.query_table.meta["exact_floor"] == 0.0 and not table.query_table.typed
    for word in ("red", "dog", "horse"):
        dense, typed = table.encode_texts_typed([word])
        assert typed is None and encoder.encode_texts_typed([word])[1] is None
        _close(table.encode_texts([word])[0], encoder.encode_texts([word])[0])
    assert table.unknown_words("a red cat") == ["cat"]  # no row, and no floor to hold a typed word up


def test_a_table_is_refused_for_another_bundle_and_with_int8(expanded_dir, bundle_dir, tmp_path):
    other = tmp_path / "tiny"
    shutil.copytree(bundle_dir, other)
    shutil.copy(expanded_dir / QUERY_TABLE_FILE, other / QUERY_TABLE_FILE)
    with pytest.raises(BundleError, match="another bundle"):
        Bundle(other, query_mode="table")
    copy = tmp_path / "mini"
    shutil.copytree(expanded_dir, copy)
    with open(copy / "text_encoder.onnx", "ab") as fh:  # a re-exported text tower, bundle.json unchanged
        fh.write(b"\0")
    with pytest.raises(BundleError, match="another bundle"):
        Bundle(copy, verify=False, query_mode="table")
    with pytest.raises(BundleError, match="fp32"):
        Bundle(expanded_dir, text_precision="int8", query_mode="table")
    with pytest.raises(BundleError, match="query_mode"):
        Bundle(expanded_dir, query_mode="onnx")
    (copy / QUERY_TABLE_FILE).write_bytes(b"not a table")
    with pytest.raises(BundleError, match="not a query table"):
        Bundle(copy, verify=False, query_mode="table")


def test_split_words_and_the_cli(expanded_dir, tmp_path, monkeypatch):
    import models.query_table
    from lexvla.cli import main

    bundle = Bundle(expanded_dir, device="cpu")
    captions = ["a teapot on a table", "the Teapot and the giraffe", "a giraffe, a giraffe", "3 dogs"]
    assert split_words(bundle, captions) == ["giraffe", "teapot"]  # most frequent first (giraffe 3, teapot 2)
    assert split_words(bundle, captions, min_count=3) == ["giraffe"]
    copy = tmp_path / "mini"
    shutil.copytree(expanded_dir, copy)
    (copy / QUERY_TABLE_FILE).unlink()
    (tmp_path / "captions.txt").write_text("\n".join(captions))
    real = models.query_table.build_query_table  # every vocabulary word takes a minute: the test's words only
    monkeypatch.setattr(models.query_table, "build_query_table", lambda *a, **kw: real(*a, words=WORDS, **kw))
    assert main(["query-table", "--bundle", str(copy), "--captions", str(tmp_path / "captions.txt"), "--combine", "sum"]) == 0
    table = QueryTable.load(copy / QUERY_TABLE_FILE)
    assert table.combine == "sum" and table.meta["extra_rows"] == 2 and table.meta["word_rows"] == len(WORDS)
    assert Bundle(copy, query_mode="table").unknown_words("teapot giraffe axolotl") == ["axolotl"]


@pytest.mark.skipif(not (WORDNET_DIR / "index.noun").is_file(), reason="Debian wordnet-base not installed")
def test_wordnet_single_words_and_the_cli(expanded_dir, tmp_path, monkeypatch):
    """``--wordnet`` gives a row to WordNet's one-word lemmas that the tokenizer splits."""
    import models.data.wordnet
    import models.query_table
    from lexvla.cli import main

    words = single_words()
    assert words == sorted(words) and all(w.isalpha() for w in words)
    assert {"antelope", "haircut", "firecracker"} <= set(words) and "north_america" not in words and len(words) > 50_000
    bundle = Bundle(expanded_dir, device="cpu")
    some = ["antelope", "firecracker", "haircut", "humpback", "red", "circle"]
    split = split_words(bundle, some)
    assert "red" not in split and "firecracker" in split  # whole-word tokens have their vocabulary row already
    copy = tmp_path / "mini"
    shutil.copytree(expanded_dir, copy)
    (copy / QUERY_TABLE_FILE).unlink()
    # every WordNet word takes a minute and a half: the test's few, through the same path
    monkeypatch.setattr(models.data.wordnet, "single_words", lambda: some)
    real = models.query_table.build_query_table
    monkeypatch.setattr(models.query_table, "build_query_table", lambda *a, **kw: real(*a, words=WORDS, **kw))
    assert main(["query-table", "--bundle", str(copy), "--wordnet"]) == 0
    table = QueryTable.load(copy / QUERY_TABLE_FILE)
    assert table.meta["extra_rows"] == len(split)
    assert Bundle(copy, query_mode="table").unknown_words("a firecracker and an axolotl") == ["axolotl"]


def test_the_pipeline_table_has_caption_and_wordnet_words(expanded_dir, tmp_path, monkeypatch):
    """``ensure_query_table`` gives rows to the training captions' split words and WordNet's; it
    builds without WordNet's files (caption words only) rather than failing, rebuilds a table that
    lacks rows it would give, and keeps one that has them."""
    import models.data.wordnet
    import models.query_table
    from lexvla.pipeline import ensure_query_table
    from models.data.manifest import ManifestRecord, write_manifest

    manifest = tmp_path / "data" / "manifest.jsonl"
    write_manifest(manifest, [ManifestRecord("a", "a.png", ["a teapot on a table"], "train", {}),
                              ManifestRecord("b", "b.png", ["a giraffe"], "test", {})])  # fmt: skip
    real = models.query_table.build_query_table
    monkeypatch.setattr(models.query_table, "build_query_table", lambda *a, **kw: real(*a, words=WORDS, **kw))

    def missing():
        raise FileNotFoundError("/usr/share/wordnet/index.noun")

    copy = tmp_path / "mini"
    shutil.copytree(expanded_dir, copy)
    (copy / QUERY_TABLE_FILE).unlink()
    monkeypatch.setattr(models.data.wordnet, "single_words", missing)
    table = ensure_query_table(copy, [manifest])
    # the training caption's "teapot" has a row; the test split's "giraffe" has none
    assert Bundle(copy, query_mode="table").unknown_words("teapot firecracker giraffe") == ["firecracker", "giraffe"]
    built = table.stat().st_mtime_ns
    monkeypatch.setattr(models.data.wordnet, "single_words", lambda: ["firecracker", "teapot", "red"])
    ensure_query_table(copy, [manifest])  # WordNet's "firecracker" is missing: built again
    assert Bundle(copy, query_mode="table").unknown_words("teapot firecracker giraffe") == ["giraffe"]
    assert table.stat().st_mtime_ns != built
    built = table.stat().st_mtime_ns
    ensure_query_table(copy, [manifest])  # current: kept
    assert table.stat().st_mtime_ns == built
