"""A small labelled sample, made on the spot, so a first visit shows the whole loop in a minute.

Images are drawn here (circles and squares in random colours, sizes and places), so the
sample needs no download and no test-only package; texts are a few sentences on two topics.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image, ImageDraw

from core.ingestion import IngestProgress, IngestReport, ingest
from core.inputs import RawInput
from core.storage.projects import Project

SAMPLE_TEXTS = {
    "sports": [
        "The striker scored twice in the second half.",
        "She won the tennis final in three sets.",
        "Our team lost the basketball game by two points.",
        "The marathon runners crossed the finish line at noon.",
        "He hit a home run in the ninth inning.",
        "The goalkeeper saved a penalty in extra time.",
    ],
    "cooking": [
        "Simmer the tomato sauce with garlic for twenty minutes.",
        "Knead the dough and let it rise overnight.",
        "Chop the onions finely and fry them in butter.",
        "Season the soup with salt, pepper and fresh thyme.",
        "Bake the cake at 180 degrees until golden.",
        "Whisk the eggs with sugar before folding in the flour.",
    ],
}
SHAPES = ("circle", "square")
IMAGES_PER_SHAPE = 6
_SIZE = 224


def draw_shape(shape: str, rng: np.random.Generator) -> Image.Image:
    """A filled circle or square of a random colour, size and place on a light, noisy background."""
    background = rng.integers(200, 256, 3)
    pixels = np.clip(background + rng.normal(0, 12, (_SIZE, _SIZE, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    side = int(rng.integers(70, 150))
    x, y = (int(v) for v in rng.integers(5, _SIZE - side - 5, 2))
    colour = tuple(int(v) for v in rng.integers(0, 160, 3))
    draw = ImageDraw.Draw(image)
    box = (x, y, x + side, y + side)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    else:
        draw.rectangle(box, fill=colour)
    return image


def build_sample_inputs(seed: int = 0) -> list[RawInput]:
    """The sample: drawn shapes and topic sentences, each labelled with its concept."""
    rng = np.random.default_rng(seed)
    items = []
    for shape in SHAPES:
        for i in range(IMAGES_PER_SHAPE):
            buffer = io.BytesIO()
            draw_shape(shape, rng).save(buffer, format="PNG")
            data = buffer.getvalue()
            items.append(RawInput(f"sample/{shape}-{i + 1}.png", "image", data, hashlib.sha256(data).hexdigest(), ".png", shape))
    for topic, sentences in SAMPLE_TEXTS.items():
        for i, sentence in enumerate(sentences):
            data = sentence.encode()
            items.append(RawInput(f"sample/{topic}-{i + 1}.txt", "text", data, hashlib.sha256(data).hexdigest(), ".txt", topic, sentence))
    return items


def add_sample_data(project: Project, progress: IngestProgress | None = None) -> IngestReport:
    """Ingest the labelled sample into a project (adding it twice changes nothing)."""
    return ingest(project, build_sample_inputs(), progress=progress)
