from __future__ import annotations

import json
from pathlib import Path

import pytest

from lexvla.testing import draw_centred_shape

PAIRS = [
    ("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "star"),
    ("purple", "circle"), ("orange", "square"), ("black", "triangle"), ("pink", "star"),
]


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory) -> Path:
    """Eight distinct drawings with distinct captions, all in the train and the test split."""
    root = tmp_path_factory.mktemp("pairs")
    lines = []
    for i, (color, shape) in enumerate(PAIRS):
        draw_centred_shape(shape, color).save(root / f"{i}.png")
        for split in ("train", "test"):
            lines.append({"id": f"{i}", "image": f"{i}.png", "captions": [f"a {color} {shape}"], "split": split})
    path = root / "manifest.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path
