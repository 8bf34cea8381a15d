"""OpenCLIP backend: one model puts images and texts in the same space ("clip"), so zero-shot works.

Weights come from ``core.weights``: a named tag is only ever read from the local cache, a
checkpoint file is read as given, and ``random`` builds the real architecture with weights drawn
from a fixed seed (identical in every process).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

from core.embedders import ClipSpec, Embedder, describe_spec
from core.errors import EmbedderError
from core.weights import resolve_clip_weights

logger = logging.getLogger(__name__)

RANDOM_SEED = 0
# Keys of a pretrained tag's config -> create_model_and_transforms arguments. open_clip applies
# them itself only when given the tag, not the local file we resolved the tag to.
_PREPROCESS_ARGS = {
    "mean": "image_mean",
    "std": "image_std",
    "interpolation": "image_interpolation",
    "resize_mode": "image_resize_mode",
}


class ClipEmbedder(Embedder):
    """An OpenCLIP model on the CPU, in eval mode, with its own preprocessing and tokenizer."""

    def __init__(self, clip: ClipSpec) -> None:
        """Load the model for a canonical clip spec.

        Raises:
            WeightsMissingError: named weights are not in the local cache (checked before any heavy work).
            EmbedderError: the model or checkpoint cannot be loaded.
        """
        self.spec = clip.spec
        self.description = describe_spec(clip.spec)
        self.image_space = "clip"
        self.text_space = "clip"
        checkpoint = resolve_clip_weights(clip.spec)
        try:
            self._model, self._preprocess = _create_model(clip, checkpoint)
            self._tokenizer = open_clip.get_tokenizer(clip.arch)
            dim = int(open_clip.get_model_config(clip.arch)["embed_dim"])
        except Exception as e:
            if clip.is_file:
                message = (
                    f"could not load CLIP {clip.arch} from checkpoint {clip.weights}: {_first_sentence(e)} "
                    f"(is it an OpenCLIP {clip.arch} checkpoint?)"
                )
            else:
                message = f"could not load CLIP {clip.label}: {_first_sentence(e)}"
            raise EmbedderError(message) from e
        self.dims = {"clip": dim}
        size = getattr(self._model.visual, "image_size", None)
        self.image_size = int(min(size)) if isinstance(size, (tuple, list)) else (int(size) if size else None)
        # One forward pass at a time: torch already spreads one pass over every core.
        self._lock = threading.Lock()
        logger.info("CLIP %s ready (%d dims)", clip.label, dim)

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        batch = torch.stack([self._preprocess(image) for image in images])
        with self._lock, torch.inference_mode():
            features = self._model.encode_image(batch, normalize=True)
        return features.float().numpy()

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self._tokenizer(texts)
        with self._lock, torch.inference_mode():
            features = self._model.encode_text(tokens, normalize=True)
        return features.float().numpy()


def _create_model(clip: ClipSpec, checkpoint: str | None) -> tuple[torch.nn.Module, Any]:
    # pretrained_text=False: never let an architecture with a Hugging Face text tower fetch
    # that tower's default weights from the hub.
    if clip.is_random:
        # fork_rng: seed for a deterministic model without disturbing the caller's RNG state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            model, _, preprocess = open_clip.create_model_and_transforms(clip.arch, pretrained=None, pretrained_text=False)
    else:
        kwargs: dict[str, Any] = {}
        if clip.is_tag:
            cfg = open_clip.get_pretrained_cfg(clip.arch, clip.weights)
            kwargs = {arg: cfg[key] for key, arg in _PREPROCESS_ARGS.items() if cfg.get(key) is not None}
            if cfg.get("quick_gelu"):
                kwargs["force_quick_gelu"] = True  # e.g. OpenAI weights on a plain ViT-B-32 config
        model, _, preprocess = open_clip.create_model_and_transforms(clip.arch, pretrained=checkpoint, pretrained_text=False, **kwargs)
    model.eval()
    return model, preprocess


def _first_sentence(error: BaseException) -> str:
    """Keep messages to one line: torch's load errors run over many sentences and lines."""
    text = (str(error).strip().splitlines() or [""])[0].split(". ")[0].rstrip(":. ")[:200]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
