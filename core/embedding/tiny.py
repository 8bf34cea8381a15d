"""The ``tiny`` embedder: colour thumbnails and hashed character trigrams, no model at all (tests, slow machines)."""

from __future__ import annotations

import zlib

import numpy as np
from PIL import Image

from core.embedding.base import Embedder
from core.embedding.specs import describe_dims, describe_spaces, describe_spec


class TinyEmbedder(Embedder):
    """A crude, very fast embedder with no model: colour thumbnails and hashed character trigrams."""

    THUMB = 16
    TEXT_DIM = 256

    def __init__(self) -> None:
        self.spec = "tiny"
        self.description = describe_spec("tiny")
        self.image_space, self.text_space = describe_spaces("tiny")
        self.dims = describe_dims("tiny")  # THUMB * THUMB * 3 and TEXT_DIM; known to model files without loading
        self.image_size = self.THUMB

    @property
    def loaded_models(self) -> tuple[str, ...]:
        return ()  # no model at all

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        size = (self.THUMB, self.THUMB)
        rows = []
        for image in images:
            thumb = np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
            pixels = thumb.reshape(-1) / 127.5 - 1.0
            if pixels.min() == pixels.max():  # flat grey: exact zero, not float32 rounding noise
                rows.append(np.zeros_like(pixels))
            else:
                rows.append(pixels - pixels.mean())  # so cosine compares patterns, not brightness
        return np.stack(rows)

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.TEXT_DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            words = " ".join(text.lower().split())
            if not words:
                continue  # empty text: becomes the fixed unit vector in _normalize_rows
            padded = f" {words} "
            for i in range(len(padded) - 2):
                # crc32, not hash(): Python salts str hashes per process.
                out[row, zlib.crc32(padded[i : i + 3].encode("utf-8")) % self.TEXT_DIM] += 1.0
        return out
