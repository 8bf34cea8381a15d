"""Frozen embedders: the interface, spec parsing, the per-process cache and the ``tiny`` embedder.

An embedder is named by a *spec* string:

- ``clip`` (the default) = ``clip:ViT-B-32:laion2b_s34b_b79k``: OpenCLIP, images and texts in one space;
- ``clip:ARCH:TAG`` with a pretrained tag, ``clip:ARCH:/path/to/checkpoint`` or ``clip:ARCH:random``;
- ``lite``: offline EfficientNet-Lite0 images + all-MiniLM-L6-v2 texts (two spaces, no zero-shot);
- ``tiny``: colour thumbnails and character trigrams, no model at all (tests, slow machines).

Every embedder returns L2-normalised ``float32`` arrays of shape ``(n, d)``. This module imports
neither torch nor open_clip at import time: the backends are imported when first loaded.
"""

from __future__ import annotations

import abc
import logging
import os
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import EmbedderError

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "clip"
DEFAULT_CLIP_ARCH = "ViT-B-32"
DEFAULT_CLIP_TAG = "laion2b_s34b_b79k"
RANDOM_TAG = "random"
ZERO_SHOT_TEMPLATES = ("a photo of a {}.", "a picture of {}.", "an image of {}.", "a close-up photo of a {}.", "{}")
_KINDS_HINT = "choose clip, lite, tiny or clip:ARCH:TAG"
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

    @property
    def zero_shot(self) -> bool:
        """True when images and texts share one space, so text prompts can classify images."""
        return self.image_space == self.text_space

    @property
    def image_dim(self) -> int:
        return self.dims[self.image_space]

    @property
    def text_dim(self) -> int:
        return self.dims[self.text_space]

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed RGB images.

        Args:
            images: PIL images; the caller converts them to RGB (other modes are converted here
                as a fallback, which drops any alpha channel).

        Returns:
            ``(len(images), image_dim)`` float32, C-contiguous, rows of unit length.
        """
        items = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
        return self._run_batches(items, self._encode_images, self.batch_size, self.image_dim)

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


class TinyEmbedder(Embedder):
    """A crude, very fast embedder with no model: colour thumbnails and hashed character trigrams."""

    THUMB = 16
    TEXT_DIM = 256

    def __init__(self) -> None:
        self.spec = "tiny"
        self.description = describe_spec("tiny")
        self.image_space = "tiny-image"
        self.text_space = "tiny-text"
        self.dims = {self.image_space: self.THUMB * self.THUMB * 3, self.text_space: self.TEXT_DIM}
        self.image_size = self.THUMB

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


def canonicalize_spec(spec: str) -> str:
    """Return the canonical form of an embedder spec.

    ``clip`` becomes ``clip:ViT-B-32:laion2b_s34b_b79k``; a relative checkpoint path becomes
    absolute; architecture names are matched case-insensitively against ``open_clip.list_models()``
    and tags against open_clip's pretrained tags for that architecture.

    Args:
        spec: ``clip``, ``clip:ARCH:TAG``, ``clip:ARCH:random``, ``clip:ARCH:/path``, ``lite`` or ``tiny``.

    Returns:
        The canonical spec, the key of the embedder cache.

    Raises:
        EmbedderError: one line naming the spec: unknown kind, architecture, tag or missing file.
    """
    if not isinstance(spec, str):
        raise EmbedderError(f"unknown embedder {spec!r}: {_KINDS_HINT}")
    text = spec.strip()
    kind, _, rest = text.partition(":")
    kind = kind.lower()
    if kind in ("lite", "tiny") and not rest:
        return kind
    if kind != "clip":
        raise EmbedderError(f"unknown embedder '{spec}': {_KINDS_HINT}")
    if not rest:
        return f"clip:{DEFAULT_CLIP_ARCH}:{DEFAULT_CLIP_TAG}"
    arch, sep, weights = rest.partition(":")
    if not sep or not arch.strip() or not weights.strip():
        raise EmbedderError(f"incomplete embedder '{spec}': write clip:ARCH:TAG, e.g. clip:ViT-B-32:laion2b_s34b_b79k")
    if (arch.strip(), weights.strip()) == (DEFAULT_CLIP_ARCH, DEFAULT_CLIP_TAG):
        return f"clip:{DEFAULT_CLIP_ARCH}:{DEFAULT_CLIP_TAG}"  # known good: no need to import open_clip (and torch)
    return _canonicalize_clip(spec, arch.strip(), weights.strip()).spec


def parse_clip_spec(spec: str) -> ClipSpec:
    """Canonicalise a ``clip`` spec and split it into architecture and weights.

    Raises:
        EmbedderError: the spec is invalid or not a clip spec.
    """
    canonical = canonicalize_spec(spec)
    if not canonical.startswith("clip:"):
        raise EmbedderError(f"embedder '{spec}' is not a CLIP embedder")
    _, arch, weights = canonical.split(":", 2)
    return ClipSpec(arch=arch, weights=weights)


def _canonicalize_clip(spec: str, arch: str, weights: str) -> ClipSpec:
    import open_clip  # deferred: pulls in torch, and only clip specs need it

    by_lower = {name.lower(): name for name in open_clip.list_models()}
    arch_name = by_lower.get(arch.lower())
    if arch_name is None:
        raise EmbedderError(f"unknown CLIP architecture '{arch}' in embedder '{spec}': use one of open_clip's models, e.g. ViT-B-32")
    if weights.lower() == RANDOM_TAG:
        return ClipSpec(arch_name, RANDOM_TAG)
    tag = weights.lower().replace("-", "_")  # open_clip's own tag normalisation
    if tag in open_clip.list_pretrained_tags_by_model(arch_name):
        return ClipSpec(arch_name, tag)
    path = Path(weights).expanduser()
    if path.is_file():
        return ClipSpec(arch_name, os.path.abspath(path))  # abspath, not resolve(): keep the user's symlinks
    if _looks_like_path(weights):
        raise EmbedderError(f"checkpoint file '{weights}' of embedder '{spec}' is not an existing file")
    tags = open_clip.list_pretrained_tags_by_model(arch_name)
    shown = ", ".join(tags[:6]) + (", ..." if len(tags) > 6 else "")
    raise EmbedderError(
        f"unknown weights '{weights}' for CLIP {arch_name} in embedder '{spec}': "
        f"use random, a checkpoint file, or a pretrained tag ({shown or 'none known'})"
    )


def _looks_like_path(text: str) -> bool:
    return any(c in text for c in "/\\~") or Path(text).suffix in (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def describe_spec(spec: str) -> str:
    """Return one human sentence describing a (valid) spec, without loading any model.

    Raises:
        EmbedderError: the spec is invalid.
    """
    canonical = canonicalize_spec(spec)
    if canonical == "tiny":
        return (
            "Tiny test embedder (16x16 colour thumbnails and character trigrams): instant and needs no model, "
            "but only good for tests and very slow machines."
        )
    if canonical == "lite":
        return (
            "Offline embedder: EfficientNet-Lite0 (ImageNet) for images and all-MiniLM-L6-v2 for texts; "
            "needs no download, but images and texts live in different spaces, so no zero-shot."
        )
    clip = parse_clip_spec(canonical)
    if clip.is_random:
        return f"OpenCLIP {clip.arch} with RANDOM weights, for testing only: the weights are random, so its predictions are meaningless."
    if clip.is_file:
        return f"OpenCLIP {clip.arch} with weights from the local checkpoint {clip.weights}; zero-shot works."
    return f"OpenCLIP {clip.arch} pretrained on {clip.weights}: images and texts share one space, so zero-shot works."


def describe_embedders() -> list[tuple[str, str]]:
    """Return ``(spec, one-line description)`` for every kind of spec, for the README and the UI."""
    return [
        (
            "clip",
            f"Default: same as clip:{DEFAULT_CLIP_ARCH}:{DEFAULT_CLIP_TAG}; best quality, zero-shot works, "
            "weights downloaded once with `python -m core models download clip`.",
        ),
        (
            "clip:ARCH:TAG",
            "Any OpenCLIP architecture with one of its pretrained tags (e.g. clip:ViT-B-16:laion2b_s34b_b88k); weights downloaded once.",
        ),
        ("clip:ARCH:/path", "An OpenCLIP architecture with weights from a local checkpoint file; no download."),
        ("clip:ARCH:random", "An OpenCLIP architecture with random weights: for tests only, predictions are meaningless."),
        ("lite", describe_spec("lite")),
        ("tiny", describe_spec("tiny")),
    ]


_CACHE: dict[str, Embedder] = {}
_CACHE_LOCK = threading.Lock()
_LOAD_LOCKS: dict[str, threading.Lock] = {}


def load_embedder(spec: str) -> Embedder:
    """Return the embedder for ``spec``, loading its model once per process.

    Thread-safe: concurrent callers with the same canonical spec wait for one load and get the
    same object; different specs load in parallel. Failed loads are not cached.

    Raises:
        WeightsMissingError: named CLIP weights are not on this machine (never downloaded here).
        EmbedderError: the spec is invalid or the model cannot be loaded.
    """
    canonical = canonicalize_spec(spec)
    with _CACHE_LOCK:
        if canonical in _CACHE:
            return _CACHE[canonical]
        load_lock = _LOAD_LOCKS.setdefault(canonical, threading.Lock())
    with load_lock:
        with _CACHE_LOCK:
            if canonical in _CACHE:
                return _CACHE[canonical]
        embedder = _create_embedder(canonical)
        with _CACHE_LOCK:
            _CACHE[canonical] = embedder
    logger.info("loaded embedder %s", canonical)
    return embedder


def clear_embedder_cache(spec: str | None = None) -> None:
    """Forget one loaded embedder, or all of them (tests, or after replacing a checkpoint on disk).

    Raises:
        EmbedderError: ``spec`` is given but invalid.
    """
    canonical = None if spec is None else canonicalize_spec(spec)
    with _CACHE_LOCK:
        if canonical is None:
            _CACHE.clear()
        else:
            _CACHE.pop(canonical, None)


def _create_embedder(canonical: str) -> Embedder:
    if canonical == "tiny":
        return TinyEmbedder()
    try:
        if canonical == "lite":
            from core.lite_embedder import LiteEmbedder

            return LiteEmbedder()
        from core.clip_embedder import ClipEmbedder

        return ClipEmbedder(parse_clip_spec(canonical))
    except EmbedderError:
        raise
    except Exception as e:  # a backend failing in an unforeseen way still gets a one-line message
        raise EmbedderError(f"could not load embedder '{canonical}': {type(e).__name__}: {e}") from e
