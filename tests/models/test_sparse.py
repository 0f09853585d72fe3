import numpy as np
import pytest

from models.sparse import SparseVector, quantize, quantize_weights, sparsify


def test_sparsify_keeps_top_k_positive_and_normalises():
    dense = np.array([[0.0, 3.0, 1.0, 0.5, 2.0], [0.0, 0.0, 0.0, 0.0, 0.0]], np.float32)
    first, empty = sparsify(dense, top_k=3)
    assert first.ids.tolist() == [1, 4, 2]
    np.testing.assert_allclose(first.weights, np.array([3, 2, 1]) / np.sqrt(14), rtol=1e-6)
    assert len(empty) == 0


def test_sparsify_drops_zeros_even_inside_top_k():
    (vec,) = sparsify(np.array([[0.0, 1.0, 0.0, 0.0]]), top_k=3, normalize=False)
    assert vec.ids.tolist() == [1] and vec.weights.tolist() == [1.0]


def test_sparsify_keeps_masked_words_beside_the_top_k():
    dense = np.array([[0.0, 3.0, 1.0, 0.5, 2.0], [0.0, 3.0, 1.0, 0.5, 2.0], [0.0, 3.0, 1.0, 0.5, 2.0]], np.float32)
    keep = np.array([[0, 0, 0, 1, 0], [1, 0, 0, 0, 0], [0, 0, 1, 1, 0]], np.float32)  # word 0 of row 2 has no weight
    typed, nothing, both = sparsify(dense, top_k=2, keep=keep)
    assert both.ids.tolist() == [1, 4, 2, 3]
    assert typed.ids.tolist() == [1, 4, 3]  # still sorted by weight
    np.testing.assert_allclose(typed.weights, np.array([3, 2, 0.5]) / np.sqrt(13.25), rtol=1e-6)
    assert nothing.ids.tolist() == [1, 4]


def test_sparsify_rejects_wrong_rank():
    with pytest.raises(ValueError, match="batch, vocab"):
        sparsify(np.zeros(4), top_k=2)


def test_quantize_rounds_and_drops_zero_impacts():
    vec = SparseVector(np.array([7, 3, 9]), np.array([0.5, 0.0104, 0.0004], np.float32))
    assert quantize(vec, 100) == {7: 50, 3: 1}
    assert quantize_weights({"horse": 0.25, "the": 0.001}, 1000) == {"horse": 250, "the": 1}


def test_sparse_vector_words_and_round_trip():
    vec = SparseVector.from_dict({2: 0.1, 0: 0.7, 1: 0.0})
    assert vec.ids.tolist() == [0, 2]
    assert list(vec.words(["horse", "dog", "man"])) == ["horse", "man"]


def test_a_query_floor_cuts_weak_expansion_words_and_keeps_typed_ones(bundle_dir):
    from models.bundle import Bundle

    bundle = Bundle(bundle_dir, device="cpu")
    dense = np.array([[0.0, 1.0, 0.5, 0.05, 0.02, 0.0]], np.float32)
    dense = np.pad(dense, ((0, 0), (0, len(bundle.words) - dense.shape[1])))
    typed = np.zeros_like(dense)
    typed[0, 4] = 1  # a typed word weaker than the floor stays
    cut = bundle.text_vectors(dense, typed, top_k=32, min_share=0.1)[0]
    assert cut.ids.tolist() == [1, 2, 4]
    assert bundle.text_vectors(dense, typed, top_k=32)[0].ids.tolist() == [1, 2, 3, 4]  # no floor: all kept
