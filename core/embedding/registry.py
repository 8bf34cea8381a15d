"""Which backend serves which spec, and the per-process cache of loaded embedders.

An embedder is named by a *spec* string:

- ``clip`` (the default) = ``clip:ViT-B-32:laion2b_s34b_b79k``: OpenCLIP, images and texts in one space;
- ``clip:ARCH:TAG`` with a pretrained tag, ``clip:ARCH:/path/to/checkpoint`` or ``clip:ARCH:random``;
- ``lite``: offline EfficientNet-Lite0 images + all-MiniLM-L6-v2 texts (two spaces, no zero-shot);
- ``tiny``: colour thumbnails and character trigrams, no model at all (tests, slow machines);
- ``faces`` (HOG detector) or ``faces:cnn``: dlib's face ResNet, one vector per face found (no texts).

The backends depend on ``base`` and ``specs`` only; this module is the one place that names them,
and it imports the torch-backed ones (``clip``, ``lite``) and the dlib one (``faces``) only when first loaded.
"""

from __future__ import annotations

import logging
import threading

from core.embedding.base import DEFAULT_CLIP_ARCH, DEFAULT_CLIP_TAG, Embedder
from core.embedding.specs import canonicalize_spec, describe_spec, parse_clip_spec
from core.embedding.tiny import TinyEmbedder
from core.errors import EmbedderError

logger = logging.getLogger(__name__)


def describe_embedders() -> list[tuple[str, str]]:
    """Return ``(spec, one-line description)`` for every kind of spec, for the README and the UI."""
    return [
        (
            "clip",
            f"Default: same as clip:{DEFAULT_CLIP_ARCH}:{DEFAULT_CLIP_TAG}; best quality, zero-shot works, "
            "weights downloaded once with `conceptlab models download clip`.",
        ),
        (
            "clip:ARCH:TAG",
            "Any OpenCLIP architecture with one of its pretrained tags (e.g. clip:ViT-B-16:laion2b_s34b_b88k); weights downloaded once.",
        ),
        ("clip:ARCH:/path", "An OpenCLIP architecture with weights from a local checkpoint file; no download."),
        ("clip:ARCH:random", "An OpenCLIP architecture with random weights: for tests only, predictions are meaningless."),
        ("lite", describe_spec("lite")),
        ("tiny", describe_spec("tiny")),
        ("faces", describe_spec("faces")),
        ("faces:cnn", describe_spec("faces:cnn")),
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


def list_loaded_embedders() -> dict[str, tuple[str, ...]]:
    """The embedders this process has created, by canonical spec, with the models each has loaded so far."""
    with _CACHE_LOCK:
        return {spec: embedder.loaded_models for spec, embedder in _CACHE.items()}


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
            from core.embedding.lite import LiteEmbedder

            return LiteEmbedder()
        if canonical.startswith("faces"):
            from core.embedding.faces import FaceEmbedder

            return FaceEmbedder("cnn" if canonical == "faces:cnn" else "hog")
        from core.embedding.clip import ClipEmbedder

        return ClipEmbedder(parse_clip_spec(canonical))
    except EmbedderError:
        raise
    except Exception as e:  # a backend failing in an unforeseen way still gets a one-line message
        raise EmbedderError(f"could not load embedder '{canonical}': {type(e).__name__}: {e}") from e
