"""Batch image preprocessing for the image embedders (a numpy batch for onnxruntime, a tensor for torch).

torchvision's per-image ``ToTensor`` + ``Normalize`` cost more than the resize before them
(about 14 ms an image on this machine's CPUs, a tenth of a ViT-B-32 forward). Here the PIL
steps still run per image, and the conversion to a normalised float tensor runs once for
the whole batch, with identical results.

That conversion is a table look-up: a uint8 pixel has 256 possible values per channel, so
``(v / 255 - mean) / std`` is computed once for each (in float32, as torch computes it, so
the floats are bit-identical) and gathered with numpy. Four element-wise torch passes become one
gather that needs no thread pool: at batch 1 torch's threads cost more than the arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

_TO_TENSOR_NAMES = frozenset({"ToTensor", "MaybeToTensor"})


@dataclass(frozen=True)
class BatchPreprocess:
    """PIL steps applied per image, then one vectorised uint8 -> normalised float conversion.

    ``to_array`` gives the float32 numpy batch (what onnxruntime takes); calling it gives the same
    batch as a torch tensor, sharing the memory.
    """

    pil_steps: tuple[Callable[[Image.Image], Image.Image], ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"Normalize needs 3 channel means and stds for RGB, got {len(self.mean)} and {len(self.std)}")
        # float32 throughout, as torchvision's ToTensor + Normalize compute it: the same floats, bit for bit.
        values = np.arange(256, dtype=np.float32) / np.float32(255.0)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(3, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(3, 1)
        object.__setattr__(self, "table", np.ascontiguousarray((values[None, :] - mean) / std))

    def to_array(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, 3, h, w) float32, normalised."""
        prepared = []
        for image in images:
            for step in self.pil_steps:
                image = step(image)
            prepared.append(np.asarray(image.convert("RGB")))
        pixels = np.stack(prepared)  # (n, h, w, 3) uint8; raises on images of different sizes
        out = np.empty((len(prepared), 3, *pixels.shape[1:3]), dtype=np.float32)
        for channel in range(3):
            np.take(self.table[channel], pixels[..., channel], out=out[:, channel])
        return out

    def __call__(self, images: Sequence[Image.Image]):
        import torch

        return torch.from_numpy(self.to_array(images))


def build_batch_preprocess(transform: Callable) -> Callable:
    """A batch version of a torchvision ``Compose`` ending in ToTensor + Normalize; else the per-image fallback."""
    steps = list(getattr(transform, "transforms", []))
    if len(steps) >= 2 and type(steps[-2]).__name__ in _TO_TENSOR_NAMES and type(steps[-1]).__name__ == "Normalize":
        normalize = steps[-1]
        mean, std = _three(normalize.mean), _three(normalize.std)
        return BatchPreprocess(tuple(steps[:-2]), mean, std)

    def per_image(images: Sequence[Image.Image]):
        import torch

        return torch.stack([transform(image) for image in images])

    return per_image


def _three(values) -> tuple[float, float, float]:
    """Normalize's mean or std as 3 floats (one value stands for all three channels)."""
    values = [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]
    return tuple(values * 3) if len(values) == 1 else tuple(values)
