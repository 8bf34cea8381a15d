"""Batch preprocessing gives exactly what torchvision's per-image transforms give."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from core.preprocess import BatchPreprocess, build_batch_preprocess

from .photos import load_photo, photo_variants


def _images() -> list[Image.Image]:
    return [
        *photo_variants("coffee", 2),
        load_photo("astronaut"),
        Image.new("L", (300, 200), 90),
        Image.new("RGBA", (50, 80), (1, 2, 3, 4)),
    ]


@pytest.mark.parametrize(
    "transform, batched",
    [
        (
            transforms.Compose(
                [transforms.Resize(224), transforms.CenterCrop(224), transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)]
            ),
            True,
        ),
        (
            transforms.Compose(
                [transforms.Resize((64, 64)), transforms.ToTensor(), transforms.Normalize([0.48, 0.45, 0.40], [0.26, 0.26, 0.27])]
            ),
            True,
        ),
        (transforms.Compose([transforms.Resize((32, 32)), transforms.ToTensor()]), False),
    ],
)
def test_batch_matches_per_image(transform, batched):
    images = [image.convert("RGB") for image in _images()]
    batch = build_batch_preprocess(transform)
    assert isinstance(batch, BatchPreprocess) == batched
    expected = torch.stack([transform(image) for image in images])
    np.testing.assert_allclose(batch(images).numpy(), expected.numpy(), atol=1e-5)


def test_open_clip_transform_is_batched():
    import open_clip

    _, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    batch = build_batch_preprocess(preprocess)
    images = [image.convert("RGB") for image in _images()]
    assert isinstance(batch, BatchPreprocess)
    np.testing.assert_allclose(batch(images).numpy(), torch.stack([preprocess(i) for i in images]).numpy(), atol=1e-5)
