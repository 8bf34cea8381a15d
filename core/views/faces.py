"""What Try shows for a photo of faces: each face's answer in words, and the photo with a named box on every face.

``predict`` gives one ``Prediction`` per face of a photo (``face`` holds its box in the decoded photo's
pixels and its number); ``answer_faces`` turns them into one answer per face, ``draw_faces`` draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from core.prediction import Prediction

UNKNOWN = "unknown"
NO_MATCH = "no match"
# Box colours: a named face, a face unlike everyone labelled, a face near someone but below every threshold.
COLOURS = {"named": (22, 163, 74), UNKNOWN: (234, 88, 12), NO_MATCH: (100, 116, 139)}
MAX_SIDE = 1600  # the drawn photo's longest side: enough for a page, a fraction of a camera's pixels


@dataclass(frozen=True)
class FaceAnswer:
    """One face of a photo: its number, box (left, top, right, bottom, in the photo's pixels), what the model says and how sure."""

    number: int
    box: tuple[int, int, int, int]
    name: str  # the person's name, UNKNOWN or NO_MATCH
    score: float | None  # the best person's probability; None without any concept
    outcome: str  # "named", UNKNOWN or NO_MATCH: which colour the box gets

    @property
    def label(self) -> str:
        """What the box says: "obama 73%", "unknown", "no match"."""
        return f"{self.name} {self.score:.0%}" if self.outcome == "named" and self.score is not None else self.name


def answer_faces(predictions: Sequence[Prediction]) -> list[FaceAnswer]:
    """One answer per face prediction, by face number; predictions without a face (other embedders) are left out."""
    answers = []
    for prediction in predictions:
        face = prediction.face
        if not isinstance(face, dict) or "box" not in face:
            continue
        box = tuple(int(v) for v in face["box"])
        if len(box) != 4:
            raise ValueError(f"a face's box holds left, top, right and bottom, not {face['box']}")
        score = prediction.concepts[0].score if prediction.concepts else None
        if prediction.unknown:
            name, outcome = UNKNOWN, UNKNOWN
        elif prediction.matches:
            name, outcome = prediction.matches[0], "named"
            score = next(c.score for c in prediction.concepts if c.concept == name)
        else:
            name, outcome = NO_MATCH, NO_MATCH
        answers.append(FaceAnswer(int(face.get("number", len(answers) + 1)), box, name, score, outcome))
    return sorted(answers, key=lambda a: a.number)


def draw_faces(image: Image.Image, answers: Sequence[FaceAnswer], original_size: tuple[int, int] | None = None) -> Image.Image:
    """A copy of the photo, at most ``MAX_SIDE`` pixels long, with each face's box and label drawn on it.

    Args:
        image: the photo as decoded (upright, RGB).
        answers: from ``answer_faces``; boxes in the pixels of a photo of ``original_size``.
        original_size: (width, height) the boxes refer to; the image's own size by default.
    """
    width, height = original_size or image.size
    if width < 1 or height < 1:
        raise ValueError(f"a photo's size must be positive, not {width} x {height}")
    out = image.convert("RGB")
    if max(out.size) > MAX_SIDE:
        out.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    else:
        out = out.copy()
    sx, sy = out.width / width, out.height / height
    line = max(2, round(max(out.size) / 250))
    font = ImageFont.load_default(size=max(12, round(max(out.size) / 40)))
    draw = ImageDraw.Draw(out)
    for answer in answers:
        left, top, right, bottom = answer.box
        box = (round(left * sx), round(top * sy), round(right * sx) - 1, round(bottom * sy) - 1)
        colour = COLOURS[answer.outcome]
        draw.rectangle(box, outline=colour, width=line)
        text = f"{answer.number}: {answer.label}"
        x0, t, r, b = draw.textbbox((0, 0), text, font=font)
        pad = line
        label_height = b - t + 2 * pad
        # Above the box where there is room, else inside its top edge.
        y = box[1] - label_height if box[1] - label_height >= 0 else box[1] + line
        x = min(max(0, box[0]), max(0, out.width - (r - x0) - 2 * pad))
        draw.rectangle((x, y, x + r - x0 + 2 * pad, y + label_height), fill=colour)
        draw.text((x + pad - x0, y + pad - t), text, fill=(255, 255, 255), font=font)
    return out
