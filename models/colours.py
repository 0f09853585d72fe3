"""Colour words from the pixels: where an image's colour words come from.

Neither the frozen backbone nor the trained heads say colours (an ImageNet classifier is built to
ignore them, and training on "a purple triangle" taught the shape but not the colour), so the
image tower reads them from the pixels directly, in the exported graph like every other word:

1. the letterboxed picture, un-normalised and average-pooled to ``GRID`` x ``GRID`` cells, each
   cell converted to CIELAB and given the name of its nearest ``PROTOTYPES`` colour (the eleven
   basic colour terms of Berlin and Kay, several prototypes each);
2. the *background* is the name that covers more than half of the outer ring of cells (white for
   drawings on a white page and for the letterbox padding; the sky or a wall in a photo), and is
   not counted;
3. a colour's *share* is the fraction of the remaining (foreground) cells that carry its name;
   a colour is said when its share is above ``min_share``, with the strength
   ``sqrt((share - min_share) / (1 - min_share))``;
4. ``models.towers.ImageTower`` writes each said colour as that strength times ``weight`` times
   the image's strongest other word, after the word-rate calibration, which never lowers it: a
   colour word is a fact about the pixels, not a learned association to be kept rare.

"grey" and "gray" are both written. ``pixel_colours`` is an independent check for evaluation
(HSV rules on the full-resolution pixels, no Lab, no prototypes), so that the report does not
judge the extractor by itself.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

GRID = 56  # cells per side the colours are read at
RING = 2  # cells of the outer ring that decide the background
# name -> sRGB prototypes (0..255). Several per name so that light, dark and saturated shades land right.
PROTOTYPES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "black": ((0, 0, 0), (30, 30, 35)),
    "white": ((255, 255, 255), (240, 240, 235)),
    "gray": ((128, 128, 128), (175, 175, 175), (90, 90, 95)),
    "red": ((220, 30, 35), (180, 0, 0), (255, 70, 60), (140, 10, 20)),
    "orange": ((255, 140, 0), (245, 120, 40), (255, 170, 70)),
    "yellow": ((255, 220, 0), (250, 240, 90), (230, 200, 30)),
    "green": ((0, 160, 0), (100, 200, 60), (0, 100, 30), (150, 220, 140), (40, 170, 140)),
    "blue": ((0, 80, 220), (40, 130, 255), (0, 20, 140), (130, 190, 245), (20, 150, 200)),
    "purple": ((130, 40, 180), (160, 90, 210), (80, 0, 110), (190, 150, 230)),
    "pink": ((255, 150, 200), (240, 90, 170), (255, 190, 210)),
    "brown": ((120, 70, 30), (160, 100, 50), (85, 50, 25), (190, 140, 90)),
}
COLOURS = tuple(PROTOTYPES)
# The words written for each colour name ("gray" is also written "grey").
SPELLINGS: dict[str, tuple[str, ...]] = {name: (name,) for name in COLOURS} | {"gray": ("gray", "grey")}
_XYZ = torch.tensor([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
_WHITE = torch.tensor([0.95047, 1.0, 1.08883])


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], channels first ``[..., 3, H, W]`` -> CIELAB (D65) ``[..., 3, H, W]``."""
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055).clamp(min=1e-6) ** 2.4)
    xyz = torch.einsum("ij,...jhw->...ihw", _XYZ.to(rgb), linear) / _WHITE.to(rgb)[:, None, None]
    f = torch.where(xyz > 0.008856, xyz.clamp(min=1e-6) ** (1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f.unbind(dim=-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def _prototype_lab() -> tuple[torch.Tensor, torch.Tensor]:
    """``(lab [K, 3], name index [K])`` of every prototype."""
    rgb = torch.tensor([p for name in COLOURS for p in PROTOTYPES[name]], dtype=torch.float32) / 255.0  # [K, 3]
    lab = srgb_to_lab(rgb.t()[None, :, :, None])[0, :, :, 0].t()  # [K, 3]
    names = torch.tensor([k for k, name in enumerate(COLOURS) for _ in PROTOTYPES[name]])
    return lab, names


class ColourWords(nn.Module):
    """Normalised pixels ``[B, 3, S, S]`` -> each colour name's foreground share ``[B, C]`` and, per
    patch of a ``grid`` x ``grid`` map, ``[B, P, C]``; ``strength`` turns shares into word strengths."""

    prototypes: torch.Tensor
    members: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: tuple[float, float, float], std: tuple[float, float, float], min_share: float = 0.08,
                 grid: int = 7):  # fmt: skip
        super().__init__()
        self.grid = int(grid)  # the backbone's patch grid side, for the per-patch shares
        lab, names = _prototype_lab()
        self.register_buffer("prototypes", lab, persistent=False)  # [K, 3]
        self.register_buffer("members", nn.functional.one_hot(names, len(COLOURS)).float(), persistent=False)  # [K, C]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.min_share = float(min_share)

    def assign(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, C, GRID, GRID]``: 1 where a cell's nearest prototype is of colour c."""
        rgb = (pixels * self.std + self.mean).clamp(0.0, 1.0)
        cells = nn.functional.adaptive_avg_pool2d(rgb, GRID)  # [B, 3, G, G]
        lab = srgb_to_lab(cells).permute(0, 2, 3, 1)  # [B, G, G, 3]
        dist = ((lab.unsqueeze(-2) - self.prototypes) ** 2).sum(-1)  # [B, G, G, K]
        nearest = (dist <= dist.amin(dim=-1, keepdim=True)).float()  # [B, G, G, K]
        named = (nearest @ self.members).clamp(max=1.0)  # [B, G, G, C]
        named = named / named.sum(-1, keepdim=True).clamp(min=1.0)  # an exact tie counts once
        return named.permute(0, 3, 1, 2)

    def foreground(self, named: torch.Tensor) -> torch.Tensor:
        """``[B, C, G, G]`` with the background colour's cells zeroed."""
        ring = torch.ones(GRID, GRID, device=named.device)
        ring[RING:-RING, RING:-RING] = 0
        ring_share = (named * ring).sum(dim=(-2, -1)) / ring.sum()  # [B, C]
        background = (ring_share > 0.5).float()  # at most one colour can cover more than half
        return named * (1.0 - background)[:, :, None, None]

    def forward(self, pixels: torch.Tensor, patches: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Shares ``[B, C]`` of the foreground, and with ``patches`` per patch ``[B, grid*grid, C]``
        (each patch's share of the foreground cells in it)."""
        fg = self.foreground(self.assign(pixels))  # [B, C, G, G]
        total = fg.sum(dim=(1, 2, 3))  # [B]
        # fewer than 1% of the cells in the foreground: a blank picture says no colour
        enough = (total >= 0.01 * GRID * GRID).float()[:, None]
        shares = fg.sum(dim=(-2, -1)) / total.clamp(min=1.0)[:, None] * enough
        per_patch = None
        if patches:
            pooled = nn.functional.adaptive_avg_pool2d(fg, self.grid)  # [B, C, g, g]: colour c's share of each patch's cells
            per_patch = pooled.flatten(2).transpose(1, 2) * enough[:, None, :]  # [B, P, C]
        return shares, per_patch

    def strength(self, shares: torch.Tensor) -> torch.Tensor:
        """Shares -> strengths in [0, 1]: 0 up to ``min_share``, then a square-root rise to 1."""
        return ((shares - self.min_share) / (1.0 - self.min_share)).clamp(0.0, 1.0).sqrt()


def colour_words(vocab_words: list[str]) -> list[tuple[int, int]]:
    """``(colour index, vocabulary dimension)`` for every spelling of every colour the vocabulary has."""
    index = {w: j for j, w in enumerate(vocab_words)}
    return [(c, index[s]) for c, name in enumerate(COLOURS) for s in SPELLINGS[name] if s in index]


# ---- the independent check used by evaluation ---------------------------------------------------------
def pixel_colours(image, min_share: float = 0.1) -> set[str]:
    """Colour names that cover at least ``min_share`` of a picture's non-background pixels, by HSV
    rules on its own pixels (PIL image, transparency on white). Background: the most common of the
    names on the outer 3% border when it covers more than half of it. For checking words only."""
    from models.preprocess import to_rgb

    img = to_rgb(image)
    img.thumbnail((128, 128))
    rgb = np.asarray(img, np.float32) / 255.0
    names = _hsv_names(rgb)  # [H, W] of indices into COLOURS
    h, w = names.shape
    edge = max(1, round(0.03 * min(h, w)))
    border = np.concatenate([names[:edge].ravel(), names[-edge:].ravel(), names[:, :edge].ravel(), names[:, -edge:].ravel()])
    counts = np.bincount(border, minlength=len(COLOURS))
    keep = np.ones(names.shape, bool)
    if counts.max() > 0.5 * len(border):
        keep = names != counts.argmax()
    if keep.sum() < 0.01 * names.size:
        return set()
    shares = np.bincount(names[keep], minlength=len(COLOURS)) / keep.sum()
    return {COLOURS[c] for c in np.flatnonzero(shares >= min_share)}


def _hsv_names(rgb: np.ndarray) -> np.ndarray:
    """Each pixel's colour name by hue, saturation and value thresholds."""
    mx, mn = rgb.max(-1), rgb.min(-1)
    v, chroma = mx, mx - mn
    s = np.where(mx > 0, chroma / np.maximum(mx, 1e-6), 0.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue = np.zeros_like(v)
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(mx == r, ((g - b) / safe) % 6, hue)
    hue = np.where(mx == g, (b - r) / safe + 2, hue)
    hue = np.where(mx == b, (r - g) / safe + 4, hue)
    hue = (hue * 60.0) % 360.0
    idx = {name: k for k, name in enumerate(COLOURS)}
    out = np.full(v.shape, idx["gray"], np.int64)
    chromatic = (s >= 0.25) & (v >= 0.2)
    out[~chromatic & (v < 0.2)] = idx["black"]
    out[~chromatic & (v >= 0.2) & (v > 0.9) & (s < 0.1)] = idx["white"]
    bands = [(15, "red"), (40, "orange"), (70, "yellow"), (170, "green"), (255, "blue"), (320, "purple"), (335, "pink"), (360, "red")]
    lower = 0.0
    for upper, name in bands:
        sel = chromatic & (hue >= lower) & (hue < upper)
        out[sel] = idx[name]
        lower = upper
    # dark oranges and reds are brown; light reds are pink
    out[chromatic & (hue >= 10) & (hue < 45) & (v < 0.65)] = idx["brown"]
    out[chromatic & ((hue < 15) | (hue >= 335)) & (s < 0.5) & (v > 0.8)] = idx["pink"]
    return out
