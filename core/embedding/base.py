"""The ``Embedder`` interface every backend implements, and the parsed form of a ``clip`` spec.

Every embedder returns L2-normalised ``float32`` arrays of shape ``(n, d)``; batching, empty
inputs and normalisation live here, so a backend only encodes one batch. Nothing here imports a
backend, torch or open_clip.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import EmbedderError

DEFAULT_EMBEDDER = "clip"
DEFAULT_CLIP_ARCH = "ViT-B-32"
DEFAULT_CLIP_TAG = "laion2b_s34b_b79k"
RANDOM_TAG = "random"
ZERO_SHOT_TEMPLATES = ("a photo of a {}.", "a picture of {}.", "an image of {}.", "a close-up photo of a {}.", "{}")
_ZERO_NORM = 1e-12


@dataclass(frozen=True)
class ClipSpec:
    """A parsed, canonical ``clip:ARCH:WEIGHTS`` spec.

    ``weights`` is a pretrained tag (``laion2b_s34b_b79k``), ``random`` or an absolute file path.
    """

    arch: str
    weights: str

    @property
    def spec(self) -> str:
        return f"clip:{self.arch}:{self.weights}"

    @property
    def is_random(self) -> bool:
        return self.weights == RANDOM_TAG

    @property
    def is_file(self) -> bool:
        return Path(self.weights).is_absolute()

    @property
    def is_tag(self) -> bool:
        return not (self.is_random or self.is_file)

    @property
    def label(self) -> str:
        """Return ``ARCH/TAG`` as used in messages (``ViT-B-32/laion2b_s34b_b79k``)."""
        return f"{self.arch}/{self.weights}"


class Embedder(abc.ABC):
    """A frozen model mapping images and texts to L2-normalised float32 vectors.

    Subclasses set the attributes in ``__init__`` and implement ``_encode_images`` and
    ``_encode_texts`` for one batch; batching, empty inputs and normalisation live here.
    A row of length zero (a flat one-colour image or an empty text in ``tiny``) becomes the
    fixed unit vector ``ones(d) / sqrt(d)`` instead of NaN.
    """

    spec: str
    description: str
    image_space: str
    text_space: str
    dims: dict[str, int]
    batch_size: int = 32  # images per forward pass
    text_batch_size: int = 64  # texts per forward pass
    # Shorter image side the model's preprocessing resizes to: decoders may decode large
    # JPEGs straight down to it (draft mode) without changing what the model sees.
    image_size: int | None = None
    # Numeric precision of the forward pass ("fp32", or "int8" for CLIP's fast mode).
    precision: str = "fp32"
    # Lowest cosine between this model's image embeddings and the unmodified model's on the probe
    # images (``make_probe_images``), when a faster rewrite of the model is in use; else 1.0.
    agreement: float = 1.0
    # True for an embedder of faces (``faces``): it finds any number of faces in a photo or a video
    # frame (``find_faces``) and embeds each (``embed_faces``); ingestion stores each face as its own input.
    finds_faces: bool = False

    @property
    def has_text_space(self) -> bool:
        """Whether this embedder embeds texts at all (``faces`` does not)."""
        return True

    @property
    def zero_shot(self) -> bool:
        """True when images and texts share one space, so text prompts can classify images."""
        return self.image_space == self.text_space

    @property
    def loaded_models(self) -> tuple[str, ...]:
        """Which of its models ("image", "text") this embedder has loaded; both, unless a backend loads them lazily."""
        return ("image", "text")

    @property
    def image_dim(self) -> int:
        return self.dims[self.image_space]

    @property
    def text_dim(self) -> int:
        return self.dims.get(self.text_space, 0)  # 0: no text space

    def build_image_graph(self):
        """A torch module, in eval mode, from a preprocessed image batch (n, 3, h, w) to unit vectors: for export.

        Raises:
            EmbedderError: this embedder has no such model (``tiny``).
        """
        raise EmbedderError(f"embedder '{self.spec}' has no image model to export")

    def describe_image_preprocessing(self) -> dict:
        """How a photo becomes the tensor ``build_image_graph`` takes, written down for other programs."""
        raise EmbedderError(f"embedder '{self.spec}' has no image model to export")

    def build_text_graph(self):
        """A torch module, in eval mode, from the tokenizer's inputs (int64 (n, length) each) to unit vectors.

        Raises:
            EmbedderError: this embedder has no such model (``tiny``).
        """
        raise EmbedderError(f"embedder '{self.spec}' has no text model to export")

    def describe_text_tokenizer(self) -> dict:
        """The tokenizer ``build_text_graph`` expects: its file (copied beside an export), kind, lengths, and ``inputs``."""
        raise EmbedderError(f"embedder '{self.spec}' has no text model to export")

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed RGB images.

        Args:
            images: PIL images; the caller converts them to RGB (other modes are converted here
                as a fallback, which drops any alpha channel).

        Returns:
            ``(len(images), image_dim)`` float32, C-contiguous, rows of unit length.
        """
        return self.embed_prepared_images(self.prepare_images(images))

    def prepare_images(self, images: Sequence[Image.Image]) -> list:
        """The per-image work before the model (resize, crop, normalise), one result per image.

        Safe to run in any thread, in parallel: a server prepares each request's photos in its own
        thread and hands only the model's part to ``embed_prepared_images``. By default the RGB images.
        """
        return [im if im.mode == "RGB" else im.convert("RGB") for im in images]

    def embed_prepared_images(self, prepared: Sequence) -> np.ndarray:
        """Embed what ``prepare_images`` returned (from any number of calls): as ``embed_images``."""
        return self._run_batches(list(prepared), self._encode_prepared, self.batch_size, self.image_dim)

    def _encode_prepared(self, prepared: list) -> np.ndarray:
        """Raw features for one batch of prepared images; by default they are RGB images."""
        return self._encode_images(prepared)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts.

        Args:
            texts: a sequence of strings (not one bare string).

        Returns:
            ``(len(texts), text_dim)`` float32, C-contiguous, rows of unit length.

        Raises:
            TypeError: ``texts`` is one bare string or holds a non-string.
        """
        items = list(texts) if not isinstance(texts, str) else None
        if items is None or not all(isinstance(text, str) for text in items):
            raise TypeError("embed_texts takes a sequence of strings")
        return self._run_batches(items, self._encode_texts, self.text_batch_size, self.text_dim)

    def build_zero_shot_vectors(self, names: Sequence[str]) -> np.ndarray:
        """Build one text-space vector per concept name for zero-shot classification.

        Each name is put into every template of ``ZERO_SHOT_TEMPLATES`` (underscores read as
        spaces); the prompt embeddings are averaged and normalised again.

        Args:
            names: concept names such as ``"red car"``.

        Returns:
            ``(len(names), d)`` float32 with unit-length rows, comparable to ``embed_images``.

        Raises:
            EmbedderError: this embedder has no shared image/text space.
            ValueError: a name is empty.
        """
        if not self.zero_shot:
            raise EmbedderError(f"embedder '{self.spec}' cannot do zero-shot: its images and texts live in different spaces")
        if isinstance(names, str):
            raise TypeError("build_zero_shot_vectors takes a sequence of names, not one string")
        words = [name.replace("_", " ").strip() for name in names]
        if any(not word for word in words):
            raise ValueError("concept names for zero-shot must not be empty")
        if not words:
            return np.zeros((0, self.text_dim), dtype=np.float32)
        prompts = [template.format(word) for word in words for template in ZERO_SHOT_TEMPLATES]
        vectors = self.embed_texts(prompts).reshape(len(words), len(ZERO_SHOT_TEMPLATES), -1)
        return _normalize_rows(vectors.mean(axis=1), self.text_dim, self.spec)

    @abc.abstractmethod
    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """Return raw (not necessarily normalised) features for one batch of RGB images."""

    @abc.abstractmethod
    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        """Return raw (not necessarily normalised) features for one batch of texts."""

    def _run_batches(self, items: list, encode, batch_size: int, dim: int) -> np.ndarray:
        if not items:
            return np.zeros((0, dim), dtype=np.float32)
        step = max(1, int(batch_size))
        chunks = [np.asarray(encode(items[i : i + step]), dtype=np.float32) for i in range(0, len(items), step)]
        return _normalize_rows(np.concatenate(chunks, axis=0), dim, self.spec)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


def _normalize_rows(x: np.ndarray, dim: int, spec: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != dim:
        raise EmbedderError(f"embedder '{spec}' produced shape {x.shape}, expected (n, {dim})")
    if not np.isfinite(x).all():
        raise EmbedderError(f"embedder '{spec}' produced non-finite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    zero = norms[:, 0] <= _ZERO_NORM
    out = x / np.where(zero[:, None], 1.0, norms)
    if zero.any():
        # A fixed unit vector rather than NaN; for tiny images it is orthogonal to every
        # mean-subtracted (textured) image, so flat images only match each other.
        out[zero] = 1.0 / np.sqrt(dim)
    return np.ascontiguousarray(out, dtype=np.float32)


def make_probe_images() -> list[Image.Image]:
    """Six deterministic 224 px pictures with structure (shapes on textured ground).

    Enough to check that a rewritten model (int8, folded layers) still agrees with the original.
    """
    from PIL import ImageDraw

    rng = np.random.default_rng(0)
    images = []
    for i in range(6):
        pixels = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
        image = Image.fromarray(pixels).resize((224, 224), Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(image)
        x, y = (int(v) for v in rng.integers(10, 120, 2))
        shape = draw.ellipse if i % 2 else draw.rectangle
        shape((x, y, x + 90, y + 90), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        images.append(image)
    return images
