import io
import warnings

import numpy as np
import pytest
from PIL import Image
from tokenizers import Tokenizer

from models.preprocess import ImageError, ImageSpec, InputError, TextPreprocessor, load_image
from models.registry import load_card, resolve_path


def _png_bytes(size=(40, 30), color=(200, 10, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_truncated_image_error_names_the_file(tmp_path):
    path = tmp_path / "cut.png"
    path.write_bytes(_png_bytes((200, 200))[:120])
    with pytest.raises(ImageError, match="cut.png"):
        load_image(path)


def test_unreadable_and_missing_files_are_named(tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match="junk.jpg: not a decodable image"):
        load_image(junk)
    with pytest.raises(ImageError, match="missing.png: cannot open"):
        load_image(tmp_path / "missing.png")


def test_pixel_limit_is_checked_before_decoding():
    with pytest.raises(ImageError, match="too large: 40x30"):
        load_image(_png_bytes(), max_pixels=1000)


def test_transparency_is_composited_on_white():
    buf = io.BytesIO()
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(buf, format="PNG")
    img = load_image(buf.getvalue())
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (255, 255, 255)


def test_letterbox_keeps_aspect_and_normalises():
    spec = ImageSpec(64, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    square, box = spec.letterbox(Image.new("RGB", (100, 50), (0, 0, 0)))
    assert square.size == (64, 64) and box == (0, 16, 64, 48)
    arr = spec.to_array(Image.new("RGB", (100, 50), (0, 0, 0)))
    assert arr.shape == (3, 64, 64) and arr.min() == pytest.approx(-1.0) and arr.max() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def minilm_tokenizer():
    return Tokenizer.from_file(str(resolve_path(load_card("lexvla-mini").text.tokenizer, "tok")) + "/tokenizer.json")


def test_empty_caption_is_refused(minilm_tokenizer):
    pre = TextPreprocessor(minilm_tokenizer)
    for bad in ["", "   ", None]:
        with pytest.raises(InputError, match="empty caption"):
            pre.encode(bad)


def test_over_long_caption_is_truncated_with_a_warning(minilm_tokenizer):
    pre = TextPreprocessor(minilm_tokenizer, prompt="focus of {text} is:", max_caption_tokens=8)
    with pytest.warns(UserWarning, match="past 8 tokens was truncated") as caught:
        ids = pre.encode("horse " * 50)
    assert "horse" not in str(caught[0].message)  # no query text: one registry entry however many queries
    head, tail = pre.template_tokens
    assert len(ids) == head + 8 + tail
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        short = pre.encode("a horse")
    assert len(short) == head + 2 + tail


def test_batch_is_right_padded(minilm_tokenizer):
    pre = TextPreprocessor(minilm_tokenizer)
    ids, mask = pre.batch(["a horse", "a white horse riding fast"])
    assert ids.shape == mask.shape and mask[0].sum() < mask[1].sum()
    assert np.all(ids[0][mask[0] == 0] == pre.pad_id)
