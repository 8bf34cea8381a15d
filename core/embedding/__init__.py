"""Frozen embedding models: the ``Embedder`` interface, spec strings, and loading a backend by spec.

``load_embedder("clip" | "lite" | "tiny" | "faces" | "clip:ARCH:TAG")`` returns a loaded, cached embedder whose
``embed_images`` / ``embed_texts`` give L2-normalised float32 arrays of shape ``(n, d)``.
"""

from core.embedding.base import (
    DEFAULT_CLIP_ARCH,
    DEFAULT_CLIP_TAG,
    DEFAULT_EMBEDDER,
    RANDOM_TAG,
    ZERO_SHOT_TEMPLATES,
    ClipSpec,
    Embedder,
    make_probe_images,
)
from core.embedding.registry import clear_embedder_cache, describe_embedders, load_embedder
from core.embedding.specs import canonicalize_spec, describe_spaces, describe_spec, has_text_space, parse_clip_spec, splits_into_faces
from core.embedding.tiny import TinyEmbedder

__all__ = [
    "DEFAULT_CLIP_ARCH",
    "DEFAULT_CLIP_TAG",
    "DEFAULT_EMBEDDER",
    "RANDOM_TAG",
    "ZERO_SHOT_TEMPLATES",
    "ClipSpec",
    "Embedder",
    "TinyEmbedder",
    "canonicalize_spec",
    "clear_embedder_cache",
    "describe_embedders",
    "describe_spaces",
    "describe_spec",
    "has_text_space",
    "load_embedder",
    "make_probe_images",
    "parse_clip_spec",
    "splits_into_faces",
]
