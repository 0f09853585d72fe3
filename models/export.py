"""ONNX export of both towers, the parity check, and writing a bundle (see ``models.bundle``)."""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.bundle import FILES, Bundle, BundleConfig, seal
from models.model import LexVLA

log = logging.getLogger(__name__)
OPSET = 17
PARITY_TOLERANCE = 1e-4
PARITY_TEXTS = ["a red car parked on the street", "two dogs", "The man is riding a white horse."]


class _ImageGraph(nn.Module):
    def __init__(self, model: LexVLA):
        super().__init__()
        self.tower = model.image

    def forward(self, pixel_values: torch.Tensor):
        return self.tower(pixel_values)  # lexical [B,V], patch_lexical [B,P,V]


class _TextGraph(nn.Module):
    def __init__(self, model: LexVLA):
        super().__init__()
        self.tower = model.text

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        if not self.tower.exact_floor:
            return self.tower(input_ids, attention_mask)  # lexical [B,V]
        # with a floor, the typed words [B,V] are kept beside the top-k (``sparsify(keep=...)``)
        return self.tower(input_ids, attention_mask), self.tower.typed_words(input_ids, attention_mask)


def merged_for_export(model: LexVLA) -> LexVLA:
    """Fold LoRA adapters into the LM weights, so the exported graph is a plain transformer."""
    merge_and_unload = getattr(model.text.lm, "merge_and_unload", None)  # a PEFT model's
    if merge_and_unload is not None:
        model.text.lm = merge_and_unload()
    return model.eval()


def export_onnx(model: LexVLA, out_dir: Path) -> None:
    model = merged_for_export(model)
    size = model.card.vision.image_size
    pixels = torch.randn(2, 3, size, size)
    ids, mask = model.text_preprocessor.batch(PARITY_TEXTS[:2])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        # The legacy exporter with dynamic axes: its graphs ran 2-6x faster under onnxruntime here.
        torch.onnx.export(
            _ImageGraph(model), (pixels,), str(out_dir / FILES["image_encoder"]),
            input_names=["pixel_values"], output_names=["lexical", "patch_lexical"],
            dynamic_axes={"pixel_values": {0: "batch"}, "lexical": {0: "batch"}, "patch_lexical": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
        text_outputs = ["lexical", "typed"] if model.text.exact_floor else ["lexical"]
        torch.onnx.export(
            _TextGraph(model), (torch.from_numpy(ids), torch.from_numpy(mask)), str(out_dir / FILES["text_encoder"]),
            input_names=["input_ids", "attention_mask"], output_names=text_outputs,
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
            | {name: {0: "batch"} for name in text_outputs},
            opset_version=OPSET, dynamo=False,
        )


def bundle_config(model: LexVLA, name: str, extra: dict | None = None) -> BundleConfig:
    card = model.card
    return BundleConfig(
        name=name, card=card.name,
        image_size=card.vision.image_size, image_mean=card.vision.mean, image_std=card.vision.std,
        patch_grid=model.patch_grid, image_top_k=card.lexical.image_top_k,
        text_prompt=card.text.prompt, text_max_caption_tokens=card.text.max_caption_tokens,
        text_lowercase=card.text.lowercase, text_top_k=card.lexical.text_top_k,
        quant_scale=card.lexical.quant_scale, vocab_size=len(model.vocab), extra=extra or {},
    )


def parity_inputs(model: LexVLA, seed: int = 0) -> dict[str, np.ndarray]:
    """PyTorch outputs on random pixels and fixed captions, computed *before* export.

    (After the legacy exporter has traced a transformers model, that PyTorch model's own outputs
    were seen to drift; the reference must come first.)
    """
    gen = torch.Generator().manual_seed(seed)
    size = model.card.vision.image_size
    pixels = torch.randn(3, 3, size, size, generator=gen)
    with torch.no_grad():
        vec, patches = model.image(pixels)
        text = model.encode_text_batch(PARITY_TEXTS)
    return {"pixels": pixels.numpy(), "image": vec.numpy(), "patches": patches.numpy(), "text": text.numpy()}


def parity(reference: dict[str, np.ndarray], bundle: Bundle) -> dict[str, float]:
    """Max abs difference between the PyTorch reference and onnxruntime."""
    vec, patches = bundle.encode_pixels(reference["pixels"], patches=True)
    text = bundle.encode_texts_dense(PARITY_TEXTS)
    return {
        "image": float(np.abs(vec - reference["image"]).max()),
        "patches": float(np.abs(patches - reference["patches"]).max()),
        "text": float(np.abs(text - reference["text"]).max()),
    }


def export_bundle(model: LexVLA, out_dir: str | Path, name: str | None = None, extra: dict | None = None,
                  check: bool = True) -> Bundle:
    """Export ``model`` to a sealed bundle at ``out_dir`` (replaced atomically) and check parity.

    Raises ``RuntimeError`` when onnxruntime and PyTorch differ by more than ``PARITY_TOLERANCE``.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model = merged_for_export(model)
        reference = parity_inputs(model) if check else None
        export_onnx(model, tmp)
        model.tokenizer.save(str(tmp / FILES["tokenizer"]))
        model.vocab.save(tmp / FILES["vocab"], model.card.vocab)
        seal(tmp, bundle_config(model, name or model.card.name, extra))
        if check:
            assert reference is not None  # computed above when checking
            diffs = parity(reference, Bundle(tmp, device="cpu"))
            log.info("export parity (max abs diff): %s", diffs)
            if max(diffs.values()) > PARITY_TOLERANCE:
                raise RuntimeError(f"ONNX parity check failed: {diffs} > {PARITY_TOLERANCE}")
            (tmp / "parity.json").write_text(json.dumps(diffs))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Bundle(out_dir)
