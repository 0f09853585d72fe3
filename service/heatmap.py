"""Per-word heatmaps: where on an image a word fires, drawn over the image the user uploaded.

The image tower sees the picture letterboxed into a white square, so a patch-grid heatmap covers
the square; the part over the picture (the content box) is cropped out and stretched back onto
the original image.
"""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

HEAT_RGB = (255, 40, 0)
MAX_ALPHA = 0.65


def normalize(heat: np.ndarray) -> np.ndarray:
    """Scale one ``[gh, gw]`` map to ``[0, 1]`` by its own maximum (all-zero stays zero)."""
    heat = np.clip(np.asarray(heat, dtype=np.float32), 0, None)
    peak = float(heat.max()) if heat.size else 0.0
    return heat / peak if peak > 0 else heat


def overlay(image: Image.Image, heat: np.ndarray, content_box: tuple[int, int, int, int], square: int) -> Image.Image:
    """Draw the normalised ``heat`` ``[gh, gw]`` (on the letterboxed square) over ``image``.

    Parameters
    ----------
    image : the original RGB image.
    heat : patch-grid activation of one word.
    content_box : (left, top, right, bottom) of the image inside the ``square`` x ``square`` letterbox.
    square : side of the letterboxed square the model saw.
    """
    grid = Image.fromarray((normalize(heat) * 255).astype(np.uint8), mode="L")
    on_square = grid.resize((square, square), Image.Resampling.BILINEAR)  # [square, square]
    alpha = on_square.crop(content_box).resize(image.size, Image.Resampling.BILINEAR)
    alpha = alpha.point(lambda v: int(v * MAX_ALPHA))
    color = Image.new("RGB", image.size, HEAT_RGB)
    return Image.composite(color, image.convert("RGB"), alpha)


def to_png(image: Image.Image) -> bytes:
    """PNG bytes of ``image``."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def data_url(png: bytes) -> str:
    """``data:image/png;base64,...`` for embedding in JSON."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def fit(image: Image.Image, max_side: int) -> Image.Image:
    """A copy no larger than ``max_side`` on its longer side (aspect kept)."""
    copy = image.copy()
    copy.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return copy
