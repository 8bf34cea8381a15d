"""Tests for core.views.faces: each face's answer, and the boxes drawn where the faces are."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise

import numpy as np
import pytest
from PIL import Image

from core.prediction import ConceptScore, Prediction
from core.views.faces import COLOURS, MAX_SIDE, NO_MATCH, UNKNOWN, FaceAnswer, answer_faces, draw_faces

GREY = (128, 128, 128)


def _face(number: int, box, best: str | None = "alice", score: float = 0.8, passes: bool = True, unknown: bool = False) -> Prediction:
    concepts = (
        [ConceptScore(best, score, "prototype", 0.5, passes and not unknown), ConceptScore("bob", 0.1, "prototype", 0.5)] if best else []
    )
    return Prediction(f"team.jpg#face{number}", "image", concepts, 1, unknown=unknown, face={"box": list(box), "number": number, "of": 3})


@pytest.mark.parametrize(
    "predictions, expected, expectation",
    [
        (
            [_face(2, (50, 10, 90, 60), unknown=True), _face(1, (5, 10, 40, 50)), _face(3, (100, 10, 140, 50), passes=False, score=0.4)],
            [(1, "alice", "named", "alice 80%"), (2, UNKNOWN, UNKNOWN, UNKNOWN), (3, NO_MATCH, NO_MATCH, NO_MATCH)],
            does_not_raise(),
        ),
        ([_face(1, (5, 10, 40, 50), best=None)], [(1, NO_MATCH, NO_MATCH, NO_MATCH)], does_not_raise()),  # a model without concepts
        ([Prediction("red.png", "image", [], 1)], [], does_not_raise()),  # not a face: left out
        ([_face(1, (5, 10, 40))], None, pytest.raises(ValueError, match="box")),
    ],
)
def test_answer_faces(predictions, expected, expectation):
    with expectation:
        answers = answer_faces(predictions)
        assert [(a.number, a.name, a.outcome, a.label) for a in answers] == expected


@pytest.mark.parametrize(
    "size, box, scale",
    [
        ((400, 300), (100, 80, 200, 200), 1.0),
        ((3200, 2400), (800, 640, 1600, 1600), MAX_SIDE / 3200),  # a camera's photo is drawn smaller, its boxes with it
    ],
)
def test_boxes_are_drawn_where_the_faces_are(size, box, scale):
    photo = Image.new("RGB", size, GREY)
    answers = [FaceAnswer(1, box, "alice", 0.8, "named"), FaceAnswer(2, (0, 0, 10, 10), UNKNOWN, None, UNKNOWN)]
    drawn = draw_faces(photo, answers)
    assert max(drawn.size) == max(round(s * scale) for s in size) and photo.getpixel((box[0], box[1] + 50)) == GREY  # a copy
    pixels = np.asarray(drawn)
    left, top, right, bottom = (round(v * scale) for v in box)
    middle = (top + bottom) // 2
    assert tuple(pixels[middle, left]) == COLOURS["named"] and tuple(pixels[middle, right - 1]) == COLOURS["named"]
    assert tuple(pixels[bottom - 1, (left + right) // 2]) == COLOURS["named"]
    assert tuple(pixels[middle, left - 2]) == GREY and tuple(pixels[middle, right + 2]) == GREY  # outside the box: the photo
    assert tuple(pixels[middle, (left + right) // 2]) == GREY  # the face itself is not covered
    assert tuple(pixels[5 * drawn.height // 1000 + 3, 1]) == COLOURS[UNKNOWN]  # the unknown face's box, at the corner


@pytest.mark.parametrize("size", [(0, 10), (10, 0)])
def test_draw_faces_refuses_a_photo_of_no_size(size):
    with pytest.raises(ValueError, match="size"):
        draw_faces(Image.new("RGB", (10, 10)), [], original_size=size)


def test_a_real_group_photo_gets_a_named_box_on_each_face(tmp_path):
    from core.embedding.faces import FaceEmbedder
    from tests.faces import KIT_WITH_ROSE

    photo = Image.open(KIT_WITH_ROSE).convert("RGB")
    found = FaceEmbedder().find_faces(photo)
    names = ["rose_leslie", "kit_harington"]
    predictions = [_face(i + 1, face.box, best=name) for i, (face, name) in enumerate(zip(found, names))]
    drawn = np.asarray(draw_faces(photo, answer_faces(predictions)))
    scale = drawn.shape[1] / photo.width
    for face in found:
        left, top, right, bottom = (round(v * scale) for v in face.box)
        assert tuple(drawn[(top + bottom) // 2, left]) == COLOURS["named"]
        assert tuple(drawn[(top + bottom) // 2, right - 1]) == COLOURS["named"]
