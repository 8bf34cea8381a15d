"""The ``faces`` embedder: dlib finds faces, aligns each on its five landmarks and embeds it (128-d).

The models ship in the registry package ``face-recognition-models`` (dlib's face recognition
ResNet, 99.38 % on LFW, its 5-point landmark model and its CNN face detector); dlib itself comes as
the prebuilt wheel ``dlib-bin``. Nothing is downloaded.

One photo holds any number of faces, so this embedder works on faces, not on whole images:
``find_faces`` detects and aligns them (dlib's HOG detector, or its CNN detector with ``faces:cnn``)
and ``embed_faces`` embeds the aligned chips. ``core/ingestion.py`` makes each face its own input.
``embed_images`` embeds each image by its largest face, for callers that want one vector per image.
There is no text space: ``embed_texts`` refuses.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.embedding.base import Embedder
from core.embedding.specs import describe_dims, describe_spaces, describe_spec
from core.errors import EmbedderError

logger = logging.getLogger(__name__)

FACE_DIM = 128
CHIP_SIZE = 150  # the aligned face the ResNet takes (dlib's own size for it)
CHIP_PADDING = 0.25  # dlib's default margin around the landmarks
# The detector's image: a larger photo is scaled down to this long side to find its faces (its landmarks
# and chips are still taken at full resolution). Smaller photos are upsampled once, so the HOG
# detector (an 80 px window) finds faces down to about 40 px, and thumbnails twice (20 px), which
# costs no more than once for a photo of twice their size: a small face there is found, and refused.
DETECT_MAX_SIDE = 2048
UPSAMPLE_BELOW = ((320, 2), (1024, 1))  # (long side at most, times upsampled)


@dataclass(frozen=True)
class Face:
    """One face found in an image: its box (left, top, right, bottom, in the image's pixels) and aligned chip."""

    box: tuple[int, int, int, int]
    chip: np.ndarray  # (CHIP_SIZE, CHIP_SIZE, 3) uint8, aligned on the five landmarks

    @property
    def size(self) -> int:
        """The face's size in pixels: the shorter side of its box."""
        left, top, right, bottom = self.box
        return int(min(right - left, bottom - top))


def locate_models() -> dict[str, Path]:
    """The model files inside ``face-recognition-models``, without importing it.

    Its own location functions import ``pkg_resources``, which setuptools 81 and later no longer
    ship, so the files are found beside the package instead.

    Raises:
        EmbedderError: the package is not installed, or a file is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError("embedder 'faces' needs the package face-recognition-models: pip install face-recognition-models==0.3.0")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    files = {
        "landmarks": folder / "shape_predictor_5_face_landmarks.dat",
        "resnet": folder / "dlib_face_recognition_resnet_model_v1.dat",
        "cnn": folder / "mmod_human_face_detector.dat",
    }
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise EmbedderError(f"embedder 'faces' is missing its model file {missing[0]}: reinstall face-recognition-models")
    return files


class FaceEmbedder(Embedder):
    """dlib's face detector, 5-point alignment and face ResNet: one 128-d vector per face."""

    finds_faces = True
    batch_size = 16  # faces per call of the ResNet

    def __init__(self, detector: str = "hog") -> None:
        if detector not in ("hog", "cnn"):
            raise EmbedderError(f"unknown face detector '{detector}' in embedder 'faces': use faces (HOG) or faces:cnn")
        self.detector = detector
        self.spec = "faces" if detector == "hog" else "faces:cnn"
        self.description = describe_spec(self.spec)
        self.image_space, self.text_space = describe_spaces(self.spec)
        self.dims = describe_dims(self.spec)
        self.image_size = None  # faces need the photo's own resolution: no reduced decoding
        self._models: dict | None = None
        self._lock = threading.Lock()  # dlib's models are not documented as thread-safe: one call at a time

    @property
    def has_text_space(self) -> bool:
        return False

    @property
    def loaded_models(self) -> tuple[str, ...]:
        return ("image",) if self._models is not None else ()

    def _load(self) -> dict:
        if self._models is None:
            try:
                import dlib
            except ImportError as e:
                raise EmbedderError("embedder 'faces' needs dlib: pip install dlib-bin==20.0.1.post1") from e
            files = locate_models()
            try:
                models = {
                    "landmarks": dlib.shape_predictor(str(files["landmarks"])),
                    "resnet": dlib.face_recognition_model_v1(str(files["resnet"])),
                    "detect": (
                        dlib.get_frontal_face_detector() if self.detector == "hog" else dlib.cnn_face_detection_model_v1(str(files["cnn"]))
                    ),
                    "dlib": dlib,
                }
            except RuntimeError as e:
                raise EmbedderError(f"could not load the face models of embedder '{self.spec}': {e}") from e
            self._models = models
        return self._models

    def find_faces(self, image: Image.Image) -> list[Face]:
        """The faces in an RGB image, left to right, each with its box and its aligned chip (any size; none when none)."""
        rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        height, width = rgb.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(width, height))
        small = rgb
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
        long_side = max(small.shape[:2])
        upsample = next((times for most, times in UPSAMPLE_BELOW if long_side <= most), 0)
        with self._lock:
            models = self._load()
            dlib = models["dlib"]
            found = models["detect"](small, upsample)
            rects = [r.rect if self.detector == "cnn" else r for r in found]
            faces = []
            for rect in rects:
                box = _scale_box(rect, 1.0 / scale, width, height)
                if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                    continue
                left, top, right, bottom = box
                shape = models["landmarks"](rgb, dlib.rectangle(left, top, right - 1, bottom - 1))
                chip = np.asarray(dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING), dtype=np.uint8)
                faces.append(Face(box, chip))
        return sorted(faces, key=lambda face: (face.box[0], face.box[1]))

    def embed_faces(self, faces: Sequence[Face]) -> np.ndarray:
        """Embed faces from ``find_faces``: ``(len(faces), 128)`` float32, rows of unit length."""
        return self._run_batches([face.chip for face in faces], self._encode_chips, self.batch_size, FACE_DIM)

    def _encode_chips(self, chips: list[np.ndarray]) -> np.ndarray:
        with self._lock:
            resnet = self._load()["resnet"]
            return np.asarray(resnet.compute_face_descriptor([np.ascontiguousarray(c) for c in chips]), dtype=np.float32)

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """Each image by its largest face.

        Raises:
            EmbedderError: an image holds no face (ingestion finds faces itself and says so per file).
        """
        chips = []
        for i, image in enumerate(images):
            faces = self.find_faces(image)
            if not faces:
                raise EmbedderError(f"embedder '{self.spec}' found no face in image {i + 1} of {len(images)}")
            chips.append(max(faces, key=lambda face: face.size).chip)
        return self._encode_chips(chips)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise EmbedderError(f"embedder '{self.spec}' has no text space: it embeds the faces in photos and videos, not texts")

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        raise EmbedderError(f"embedder '{self.spec}' has no text space")


def _scale_box(rect, factor: float, width: int, height: int) -> tuple[int, int, int, int]:
    """A detector rectangle in the full image's pixels, clipped to the image."""
    left, top = max(0, round(rect.left() * factor)), max(0, round(rect.top() * factor))
    right, bottom = min(width, round((rect.right() + 1) * factor)), min(height, round((rect.bottom() + 1) * factor))
    return int(left), int(top), int(right), int(bottom)
