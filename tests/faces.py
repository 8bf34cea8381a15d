"""Face photos for tests (tests/fixtures/faces: five people, MIT, from the face_recognition project),
and pictures made from them: one without a face, one with a face too small to trust.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

FACES = Path(__file__).parent / "fixtures" / "faces"
OBAMA, OBAMA2, OBAMA_TEST = FACES / "train/obama/obama.jpg", FACES / "train/obama/obama2.jpg", FACES / "test/obama1.jpg"
BIDEN, BIDEN2 = FACES / "train/biden/biden.jpg", FACES / "train/biden/biden2.jpg"
ROSE, ROSE2 = FACES / "train/rose_leslie/img1.jpg", FACES / "train/rose_leslie/img2.jpg"
ALEX, ALEX2 = FACES / "train/alex_lacamoire/img1.jpg", FACES / "train/alex_lacamoire/img2.jpg"
KIT, KIT2, KIT_TEST = FACES / "train/kit_harington/john1.jpg", FACES / "train/kit_harington/john2.jpg", FACES / "test/johnsnow_test1.jpg"
OBAMA_AND_BIDEN = FACES / "test/obama_and_biden.jpg"  # three faces: Biden, Obama and a third person
KIT_WITH_ROSE = FACES / "test/kit_with_rose.jpg"  # Rose Leslie on the left, Kit Harington on the right
VIDEO = FACES / "obama_then_biden.mp4"  # 4 s, 320 x 320: Obama for 2 s, then Biden for 2 s


def make_no_face(path: Path) -> Path:
    """A picture of shapes on a gradient, with no face in it."""
    image = Image.linear_gradient("L").resize((400, 300)).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 40, 160, 160), fill=(200, 60, 40))
    draw.rectangle((220, 120, 360, 260), fill=(40, 90, 200))
    image.save(path, quality=90)
    return path


def make_tiny_face(path: Path, width: int = 120) -> Path:
    """Obama's photo shrunk to ``width`` px on a grey 240 x 200 picture: a face of about 32 px, found but too small."""
    photo = Image.open(OBAMA).convert("RGB")
    small = photo.resize((width, round(width * photo.height / photo.width)), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (240, 200), (200, 200, 200))
    canvas.paste(small, (60, 20))
    canvas.save(path, quality=95)
    return path
