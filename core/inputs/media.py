"""Decode images (and, through ``core.inputs.video``, sample video frames), refusing hostile or broken files with an ``InputError``.

Decoders are third-party code fed with whatever people upload, so every call into them is wrapped:
a bad file becomes one ``InputError`` naming it, never a crash, a hang or an out-of-memory kill.
"""

from __future__ import annotations

import io
import logging
import math
import re
import warnings

import numpy as np
from PIL import Image, ImageOps

from core.errors import InputError
from core.inputs.metadata import MAX_METADATA_BYTES, describe_oversized_metadata

logger = logging.getLogger(__name__)

# Only the formats people may upload; Pillow's other plugins (EPS runs Ghostscript) stay out of reach.
_PIL_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "DIB", "TIFF")
_WHITE = (255, 255, 255)


def decode_image(
    data: bytes, name: str, min_side: int | None = None, max_pixels: int = 64_000_000, max_metadata_bytes: int = MAX_METADATA_BYTES
) -> Image.Image:
    """Decode image bytes into an upright RGB image.

    The EXIF orientation is applied, animated files give their first frame, transparency is
    composited on white and high bit depths are scaled to 8 bits. The declared size is checked
    against ``max_pixels`` before any pixel is decoded.

    Args:
        data: the file's bytes.
        name: what the person would recognise (used in errors).
        min_side: if given, a large JPEG may be decoded at a reduced scale whose shorter side
            stays at least ``min_side`` (cheaper; the result is not resized further).
        max_pixels: largest accepted width * height (Pillow's own ``Image.MAX_IMAGE_PIXELS``, about
            89 megapixels, still caps it: Pillow's decompression-bomb warning is turned into a refusal).
        max_metadata_bytes: most bytes of EXIF, text and other non-pixel data (``core.inputs.metadata``),
            measured before Pillow parses any of it: decoders spend time and memory on it out of proportion.

    Returns:
        A loaded ``PIL.Image.Image`` in mode ``"RGB"``; ``info["original_size"]`` holds the
        upright (width, height) of the file, before any draft-mode reduction.

    Raises:
        InputError: empty, unreadable, truncated or too large image.
    """
    if not data:
        raise InputError(name, "empty file")
    oversized = describe_oversized_metadata(data, max_metadata_bytes)
    if oversized is not None:
        raise InputError(name, oversized)
    with warnings.catch_warnings():
        # Pillow's warnings ("Truncated File Read", odd EXIF) are about its parsing, not the person's to act
        # on: a file it can still decode is used, one it cannot gets its line. The bomb warning, though,
        # comes between Pillow's limit and twice it: that one is a refusal.
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return _decode(data, name, min_side, min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels))


def _decode(data: bytes, name: str, min_side: int | None, limit: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=_PIL_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        match = re.search(r"\((\d+) pixels\)", str(e))
        pixels = int(match.group(1)) if match else limit + 1
        raise InputError(name, _too_large_reason(pixels, limit)) from e
    except Exception as e:
        raise InputError(name, _unreadable_reason(e)) from e
    width, height = image.size
    if width * height > limit:
        raise InputError(name, _too_large_reason(width * height, limit))
    if width < 1 or height < 1:
        raise InputError(name, "not a readable image")
    try:
        if min_side is not None and image.format in ("JPEG", "MPO"):
            _draft(image, min_side)
        image.load()
    except Exception as e:
        raise InputError(name, _unreadable_reason(e)) from e
    loaded_size = image.size
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except Exception as e:  # a broken EXIF block should not cost the person their image
        logger.warning("%s: ignoring unreadable EXIF orientation (%s)", name, e)
    # Draft decoding shrinks the pixels; callers still want the photo's real (upright) size.
    original_size = (height, width) if image.size != loaded_size else (width, height)
    try:
        rgb = _to_rgb(image)
    except Exception as e:
        raise InputError(name, f"unsupported colour mode {image.mode}") from e
    rgb.info["original_size"] = original_size
    return rgb


def make_thumbnail(image: Image.Image, size: int = 256) -> Image.Image:
    """Return a copy of ``image`` that fits within ``size`` x ``size``, keeping its aspect ratio.

    Raises:
        ValueError: ``size`` is not positive.
    """
    if size < 1:
        raise ValueError(f"thumbnail size must be positive, got {size}")
    thumbnail = image.copy()
    thumbnail.thumbnail((size, size))
    return thumbnail


def _draft(image: Image.Image, min_side: int) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale while the shorter side stays >= ``min_side``."""
    width, height = image.size
    scale = min_side / min(width, height)
    if scale <= 0.5:
        image.draft(image.mode, (math.ceil(width * scale), math.ceil(height * scale)))


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        return Image.fromarray(_to_8_bit(np.asarray(image), mode)).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", image.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image if mode == "RGB" else image.convert("RGB")


def _to_8_bit(values: np.ndarray, mode: str) -> np.ndarray:
    """Map 16-bit, 32-bit integer or float greyscale to 0..255 without saturating it."""
    if mode.startswith("I;16"):
        return (values >> 8).astype(np.uint8)
    values = values.astype(np.float32)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if mode == "F" and low >= 0 and high <= 1:
        values = values * 255
    elif low >= 0 and high <= 255:
        pass
    elif mode == "I" and low >= 0 and high <= 65535:
        values = values / 257
    elif high > low:
        values = (values - low) * (255 / (high - low))
    else:
        values = np.zeros_like(values)
    return np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0).clip(0, 255).round().astype(np.uint8)


def _unreadable_reason(error: Exception) -> str:
    if "truncated" in str(error).lower():
        return "truncated image"
    if "MAX_TEXT_CHUNK" in str(error) or "MAX_TEXT_MEMORY" in str(error):  # Pillow's caps on compressed PNG text
        return "metadata too large (a compressed text chunk unpacks to more than Pillow reads)"
    return "not a readable image"


def _too_large_reason(pixels: int, limit: int) -> str:
    return f"image too large ({_megapixels(pixels)} megapixels, limit {_megapixels(limit)})"


def _megapixels(pixels: int) -> str:
    value = pixels / 1e6
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"
