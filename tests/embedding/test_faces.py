"""The ``faces`` embedder on real face photos: its spec, its vectors, what it finds, and that it tells people apart."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise

import numpy as np
import pytest
from PIL import Image

from core.embedding import canonicalize_spec, describe_spaces, describe_spec, has_text_space, load_embedder, splits_into_faces
from core.embedding.faces import FACE_DIM, FaceEmbedder, locate_models
from core.embedding.specs import describe_dims
from core.errors import EmbedderError

from ..faces import (
    ALEX,
    ALEX2,
    BIDEN,
    BIDEN2,
    KIT,
    KIT2,
    KIT_TEST,
    KIT_WITH_ROSE,
    OBAMA,
    OBAMA2,
    OBAMA_AND_BIDEN,
    OBAMA_TEST,
    ROSE,
    ROSE2,
    make_no_face,
    make_tiny_face,
)


@pytest.fixture(scope="module")
def faces() -> FaceEmbedder:
    return load_embedder("faces")


def _embed(embedder: FaceEmbedder, path) -> np.ndarray:
    found = embedder.find_faces(Image.open(path).convert("RGB"))
    assert len(found) == 1, path
    return embedder.embed_faces(found)[0]


@pytest.mark.parametrize(
    ("spec", "expected", "exception"),
    [
        ("faces", "faces", does_not_raise()),
        (" Faces ", "faces", does_not_raise()),
        ("faces:hog", "faces", does_not_raise()),
        ("faces:CNN", "faces:cnn", does_not_raise()),
        ("faces:mtcnn", None, pytest.raises(EmbedderError, match="unknown face detector in embedder 'faces:mtcnn'")),
        ("face", None, pytest.raises(EmbedderError, match="unknown embedder 'face': choose clip, lite, tiny, faces")),
    ],
)
def test_faces_specs(spec, expected, exception):
    with exception as info:
        assert canonicalize_spec(spec) == expected
        assert splits_into_faces(expected) and not has_text_space(expected)
        assert describe_spaces(expected) == ("faces", "faces-text") and describe_dims(expected) == {"faces": FACE_DIM}
        assert "no text space" in describe_spec(expected)
    if info is not None:
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("spec", ["lite", "tiny", "clip"])
def test_other_embedders_keep_whole_images_and_texts(spec):
    assert not splits_into_faces(canonicalize_spec(spec)) and has_text_space(canonicalize_spec(spec))


def test_the_models_are_found_in_the_package_without_pkg_resources():
    files = locate_models()
    assert {name: path.name for name, path in files.items()} == {
        "landmarks": "shape_predictor_5_face_landmarks.dat",
        "resnet": "dlib_face_recognition_resnet_model_v1.dat",
        "cnn": "mmod_human_face_detector.dat",
    }
    assert all(path.stat().st_size > 500_000 for path in files.values())


def test_contract_unit_norm_128_d_float32_and_no_text_space(faces):
    assert (faces.spec, faces.image_space, faces.image_dim, faces.finds_faces, faces.has_text_space) == ("faces", "faces", 128, True, False)
    assert not faces.zero_shot and faces.text_dim == 0
    photos = [Image.open(path).convert("RGB") for path in (OBAMA, BIDEN, ROSE)]
    vectors = faces.embed_images(photos)
    assert vectors.shape == (3, 128) and vectors.dtype == np.float32 and vectors.flags.c_contiguous
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # embed_images is the largest face of each photo, the same vector as finding and embedding it.
    assert np.allclose(vectors[0], _embed(faces, OBAMA), atol=1e-6)
    assert faces.embed_faces([]).shape == (0, 128)
    with pytest.raises(EmbedderError, match="no text space"):
        faces.embed_texts(["a face"])
    with pytest.raises(EmbedderError, match="cannot do zero-shot"):
        faces.build_zero_shot_vectors(["obama"])


@pytest.mark.parametrize(
    ("path", "boxes"),
    [
        (OBAMA, 1),
        (OBAMA_AND_BIDEN, 3),
        (KIT_WITH_ROSE, 2),
        ("no-face", 0),
        ("tiny-face", 1),
    ],
    ids=["one", "three", "two", "none", "tiny"],
)
def test_find_faces_gives_boxes_left_to_right_and_aligned_chips(faces, tmp_path, path, boxes):
    if path == "no-face":
        path = make_no_face(tmp_path / "shapes.jpg")
    elif path == "tiny-face":
        path = make_tiny_face(tmp_path / "tiny.jpg")
    image = Image.open(path).convert("RGB")
    found = faces.find_faces(image)
    assert len(found) == boxes
    assert [face.box[0] for face in found] == sorted(face.box[0] for face in found)
    for face in found:
        left, top, right, bottom = face.box
        assert 0 <= left < right <= image.width and 0 <= top < bottom <= image.height
        assert face.chip.shape == (150, 150, 3) and face.chip.dtype == np.uint8
    if path.name == "tiny.jpg":
        assert 20 <= found[0].size < 40  # found, but smaller than the 40 px ingest trusts


def test_embed_images_of_a_photo_without_a_face_is_refused(faces, tmp_path):
    with pytest.raises(EmbedderError, match="found no face in image 2 of 2"):
        faces.embed_images([Image.open(OBAMA).convert("RGB"), Image.open(make_no_face(tmp_path / "x.jpg")).convert("RGB")])


# (same person, another photo of them, someone else): the two photos of one person are closer.
PAIRS = [
    pytest.param(OBAMA, OBAMA_TEST, BIDEN, id="obama-vs-biden"),
    pytest.param(OBAMA, OBAMA2, ROSE, id="obama-vs-rose"),
    pytest.param(BIDEN, BIDEN2, OBAMA, id="biden-vs-obama"),
    pytest.param(ROSE, ROSE2, KIT, id="rose-vs-kit"),
    pytest.param(ALEX, ALEX2, OBAMA, id="alex-vs-obama"),
    pytest.param(KIT, KIT_TEST, ALEX, id="kit-vs-alex"),
    pytest.param(KIT, KIT2, ROSE, id="kit-vs-rose"),
]


@pytest.mark.parametrize(("anchor", "same", "other"), PAIRS)
def test_the_same_person_is_closer_than_someone_else(faces, anchor, same, other):
    a, b, c = (_embed(faces, path) for path in (anchor, same, other))
    assert float(a @ b) > float(a @ c) + 0.05


def test_in_a_group_photo_each_face_matches_its_own_person(faces):
    group = faces.find_faces(Image.open(OBAMA_AND_BIDEN).convert("RGB"))
    vectors = faces.embed_faces(group)
    obama, biden = _embed(faces, OBAMA), _embed(faces, BIDEN2)
    assert [int(np.argmax([v @ biden, v @ obama])) for v in vectors[:2]] == [0, 1]  # Biden on the left, Obama beside him


@pytest.mark.slow
def test_the_cnn_detector_finds_the_same_faces(faces):
    cnn = FaceEmbedder("cnn")
    image = Image.open(KIT_WITH_ROSE).convert("RGB")
    found = cnn.find_faces(image)
    assert len(found) == 2 and cnn.spec == "faces:cnn"
    hog = faces.embed_faces(faces.find_faces(image))
    assert np.all(np.sum(cnn.embed_faces(found) * hog, axis=1) > 0.9)  # same people, boxes a little apart


def test_an_unknown_detector_is_refused():
    with pytest.raises(EmbedderError, match="unknown face detector 'yolo'"):
        FaceEmbedder("yolo")
