from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

PAIRS = [
    ("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "star"),
    ("purple", "circle"), ("orange", "square"), ("black", "triangle"), ("pink", "star"),
]


def draw_shape(color: str, shape: str, size: int = 96) -> Image.Image:
    """Large centred shapes in PIL's named colours. Kept apart from ``lexvla.testing.draw_shape``:
    the two 8-image training checks (tiny-random overfit, lexvla-mini word loss) are tuned to these
    pictures and fail on the shared helper's at any of its sizes."""
    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    box = (size // 6, size // 6, size - size // 6, size - size // 6)
    if shape == "circle":
        d.ellipse(box, fill=color)
    elif shape == "square":
        d.rectangle(box, fill=color)
    elif shape == "triangle":
        d.polygon([(size // 2, box[1]), (box[2], box[3]), (box[0], box[3])], fill=color)
    else:
        c = size // 2
        d.polygon([(c, 8), (c + 10, c - 8), (size - 8, c), (c + 10, c + 8), (c, size - 8), (c - 10, c + 8), (8, c), (c - 10, c - 8)], fill=color)
    return img


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory) -> Path:
    """Eight distinct drawings with distinct captions, all in the train and the test split."""
    root = tmp_path_factory.mktemp("pairs")
    lines = []
    for i, (color, shape) in enumerate(PAIRS):
        draw_shape(color, shape).save(root / f"{i}.png")
        for split in ("train", "test"):
            lines.append({"id": f"{i}", "image": f"{i}.png", "captions": [f"a {color} {shape}"], "split": split})
    path = root / "manifest.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path
