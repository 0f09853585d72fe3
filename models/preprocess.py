"""Input preprocessing shared by training, evaluation, export checks, indexing and serving.

Keeping image resizing and prompt tokenisation in one module is what keeps the vectors in the
index identical to the vectors the model was trained and evaluated on.
"""
from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 64_000_000


class InputError(ValueError):
    """A bad input (image or text) with a message that names what was wrong."""


class ImageError(InputError):
    """An image that cannot be used; ``source`` names the file (or ``<bytes>``)."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def load_image(source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image fully into RGB, compositing transparency onto white.

    Raises :class:`ImageError` naming the source for a missing, unreadable, truncated or
    over-large (decompression bomb) image. The pixel count is checked from the header, before
    any pixel data is decoded.
    """
    name = "<bytes>" if isinstance(source, bytes | bytearray) else str(source)
    try:
        fh: Any = io.BytesIO(source) if isinstance(source, bytes | bytearray) else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise ImageError(name, f"cannot open ({exc.strerror or exc})") from exc
    with fh:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(fh)
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageError(name, f"too large: {width}x{height} pixels exceeds the limit of {max_pixels}")
                img.load()
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(name, f"too large: {exc}") from exc
        except UnidentifiedImageError as exc:
            raise ImageError(name, f"not a decodable image ({type(exc).__name__}: {exc})") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(name, f"corrupt or truncated image ({exc})") from exc
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "P", "PA"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


@dataclass(frozen=True)
class ImageSpec:
    """How pixels reach the image tower: square letterbox at ``size``, then mean/std normalisation."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def letterbox(self, img: Image.Image) -> tuple[Image.Image, tuple[int, int, int, int]]:
        """Fit ``img`` inside a white ``size x size`` square; returns it and the content box (l, t, r, b)."""
        img = to_rgb(img)
        scale = self.size / max(img.size)
        w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
        resized = img.resize((w, h), Image.BICUBIC)
        canvas = Image.new("RGB", (self.size, self.size), (255, 255, 255))
        left, top = (self.size - w) // 2, (self.size - h) // 2
        canvas.paste(resized, (left, top))
        return canvas, (left, top, left + w, top + h)

    def to_array(self, img: Image.Image) -> np.ndarray:
        """``[3, size, size]`` float32, normalised."""
        square, _ = self.letterbox(img)
        arr = np.asarray(square, dtype=np.float32) / 255.0  # [H, W, 3]
        arr = (arr - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def batch(self, images: list[Image.Image]) -> np.ndarray:
        """``[B, 3, size, size]`` float32."""
        return np.stack([self.to_array(im) for im in images]) if images else np.zeros((0, 3, self.size, self.size), np.float32)


@dataclass
class TextPreprocessor:
    """Turns captions into token ids for the text tower, the same way in training and serving.

    The caption is placed into ``prompt`` (``{text}`` marks where) for causal LMs; for
    bidirectional encoders the prompt is ``"{text}"``. Only the caption part is truncated, to
    ``max_caption_tokens``, with a warning; the prompt around it is kept whole.
    """

    tokenizer: Any  # tokenizers.Tokenizer
    prompt: str = "{text}"
    max_caption_tokens: int = 32
    lowercase: bool = False

    def __post_init__(self) -> None:
        if "{text}" not in self.prompt:
            raise ValueError("prompt must contain '{text}'")
        from tokenizers import Tokenizer

        self.pad_id = _pad_id(self.tokenizer)
        # A private copy without the file's own padding/truncation: lengths are handled here.
        self.tokenizer = Tokenizer.from_str(self.tokenizer.to_str())
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        head, tail = self.prompt.split("{text}", 1)
        self._head = self._ids(head) if head else []
        self._tail = self._ids(tail) if tail else []
        with_special = self.tokenizer.encode("a", add_special_tokens=True).ids
        bare = self.tokenizer.encode("a", add_special_tokens=False).ids
        start = _find(with_special, bare)
        self._bos, self._eos = with_special[:start], with_special[start + len(bare):]

    @property
    def template_tokens(self) -> tuple[int, int]:
        """How many tokens come before and after the caption in every sequence."""
        return len(self._bos) + len(self._head), len(self._tail) + len(self._eos)

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def caption_ids(self, text: str) -> list[int]:
        if not isinstance(text, str) or not text.strip():
            raise InputError("empty caption: a text query needs at least one word")
        ids = self._ids(text.lower() if self.lowercase else text.strip())
        if not ids:
            raise InputError(f"caption {text[:40]!r} has no tokens")
        if len(ids) > self.max_caption_tokens:
            warnings.warn(
                f"caption of {len(ids)} tokens truncated to {self.max_caption_tokens}: {text[:60]!r}...",
                stacklevel=2,
            )
            ids = ids[: self.max_caption_tokens]
        return ids

    def encode(self, text: str) -> list[int]:
        return self._bos + self._head + self.caption_ids(text) + self._tail + self._eos

    def batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Right-padded ``input_ids`` and ``attention_mask``, both ``[B, L]`` int64."""
        seqs = [self.encode(t) for t in texts]
        width = max((len(s) for s in seqs), default=1)
        ids = np.full((len(seqs), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        for row, seq in enumerate(seqs):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        return ids, mask


def _find(haystack: list[int], needle: list[int]) -> int:
    for i in range(len(haystack) - len(needle) + 1):
        if haystack[i : i + len(needle)] == needle:
            return i
    raise ValueError("tokenizer adds special tokens inside the text; cannot split its template")


def _pad_id(tokenizer: Any) -> int:
    padding = getattr(tokenizer, "padding", None)
    if padding and padding.get("pad_id") is not None:
        return int(padding["pad_id"])
    for tok in ("[PAD]", "<pad>", "<unk>"):
        tid = tokenizer.token_to_id(tok)
        if tid is not None:
            return int(tid)
    return 0
