"""Input preprocessing shared by training, evaluation, export checks, indexing and serving.

Keeping image resizing and prompt tokenisation in one module is what keeps the vectors in the
index identical to the vectors the model was trained and evaluated on.
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
import re
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 64_000_000


class InputError(ValueError):
    """A bad input (image or text) with a message that names what was wrong.

    ``field`` names the request field the error is about (``"k"``, ``"file"``), when there is one.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class ImageError(InputError):
    """An image that cannot be used; ``source`` names the file (or ``<bytes>``)."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class TooLarge(InputError):
    """An input over a size limit; the message names the limit (the service answers HTTP 413)."""


class ImageTooLarge(ImageError, TooLarge):
    """An image over a pixel count or decoding-memory limit."""


def load_image(source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image fully into RGB, compositing transparency onto white.

    Raises :class:`ImageError` naming the source for a missing, unreadable, truncated or
    over-large (decompression bomb) image. The pixel count is checked from the header, before
    any pixel data is decoded.
    """
    return decode_image(source, max_pixels)[0]


def decode_image(
    source: str | Path | bytes | BinaryIO,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    max_side: int | None = None,
    max_bytes: int | None = None,
    name: str | None = None,
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode an image into RGB (transparency composited onto white); returns it and the file's size.

    Parameters
    ----------
    source : a path, the file's bytes or an open binary file.
    max_pixels : pixel limit, checked from the header before any pixel data is decoded.
    max_side : decode at reduced size: an image longer than ``2 * max_side`` is decoded with
        JPEG's DCT scaling (``Image.draft``) and shrunk by an integer factor (``Image.reduce``)
        before the colour conversion, to a long side between ``max_side`` and ``2 * max_side``.
        ``None`` decodes at full size (what the indexer and training do).
    max_bytes : memory the decode may take (``decoded_bytes``); over it, a "too large" error.
    name : how errors name the source (default: the path, or ``<bytes>``).

    Raises :class:`ImageError` with a reason that depends only on the file and these limits: the
    same file gets the same reason in every run and thread (no warning filters are touched, and
    no object reprs or other paths are quoted).
    """
    label = name or (str(source) if isinstance(source, str | Path) else "<bytes>")
    try:
        if isinstance(source, bytes | bytearray):
            fh: Any = io.BytesIO(source)
        elif isinstance(source, str | Path):
            fh = open(source, "rb")  # noqa: SIM115
        else:
            fh = contextlib.nullcontext(source)
    except OSError as exc:
        raise ImageError(label, f"cannot open ({exc.strerror or type(exc).__name__})") from exc
    with fh as f:
        try:
            img: Image.Image = Image.open(f)
            size = img.size
            if size[0] * size[1] > max_pixels:
                raise ImageTooLarge(label, f"too large: {size[0]}x{size[1]} pixels exceeds the limit of {max_pixels}")
            if max_side and max(size) > 2 * max_side:
                scale = max_side / max(size)
                img.draft(None, (math.ceil(size[0] * scale), math.ceil(size[1] * scale)))
            need = decoded_bytes(img, reduce=bool(max_side))
            if max_bytes is not None and need > max_bytes:
                raise ImageTooLarge(
                    label, f"too large: decoding {size[0]}x{size[1]} ({img.mode}) needs {need / 1e6:.0f} MB; "
                    f"the limit is {max_bytes / 1e6:.0f} MB"
                )
            img.load()
            if max_side and max(img.size) >= 2 * max_side:
                img = _reducible(img).reduce(max(img.size) // max_side)
            img = to_rgb(img)
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # the warning: under -W error
            raise ImageTooLarge(label, f"too large: over {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels (decompression bomb)") from exc
        except UnidentifiedImageError as exc:
            raise ImageError(label, "not a decodable image (no known image format)") from exc
        except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
            raise ImageError(label, f"corrupt or truncated image ({_describe(exc, source)})") from exc
        except MemoryError:
            raise
        except Exception as exc:  # a decoder that fails on odd input some other way
            raise ImageError(label, f"cannot be decoded ({type(exc).__name__})") from exc
    return img, size


_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_REDUCIBLE = {"1": "L", "P": "RGBA", "I;16": "I", "I;16L": "I", "I;16B": "I", "I;16N": "I"}


def decoded_bytes(img: Image.Image, reduce: bool = False) -> int:
    """Memory PIL needs to hold ``img`` decoded at its current (draft) size; with ``reduce``, plus
    the copy a mode that :meth:`Image.reduce` cannot shrink is converted to first."""
    pixels = img.size[0] * img.size[1]
    need = pixels * _BYTES_PER_PIXEL.get(img.mode, 4)
    if reduce and img.mode in _REDUCIBLE:
        need += pixels * _BYTES_PER_PIXEL.get(_REDUCIBLE[img.mode], 4)
    return need


def _reducible(img: Image.Image) -> Image.Image:
    return img.convert(_REDUCIBLE[img.mode]) if img.mode in _REDUCIBLE else img


def _describe(exc: BaseException, source: Any) -> str:
    """An exception's text for a reason: no path (an OSError's ``strerror``) and no object repr."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc) or type(exc).__name__
    if isinstance(source, str | Path):
        text = text.replace(str(source), "<file>")
    return _REPR.sub("<object>", text)


_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


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
        resized = img.resize((w, h), Image.Resampling.BICUBIC)
        canvas = Image.new("RGB", (self.size, self.size), (255, 255, 255))
        left, top = (self.size - w) // 2, (self.size - h) // 2
        canvas.paste(resized, (left, top))
        return canvas, (left, top, left + w, top + h)

    def to_array(self, img: Image.Image) -> np.ndarray:
        """``[3, size, size]`` float32, normalised."""
        square, _ = self.letterbox(img)
        arr: np.ndarray = np.asarray(square, dtype=np.float32) / 255.0  # [H, W, 3]
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
            # One fixed text per model: Python keeps a registry entry per distinct warning message, so
            # a message quoting the caption would grow with every distinct long query a server sees.
            warnings.warn(f"a caption past {self.max_caption_tokens} tokens was truncated", stacklevel=2)
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
