"""Batch preprocessing gives exactly what torchvision's per-image transforms give."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from core.embedding.preprocess import BatchPreprocess, build_batch_preprocess

from ..photos import load_photo, photo_variants


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


@pytest.mark.parametrize(
    "mean, std, exception",
    [
        ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5], does_not_raise()),
        ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711], does_not_raise()),
        ([0.5], [0.25], does_not_raise()),  # one value for every channel, as Normalize allows
        ([0.5, 0.5], [0.5, 0.5], pytest.raises(ValueError, match="3 channel means")),  # two channels cannot normalise RGB
    ],
)
def test_lookup_table_is_bit_identical_to_the_float_formula(mean, std, exception):
    transform = transforms.Compose([transforms.CenterCrop(48), transforms.ToTensor(), transforms.Normalize(mean, std)])
    images = [image.convert("RGB") for image in _images()]
    with exception:
        batch = build_batch_preprocess(transform)(images)
        pixels = torch.from_numpy(np.stack([np.asarray(transforms.CenterCrop(48)(i)) for i in images])).permute(0, 3, 1, 2)
        m = torch.tensor(mean).expand(3).reshape(1, 3, 1, 1)
        s = torch.tensor(std).expand(3).reshape(1, 3, 1, 1)
        expected = pixels.float().div(255.0).sub(m).div(s)
        assert batch.dtype == torch.float32 and batch.shape == (len(images), 3, 48, 48)
        assert torch.equal(batch, expected)


@pytest.mark.parametrize(
    "size",
    [(300, 200), (200, 300), (256, 256), (256, 400), (1000, 257), (257, 1000), (100, 80), (4032, 3024), (225, 224)],
)
def test_lite_preprocessing_equals_torchvision_resize_and_center_crop(size):
    """lite writes Resize(256, bicubic) + CenterCrop(224) out in PIL; the tensors must be the very same."""
    from core.embedding.lite import LiteEmbedder

    rng = np.random.default_rng(sum(size))
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    torchvision_steps = transforms.Compose(
        [
            transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
        ]
    )
    ours = LiteEmbedder()._batch_transform([image])
    assert ours.shape == (1, 3, 224, 224)
    assert torch.equal(ours[0], torchvision_steps(image))
