"""Tests for core.inputs.media: decoding images (orientation, depth, transparency, hostile files) and thumbnails."""

from __future__ import annotations

import contextlib
import resource
import time
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.errors import InputError
from core.inputs import (
    decode_image,
    make_thumbnail,
)
from tests.media_fixtures import (
    RED,
    close_colour,
    make_animated,
    make_array_image,
    make_image,
    make_oriented_jpeg,
    make_png_header,
    make_transparent_png,
    raises_input_error,
)

OK = contextlib.nullcontext()
WHITE = (255, 255, 255)
MID_GREY = ((128, 32), (128, 128, 128))  # the middle of GRADIENT_16, in 8 bits
GRADIENT_16 = np.linspace(0, 65535, 64 * 256).reshape(64, 256).astype(np.uint16)


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


IMAGE_CASES = [
    # bytes, decode_image kwargs, expectation, decoded size, colour at pixel (x, y)
    pytest.param(lambda: make_image("JPEG"), {}, OK, (40, 30), ((5, 5), RED), id="jpeg"),
    pytest.param(lambda: make_image("PNG"), {}, OK, (40, 30), ((5, 5), RED), id="png"),
    pytest.param(lambda: make_image("WEBP"), {}, OK, (40, 30), ((5, 5), RED), id="webp"),
    pytest.param(lambda: make_image("BMP"), {}, OK, (40, 30), ((5, 5), RED), id="bmp"),
    pytest.param(lambda: make_image("TIFF"), {}, OK, (40, 30), ((5, 5), RED), id="tiff"),
    pytest.param(lambda: make_animated("GIF"), {}, OK, (24, 24), ((5, 5), RED), id="gif-first-frame"),
    pytest.param(lambda: make_animated("WEBP"), {}, OK, (24, 24), ((5, 5), RED), id="webp-first-frame"),
    pytest.param(lambda: make_animated("TIFF"), {}, OK, (24, 24), ((5, 5), RED), id="tiff-first-page"),
    # Orientation 6: the stored 40x20 image is shown rotated clockwise, so its left (red) half ends up on top.
    pytest.param(make_oriented_jpeg, {}, OK, (20, 40), ((10, 5), RED), id="exif-orientation"),
    pytest.param(lambda: make_image("JPEG", mode="CMYK", colour=(0, 255, 255, 0)), {}, OK, (40, 30), ((5, 5), RED), id="cmyk-jpeg"),
    pytest.param(lambda: make_image("PNG", mode="L", colour=128), {}, OK, (40, 30), ((5, 5), (128,) * 3), id="greyscale"),
    pytest.param(lambda: make_image("PNG", mode="1", colour=1), {}, OK, (40, 30), ((5, 5), WHITE), id="bilevel"),
    pytest.param(lambda: make_transparent_png("RGBA"), {}, OK, (16, 16), ((5, 5), WHITE), id="rgba-on-white"),
    pytest.param(lambda: make_transparent_png("LA"), {}, OK, (16, 16), ((5, 5), WHITE), id="la-on-white"),
    pytest.param(lambda: make_transparent_png("P"), {}, OK, (16, 16), ((5, 5), WHITE), id="palette-transparency"),
    pytest.param(lambda: make_array_image(GRADIENT_16, "PNG"), {}, OK, (256, 64), MID_GREY, id="png-16-bit"),
    pytest.param(lambda: make_array_image(GRADIENT_16, "TIFF"), {}, OK, (256, 64), MID_GREY, id="tiff-16-bit"),
    pytest.param(lambda: make_array_image(GRADIENT_16.astype(np.int32), "TIFF"), {}, OK, (256, 64), MID_GREY, id="tiff-32-bit-int"),
    pytest.param(lambda: make_array_image(GRADIENT_16 / np.float32(65535), "TIFF"), {}, OK, (256, 64), MID_GREY, id="tiff-float"),
    pytest.param(lambda: make_image("JPEG", size=(2000, 1000)), {"min_side": 200}, OK, (500, 250), None, id="jpeg-draft"),
    pytest.param(lambda: make_image("JPEG", size=(2000, 1000)), {"min_side": 400}, OK, (1000, 500), None, id="jpeg-draft-keeps-min-side"),
    pytest.param(lambda: make_image("PNG", size=(2000, 1000)), {"min_side": 200}, OK, (2000, 1000), None, id="png-no-draft"),
    pytest.param(lambda: b"", {}, raises_input_error("empty file"), None, None, id="zero-bytes"),
    pytest.param(lambda: b"just some notes\n" * 20, {}, raises_input_error("not a readable image"), None, None, id="text-as-jpg"),
    pytest.param(
        lambda: _half(make_image("JPEG", size=(200, 100))), {}, raises_input_error("truncated image"), None, None, id="truncated-jpeg"
    ),
    pytest.param(
        lambda: _half(make_image("PNG", size=(200, 100))), {}, raises_input_error("truncated image"), None, None, id="truncated-png"
    ),
    pytest.param(lambda: make_image("PPM"), {}, raises_input_error("not a readable image"), None, None, id="format-not-offered"),
    pytest.param(
        lambda: make_png_header(10_000, 7_000), {}, raises_input_error(r"too large \(70 megapixels, limit 64\)"), None, None, id="ours"
    ),
    pytest.param(
        lambda: make_png_header(10_000, 10_000), {}, raises_input_error(r"too large \(100 megapixels"), None, None, id="pillow-warns"
    ),
    pytest.param(
        lambda: make_png_header(20_000, 20_000), {}, raises_input_error(r"too large \(400 megapixels"), None, None, id="pillow-refuses"
    ),
    pytest.param(
        lambda: make_image("PNG", size=(100, 100)), {"max_pixels": 5_000}, raises_input_error(r"0.01 megapixels, limit 0.005"), None, None
    ),
]


@pytest.mark.parametrize("make, kwargs, expectation, size, colour", IMAGE_CASES)
def test_decode_image(make, kwargs, expectation, size, colour):
    with expectation as raised:
        image = decode_image(make(), "photo.jpg", **kwargs)
    if raised is not None:
        assert raised.value.name == "photo.jpg"
        return
    assert image.mode == "RGB"
    assert image.size == size
    if colour is not None:
        point, expected = colour
        assert close_colour(image.getpixel(point), expected), image.getpixel(point)


def test_16_bit_png_keeps_its_gradient():
    grey = np.asarray(decode_image(make_array_image(GRADIENT_16, "PNG"), "deep.png"))[:, :, 0]
    assert grey.min() == 0 and grey.max() == 255
    assert len(np.unique(grey)) > 200  # not saturated, not posterised


def test_huge_declared_size_is_refused_without_allocating():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.monotonic()
    with raises_input_error("image too large"):
        decode_image(make_png_header(60_000, 60_000), "bomb.png", max_pixels=10**10)
    assert time.monotonic() - start < 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_images_give_an_image_or_an_input_error(data):
    original = make_image(data.draw(st.sampled_from(["JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"])), size=(20, 20))
    damaged = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    damaged = damaged[: data.draw(st.integers(0, len(damaged)))]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            assert decode_image(bytes(damaged), "x").mode == "RGB"
        except InputError:
            pass
    assert [str(w.message) for w in caught] == []  # Pillow's own warnings ("Truncated File Read") never reach the person


@pytest.mark.parametrize(
    "size, bound, expected",
    [((400, 200), 256, (256, 128)), ((200, 400), 100, (50, 100)), ((40, 30), 256, (40, 30))],
)
def test_make_thumbnail_fits_and_keeps_aspect(size, bound, expected):
    image = Image.new("RGB", size, RED)
    assert make_thumbnail(image, bound).size == expected
    assert image.size == size
