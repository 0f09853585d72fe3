"""The optional int8 text tower: made from the bundle's own text encoder, refused when missing or stale."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from models.bundle import TEXT_INT8_FILE, Bundle, BundleError, quantize_text_encoder

CAPTIONS = ["a red circle", "two green squares on a table", "a small yellow star"]


def test_int8_text_tower_is_close_to_fp32_and_keyed_apart(bundle_dir, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    with pytest.raises(BundleError, match="quantize-text"):
        Bundle(copy, text_precision="int8")
    quantize_text_encoder(copy)
    fp32, int8 = Bundle(copy), Bundle(copy, text_precision="int8")
    assert fp32.version == int8.version  # the index does not care: it holds image vectors
    assert fp32.text_encoder_id != int8.text_encoder_id  # caches of encoded queries do
    import onnx

    ops = {n.op_type for n in onnx.load(str(copy / TEXT_INT8_FILE)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops  # really an int8 model ...
    a, b = fp32.encode_texts_dense(CAPTIONS), int8.encode_texts_dense(CAPTIONS)  # [3, V]
    assert a.shape == b.shape and (a > 0).any()
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() > 0.95, cos  # ... computing nearly the same vectors
    assert (copy / TEXT_INT8_FILE).stat().st_size < (copy / "text_encoder.onnx").stat().st_size / 2


def test_a_stale_int8_tower_is_refused(bundle_dir, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    quantize_text_encoder(copy)
    other = tmp_path / "other"
    shutil.copytree(bundle_dir, other)
    (other / TEXT_INT8_FILE).write_bytes((copy / TEXT_INT8_FILE).read_bytes())
    # the bundle's text encoder changes (a re-export); the int8 file was made from the old one
    with open(other / "text_encoder.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match="another text encoder"):
        Bundle(other, verify=False, text_precision="int8").text_session  # noqa: B018 -- loading it is the check
    with pytest.raises(BundleError, match="text_precision"):
        Bundle(copy, text_precision="fp16")
