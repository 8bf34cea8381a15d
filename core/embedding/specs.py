"""Embedder specs: ``clip``, ``clip:ARCH:TAG``, ``clip:ARCH:/path``, ``clip:ARCH:random``, ``lite``, ``tiny``, ``faces``, ``faces:cnn``.

Parsing and describing a spec never loads a model; only a non-default ``clip`` spec imports
open_clip, to check the architecture and tag against its lists.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.embedding.base import DEFAULT_CLIP_ARCH, DEFAULT_CLIP_TAG, RANDOM_TAG, ClipSpec
from core.errors import EmbedderError

_KINDS_HINT = "choose clip, lite, tiny, faces or clip:ARCH:TAG"


def canonicalize_spec(spec: str) -> str:
    """Return the canonical form of an embedder spec.

    ``clip`` becomes ``clip:ViT-B-32:laion2b_s34b_b79k``; a relative checkpoint path becomes
    absolute; architecture names are matched case-insensitively against ``open_clip.list_models()``
    and tags against open_clip's pretrained tags for that architecture.

    Args:
        spec: ``clip``, ``clip:ARCH:TAG``, ``clip:ARCH:random``, ``clip:ARCH:/path``, ``lite``, ``tiny``,
            ``faces`` (= ``faces:hog``) or ``faces:cnn``.

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
    if kind == "faces":
        detector = rest.strip().lower()
        if detector in ("", "hog"):
            return "faces"
        if detector == "cnn":
            return "faces:cnn"
        raise EmbedderError(f"unknown face detector in embedder '{spec}': write faces (HOG detector) or faces:cnn (CNN detector)")
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


def describe_spaces(spec: str) -> tuple[str, str]:
    """(image space, text space) of a canonical spec's embedder, without loading or importing it.

    The two names are equal when images and texts share one space (CLIP: zero-shot works).
    Listing, planning and labelling need only these names, so they never load a model.
    """
    kind = spec.partition(":")[0]
    if kind in ("lite", "tiny"):
        return f"{kind}-image", f"{kind}-text"
    if kind == "clip":
        return "clip", "clip"
    if kind == "faces":
        return "faces", "faces-text"  # both detectors give the same ResNet's vectors; no text is ever embedded
    raise EmbedderError(f"unknown embedder '{spec}': {_KINDS_HINT}")


def splits_into_faces(spec: str) -> bool:
    """Whether a canonical spec's embedder stores each face of a photo as its own input (``faces``), without loading it."""
    return spec.partition(":")[0] == "faces"


def has_text_space(spec: str) -> bool:
    """Whether a canonical spec's embedder embeds texts at all (``faces`` does not), without loading it."""
    return not splits_into_faces(spec)


# The embedding sizes of the specs whose models are fixed; CLIP's depend on the architecture.
_KNOWN_DIMS = {
    "lite": {"lite-image": 1280, "lite-text": 384},
    "tiny": {"tiny-image": 768, "tiny-text": 256},
    "faces": {"faces": 128},  # no text space, so no size for it
}


def describe_dims(spec: str) -> dict[str, int] | None:
    """Space -> embedding size for ``lite``, ``tiny`` and ``faces`` (known without loading them); None for CLIP."""
    known = _KNOWN_DIMS.get(spec.partition(":")[0] if spec.startswith("faces") else spec)
    return dict(known) if known else None


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
    if canonical.startswith("faces"):
        cnn = canonical == "faces:cnn"
        detector = "its CNN face detector (slower, finds turned and small faces better)" if cnn else "its HOG face detector"
        return (
            f"Face embedder: dlib finds each face with {detector}, aligns it on 5 landmarks and embeds it with its face "
            "ResNet (128-d, 99.38 % on LFW); each face of a photo or video frame is its own input, with its box; no text space."
        )
    clip = parse_clip_spec(canonical)
    if clip.is_random:
        return f"OpenCLIP {clip.arch} with RANDOM weights, for testing only: the weights are random, so its predictions are meaningless."
    if clip.is_file:
        return f"OpenCLIP {clip.arch} with weights from the local checkpoint {clip.weights}; zero-shot works."
    return f"OpenCLIP {clip.arch} pretrained on {clip.weights}: images and texts share one space, so zero-shot works."
