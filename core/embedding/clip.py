"""OpenCLIP backend: one model puts images and texts in the same space ("clip"), so zero-shot works.

Weights come from ``core.embedding.weights``: a named tag is only ever read from the local cache, a
checkpoint file is read as given, and ``random`` builds the real architecture with weights drawn
from a fixed seed (identical in every process).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

from core.embedding.base import ClipSpec, Embedder, make_probe_images
from core.embedding.preprocess import build_batch_preprocess
from core.embedding.specs import describe_spaces, describe_spec
from core.embedding.weights import resolve_clip_weights
from core.errors import EmbedderError

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
        self._clip = clip
        self.description = describe_spec(clip.spec)
        self.image_space, self.text_space = describe_spaces(clip.spec)
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
        self._batch_preprocess = build_batch_preprocess(self._preprocess)
        self._model, self.precision, self.agreement = _choose_precision(self._model, self._preprocess, self._tokenizer)
        size = getattr(self._model.visual, "image_size", None)
        self.image_size = int(min(size)) if isinstance(size, (tuple, list)) else (int(size) if size else None)
        # One forward pass at a time: torch already spreads one pass over every core.
        self._lock = threading.Lock()
        logger.info("CLIP %s ready (%d dims, %s, agreement with fp32 %.4f)", clip.label, dim, self.precision, self.agreement)

    def build_image_graph(self) -> torch.nn.Module:
        # The fp32 model, whatever this process runs: int8 layers do not export, and fp32 is the reference.
        model = self._model if self.precision == "fp32" else _create_model(self._clip, resolve_clip_weights(self.spec))[0]
        return _ImageGraph(model).eval()

    def describe_image_preprocessing(self) -> dict:
        steps = {type(step).__name__: step for step in getattr(self._preprocess, "transforms", [])}
        resize, crop, normalize = steps.get("Resize"), steps.get("CenterCrop"), steps.get("Normalize")
        if resize is None or crop is None or normalize is None:
            raise EmbedderError(f"CLIP {self.spec}: its preprocessing is not resize, crop and normalize; cannot describe it")
        size = resize.size if isinstance(resize.size, int) else min(resize.size)
        crop_size = crop.size[0] if isinstance(crop.size, (tuple, list)) else int(crop.size)
        return {
            "convert": "RGB",
            "resize_short_side": int(size),
            "interpolation": str(resize.interpolation.value),
            "center_crop": int(crop_size),
            "scale": "pixel / 255",
            "mean": [float(v) for v in normalize.mean],
            "std": [float(v) for v in normalize.std],
            "layout": "NCHW float32",
        }

    def build_text_graph(self) -> torch.nn.Module:
        model = self._model if self.precision == "fp32" else _create_model(self._clip, resolve_clip_weights(self.spec))[0]
        return _TextGraph(model).eval()

    def describe_text_tokenizer(self) -> dict:
        from open_clip import tokenizer as clip_tokenizer

        vocabulary = Path(clip_tokenizer.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
        return {
            "file": str(vocabulary),
            "kind": "CLIP byte-pair encoding (open_clip SimpleTokenizer's vocabulary)",
            "max_length": int(getattr(self._tokenizer, "context_length", 77)),
            "padding": "<start_of_text> ids <end_of_text>, zero-padded to max_length",
            "inputs": ["text_ids"],
        }

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        batch = self._batch_preprocess(images)
        with self._lock, torch.inference_mode():
            features = self._model.encode_image(batch, normalize=True)
        return features.float().numpy()

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self._tokenizer(texts)
        with self._lock, torch.inference_mode():
            features = self._model.encode_text(tokens, normalize=True)
        return features.float().numpy()


class _ImageGraph(torch.nn.Module):
    """CLIP's image tower as one exportable graph: preprocessed batch -> unit vectors."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(batch, normalize=True)


class _TextGraph(torch.nn.Module):
    """CLIP's text tower as one exportable graph: token ids (n, 77) -> unit vectors (it needs no mask)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(ids, normalize=True)


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


# -- fast mode ---------------------------------------------------------------------------------

PRECISION_ENV = "CONCEPTLAB_PRECISION"
PRECISIONS = ("auto", "fp32", "int8")
# int8 is used only where its embeddings agree with fp32 at least this well (cosine).
MIN_AGREEMENT = 0.99
_PROBE_TEXTS = ("a photo of a dog.", "a red square on a white table", "The striker scored twice.", "simmer the sauce")


class _LinearSelfAttention(torch.nn.Module):
    """``nn.MultiheadAttention`` (self-attention, no mask) with its projections as ``nn.Linear``.

    Same weights and results; the point is that dynamic int8 quantisation only reaches
    ``nn.Linear`` modules, and in a ViT the attention projections are a third of the work.
    """

    def __init__(self, mha: torch.nn.MultiheadAttention) -> None:
        super().__init__()
        dim = mha.embed_dim
        self.heads = mha.num_heads
        self.batch_first = mha.batch_first
        self.qkv = torch.nn.Linear(dim, 3 * dim, bias=mha.in_proj_bias is not None)
        self.out = torch.nn.Linear(dim, dim, bias=mha.out_proj.bias is not None)
        with torch.no_grad():
            self.qkv.weight.copy_(mha.in_proj_weight)
            self.out.weight.copy_(mha.out_proj.weight)
            if mha.in_proj_bias is not None:
                self.qkv.bias.copy_(mha.in_proj_bias)
            if mha.out_proj.bias is not None:
                self.out.bias.copy_(mha.out_proj.bias)

    def forward(self, query, key=None, value=None, need_weights=False, attn_mask=None, **kwargs):
        if attn_mask is not None or kwargs.get("key_padding_mask") is not None:
            raise ValueError("_LinearSelfAttention only serves unmasked self-attention")
        x = query if self.batch_first else query.transpose(0, 1)
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attended = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        out = self.out(attended.transpose(1, 2).reshape(batch, length, dim))
        return (out if self.batch_first else out.transpose(0, 1)), None


def _quantize(model: torch.nn.Module) -> torch.nn.Module:
    """A copy whose image tower runs in int8: attention projections made linear, then every Linear quantised.

    Only the image tower: images are the hot path (a text costs a fraction of an image), and
    open_clip's text tower reads its weights' dtype, which quantised layers no longer have.
    """
    import copy

    fast = copy.deepcopy(model)
    for module in fast.visual.modules():
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.MultiheadAttention) and child._qkv_same_embed_dim:
                setattr(module, name, _LinearSelfAttention(child))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's notice that it moves to torchao
        fast.visual = torch.ao.quantization.quantize_dynamic(fast.visual, {torch.nn.Linear}, dtype=torch.qint8)
    return fast


def _agreement(reference: torch.nn.Module, candidate: torch.nn.Module, preprocess: Any, tokenizer: Any) -> float:
    """Lowest cosine between the two models' embeddings of the probe images and texts."""
    pixels = torch.stack([preprocess(image) for image in make_probe_images()])
    tokens = tokenizer(list(_PROBE_TEXTS))
    with torch.inference_mode():
        pairs = [
            (reference.encode_image(pixels, normalize=True), candidate.encode_image(pixels, normalize=True)),
            (reference.encode_text(tokens, normalize=True), candidate.encode_text(tokens, normalize=True)),
        ]
    return min(float(torch.nn.functional.cosine_similarity(a.float(), b.float()).min()) for a, b in pairs)


def _choose_precision(model: torch.nn.Module, preprocess: Any, tokenizer: Any) -> tuple[torch.nn.Module, str, float]:
    """The fast int8 model where it agrees with fp32 (or ``CONCEPTLAB_PRECISION`` says so), else fp32."""
    wanted = os.environ.get(PRECISION_ENV, "auto").strip().lower() or "auto"
    if wanted not in PRECISIONS:
        raise EmbedderError(f"{PRECISION_ENV}={wanted!r} is not one of {', '.join(PRECISIONS)}")
    if wanted == "fp32":
        return model, "fp32", 1.0
    fast = _quantize(model)
    agreement = _agreement(model, fast, preprocess, tokenizer)
    if wanted == "int8" or agreement >= MIN_AGREEMENT:
        return fast, "int8", agreement
    logger.warning("int8 CLIP agrees with fp32 only to cosine %.4f (< %.2f): using fp32", agreement, MIN_AGREEMENT)
    return model, "fp32", agreement
