"""Real photos for tests: crops and flips of scikit-image's bundled pictures, saved as files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

# Three colours a tiny embedder tells apart at once: the concepts of the small colour projects in tests.
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def load_photo(name: str) -> Image.Image:
    """One of skimage.data's bundled photos (``chelsea``, ``coffee``, ``astronaut``, ``rocket``…) as RGB."""
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def photo_variants(name: str, count: int, seed: int = 0) -> list[Image.Image]:
    """``count`` different random crops (70 to 95 % of each side), some mirrored."""
    photo = load_photo(name)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        scale = rng.uniform(0.7, 0.95)
        w, h = int(photo.width * scale), int(photo.height * scale)
        x, y = rng.integers(0, photo.width - w + 1), rng.integers(0, photo.height - h + 1)
        crop = photo.crop((x, y, x + w, y + h))
        out.append(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop)
    return out


def save_photo_folders(root: Path, concepts: dict[str, str], count: int, seed: int = 0) -> Path:
    """Write ``root/<concept>/<i>.jpg`` for each concept -> skimage photo name; return root."""
    for offset, (concept, photo) in enumerate(concepts.items()):
        folder = root / concept
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(photo_variants(photo, count, seed + offset)):
            image.save(folder / f"{photo}-{i}.jpg", quality=90)
    return root


def solid_image(colour: tuple[int, int, int], size: int = 64, noise: int = 20, seed: int = 0) -> Image.Image:
    """A noisy solid-colour image: cheap, distinct fixtures for the ``tiny`` embedder."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour)[None, None, :] + rng.integers(-noise, noise + 1, (size, size, 3)), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))
