"""Colour words read from the pixels (models.colours): the extractor, the independent check, and the
exported image tower writing them like any other word."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from lexvla.testing import draw_shape
from models.colours import COLOURS, ColourWords, colour_words, pixel_colours
from models.preprocess import ImageSpec

SPEC = ImageSpec(224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# Colours as people name them, each drawn as an outlined disc on white.
NAMED = {"red": (220, 20, 30), "orange": (255, 140, 0), "yellow": (250, 220, 20), "green": (30, 170, 60),
         "blue": (30, 90, 230), "purple": (128, 0, 128), "pink": (255, 105, 180), "brown": (139, 69, 19),
         "black": (0, 0, 0), "gray": (128, 128, 128), "maroon": (128, 0, 0), "navy": (0, 0, 128)}
EXPECTED = {"maroon": "red", "navy": "blue"}


def disc(rgb, size=(200, 160), background="white") -> Image.Image:
    img = Image.new("RGB", size, background)
    ImageDraw.Draw(img).ellipse((40, 30, 160, 130), fill=rgb, outline=(0, 0, 0), width=3)
    return img


def said(module: ColourWords, img: Image.Image) -> dict[str, float]:
    shares, _ = module(torch.from_numpy(SPEC.batch([img])))
    strength = module.strength(shares)[0]
    return {COLOURS[c]: float(v) for c, v in enumerate(strength) if v > 0}


@pytest.mark.parametrize("name", list(NAMED))
def test_a_disc_of_known_colour_says_that_colour_and_no_other(name):
    module = ColourWords(SPEC.mean, SPEC.std)
    words = said(module, disc(NAMED[name]))
    assert set(words) == {EXPECTED.get(name, name)}, words
    assert words[EXPECTED.get(name, name)] > 0.8
    assert pixel_colours(disc(NAMED[name])) == {EXPECTED.get(name, name)}  # the independent check agrees


@pytest.mark.parametrize("shape", ["circle", "square", "triangle", "star"])
@pytest.mark.parametrize("colour", ["red", "green", "blue", "yellow"])
def test_drawn_shapes_of_the_test_kit_say_their_colour(shape, colour):
    module = ColourWords(SPEC.mean, SPEC.std)
    img = draw_shape(shape, colour, (160, 120), seed=3)
    assert max(said(module, img).items(), key=lambda kv: kv[1])[0] == colour
    assert colour in pixel_colours(img)


def test_the_background_is_not_a_colour_of_the_picture_and_a_white_thing_on_grass_is_white():
    module = ColourWords(SPEC.mean, SPEC.std)
    assert said(module, Image.new("RGB", (120, 90), "white")) == {}  # a blank page says nothing
    on_grass = Image.new("RGB", (200, 200), (20, 110, 30))
    ImageDraw.Draw(on_grass).rectangle((60, 50, 140, 150), fill=(250, 250, 250))
    assert set(said(module, on_grass)) == {"white"}
    assert pixel_colours(on_grass) == {"white"}


def test_two_colours_are_both_said_and_a_thin_trace_is_not():
    module = ColourWords(SPEC.mean, SPEC.std, min_share=0.08)
    img = Image.new("RGB", (200, 200), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle((20, 40, 100, 160), fill=(220, 20, 30))
    draw.rectangle((100, 40, 180, 160), fill=(30, 90, 230))
    draw.line((20, 30, 180, 30), fill=(30, 170, 60), width=1)  # a hairline of green: below the share
    assert set(said(module, img)) == {"red", "blue"}


def test_per_patch_shares_say_where_the_colour_is():
    module = ColourWords(SPEC.mean, SPEC.std, grid=7)
    img = Image.new("RGB", (224, 224), "white")
    ImageDraw.Draw(img).rectangle((0, 0, 95, 95), fill=(220, 20, 30))  # top-left 3x3 patches of 32 px
    _, per_patch = module(torch.from_numpy(SPEC.batch([img])), patches=True)
    red = per_patch[0, :, COLOURS.index("red")].reshape(7, 7)
    assert red[:3, :3].min() > 0.9 and red[4:, 4:].max() == 0.0


def test_gray_is_also_written_grey():
    words = ["dog", "grey", "gray", "red"]
    pairs = colour_words(words)
    assert (COLOURS.index("gray"), 1) in pairs and (COLOURS.index("gray"), 2) in pairs
    assert (COLOURS.index("red"), 3) in pairs and len(pairs) == 3


@pytest.mark.slow
def test_the_exported_default_writes_colour_words_and_explains_them(mini_bundle_dir):
    """The untrained lexvla-mini bundle, through onnxruntime: a red car-like drawing gets "red" among
    its strongest words, a blue one "blue", and neither gets the other's colour."""
    from models.bundle import Bundle

    bundle = Bundle(mini_bundle_dir, device="cpu")
    red, blue = disc(NAMED["red"]), disc(NAMED["blue"])
    vectors = bundle.encode_images([red, blue])
    top = [{bundle.words[int(j)] for j in v.ids[:5]} for v in vectors]
    assert "red" in top[0] and "blue" not in top[0]
    assert "blue" in top[1] and "red" not in top[1]
    impacts = bundle.impacts(vectors[0])
    assert impacts["red"] >= 0.3 * max(impacts.values())  # weighed beside the others, as the card says
    dense, patches = bundle.encode_images_dense([red], patches=True)
    heat = bundle.word_heatmaps(patches[0], [bundle.vocab.index("red")])[0]
    assert heat[3, 3] > heat[0, 0]  # the disc's middle, not the white corner
    assert np.isfinite(dense).all()
