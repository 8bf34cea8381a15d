"""Tests for core.inputs.metadata: an image's non-pixel bytes, measured from its structure and bounded before decoding."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from core.errors import InputError
from core.inputs.media import decode_image
from core.inputs.metadata import measure_metadata

MB = 1024**2


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 120, np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


def _jpeg_with_exif_segments(count: int, size: int = 65_535) -> bytes:
    """A real JPEG with ``count`` APP1 (EXIF) segments of ``size`` bytes each before its pixels."""
    jpeg = _encoded("JPEG")
    segment = b"\xff\xe1" + struct.pack(">H", size) + b"Exif\0\0" + b"\0" * (size - 8)
    return jpeg[:2] + segment * count + jpeg[2:]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_with(chunk: bytes) -> bytes:
    png = _encoded("PNG")
    return png[:33] + chunk + png[33:]  # after the signature and IHDR


def _webp_with_exif(size: int) -> bytes:
    webp = _encoded("WEBP")
    chunk = b"EXIF" + struct.pack("<I", size) + b"\0" * size + b"\0" * (size & 1)
    body = webp[12:] + chunk
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


@pytest.mark.parametrize(
    "make, limit, outcome",
    [
        # (the file, the limit, None for a decoded image or the reason it is refused)
        (lambda: _encoded("JPEG"), 1 * MB, None),
        (lambda: _jpeg_with_exif_segments(15), 1 * MB, None),  # 0.94 MB of EXIF: a heavy but real photo
        (lambda: _jpeg_with_exif_segments(17), 1 * MB, "metadata too large (1.1 MB, limit 1.0 MB)"),
        (lambda: _png_with(_png_chunk(b"tEXt", b"comment\0" + b"a" * (2 * MB))), 1 * MB, "metadata too large (2.0 MB, limit 1.0 MB)"),
        (lambda: _png_with(_png_chunk(b"tEXt", b"comment\0short")), 1 * MB, None),
        (
            # Small compressed, huge unpacked: Pillow's own cap refuses it, and the reason says so.
            lambda: _png_with(_png_chunk(b"zTXt", b"comment\0\0" + zlib.compress(b"a" * (8 * MB), 9))),
            1 * MB,
            "metadata too large (a compressed text chunk unpacks to more than Pillow reads)",
        ),
        (lambda: _webp_with_exif(2 * MB), 1 * MB, "metadata too large (2.0 MB, limit 1.0 MB)"),
        (lambda: _encoded("GIF"), 1 * MB, None),  # not walked: Pillow alone decides
    ],
    ids=["jpeg", "jpeg-heavy-exif", "jpeg-too-much-exif", "png-text-chunk", "png-small-text", "png-ztxt-bomb", "webp-exif", "gif"],
)
def test_metadata_is_bounded_before_decoding(make, limit, outcome):
    data = make()
    if outcome is None:
        assert decode_image(data, "photo", max_metadata_bytes=limit).size == (16, 16)
        return
    with pytest.raises(InputError) as refused:
        decode_image(data, "photo", max_metadata_bytes=limit)
    assert refused.value.name == "photo" and refused.value.reason.startswith(outcome)


def test_a_jpeg_of_960_exif_segments_is_refused_before_pillow_reads_it(monkeypatch):
    """62 MB of EXIF took Pillow 11 s to open: the segment headers alone decide, Pillow is never called."""
    data = _jpeg_with_exif_segments(960)

    def never(*args, **kwargs):
        raise AssertionError("Pillow was asked to open a file already refused")

    monkeypatch.setattr(Image, "open", never)
    with pytest.raises(InputError, match=r"metadata too large \(60 MB, limit 16 MB\)"):
        decode_image(data, "exif.jpg")
    monkeypatch.undo()
    assert measure_metadata(data) == 960 * 65_535 + measure_metadata(_encoded("JPEG"))


@pytest.mark.parametrize("data", [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n\0\0", b"RIFF\0\0\0\0WEBPVP8", b"GIF89a", b""])
def test_truncated_structures_measure_without_error(data):
    assert measure_metadata(data) in (None, 0)
