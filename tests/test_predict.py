"""Prediction and similarity search through a real project with the tiny embedder."""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest

from core.errors import InputError, ModelVersionError
from core.ingestion import ingest
from core.inputs import ReadConfig, read_inputs, read_texts
from core.learning import set_threshold, train
from core.prediction import Prediction, predict, search_similar
from core.storage.projects import create_project

from .photos import solid_image

RED, BLUE = (220, 30, 30), (30, 40, 220)


def _red_and_blue(project, folder):
    """Three red and three blue photos, labelled from their folders, into ``project``."""
    for concept, colour in (("red", RED), ("blue", BLUE)):
        (folder / concept).mkdir(parents=True)
        for i in range(3):
            solid_image(colour, seed=i + (10 if concept == "blue" else 0)).save(folder / concept / f"{i}.png")
    ingest(project, read_inputs([folder], ReadConfig(labels_from_folders=True)))
    return project


@pytest.fixture
def trained(tmp_path):
    project = _red_and_blue(create_project("p", "tiny"), tmp_path / "in")
    train(project)
    return project


def test_predict_without_a_model_says_train_first():
    project = create_project("fresh", "tiny")
    with pytest.raises(ModelVersionError, match="no trained model"):
        list(predict(project, read_texts(["hello"])))


def test_bad_inputs_come_back_in_place(trained, tmp_path):
    good = tmp_path / "q.png"
    solid_image(BLUE, seed=99).save(good)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    results = list(predict(trained, read_inputs([bad, good])))
    assert isinstance(results[0], InputError) and "broken.png" in str(results[0])
    assert isinstance(results[1], Prediction) and results[1].concepts[0].concept == "blue"


def test_prediction_explains_itself_with_labelled_neighbours(trained, tmp_path):
    path = tmp_path / "q.png"
    solid_image(RED, seed=77).save(path)
    (result,) = list(predict(trained, read_inputs([path]), explain=2))
    assert len(result.neighbours) == 2 and all(n.labels == {"red": 1} for n in result.neighbours)
    data = result.to_dict()
    assert data["input"] == str(path) and data["head"] == result.concepts[0].head
    assert [c["score"] for c in data["concepts"]] == sorted((c["score"] for c in data["concepts"]), reverse=True)


def test_video_gets_per_frame_scores_with_times(trained, tmp_path):
    from moviepy import ImageSequenceClip

    frames = [np.array(solid_image(c, seed=5)) for c in (RED, RED, BLUE) for _ in range(10)]
    path = tmp_path / "v.mp4"
    ImageSequenceClip(frames, fps=10).write_videofile(str(path), codec="libx264", logger=None)
    (result,) = list(predict(trained, read_inputs([path])))
    assert result.frames.times == [0.0, 1.0, 2.0]
    red, blue = result.frames.scores["red"], result.frames.scores["blue"]
    assert red[0] > blue[0] and blue[2] > red[2]


def test_search_by_stored_input_matches_brute_force(trained):
    ids, vectors = trained.store.load_embeddings("tiny-image")
    query = int(ids[0])
    hits = search_similar(trained, query, k=3)
    sims = vectors @ vectors[0]
    expected = [int(ids[i]) for i in np.argsort(-sims) if int(ids[i]) != query][:3]
    assert [h.record.id for h in hits] == expected
    np.testing.assert_allclose([h.similarity for h in hits], np.sort(sims)[::-1][1:4], atol=1e-5)


def test_search_by_new_input_and_unknown_id(trained, tmp_path):
    path = tmp_path / "q.png"
    solid_image(BLUE, seed=3).save(path)
    (raw,) = list(read_inputs([path]))
    hits = search_similar(trained, raw, k=10)
    assert len(hits) == 6 and trained.store.labels_of(hits[0].record.id) == {"blue": 1}
    with pytest.raises(InputError, match="no such input"):
        search_similar(trained, 12345)


def _override_red_threshold(project):
    from core.prediction import get_model

    set_threshold(project, get_model(project).version, "red", 0.999)


@pytest.mark.parametrize(
    "change, explain, red_passes",
    [
        (lambda project: None, 3, True),
        (lambda project: None, 0, True),
        (_override_red_threshold, 2, False),  # a threshold set by hand is the one in force
        (lambda project: project.store.delete_concept("blue"), 1, True),  # a deleted concept is left out
    ],
)
def test_a_batch_predicts_what_each_input_alone_predicts(trained, tmp_path, change, explain, red_passes):
    from core.ingestion import embed_inputs
    from core.prediction import predict_embedded

    change(trained)
    paths = []
    for i, colour in enumerate((RED, BLUE, RED)):
        paths.append(tmp_path / f"q{i}.png")
        solid_image(colour, seed=50 + i).save(paths[-1])
    batch = list(predict(trained, read_inputs(paths), explain=explain))
    alone = [predict_embedded(trained, item, explain=explain) for item in embed_inputs(trained.embedder(), list(read_inputs(paths)))]
    assert [p.to_dict() for p in batch] == [p.to_dict() for p in alone]
    assert all(len(p.neighbours) == explain for p in batch)
    names = {c.concept for c in batch[0].concepts}
    assert "red" in names and ("blue" in names) == ("blue" in dict((n, i) for i, n in trained.store.list_concepts()))
    assert ("red" in batch[0].matches) == red_passes


@pytest.mark.parametrize(
    "kind, held_out, kept, expected",
    [
        pytest.param(
            "image",
            60,
            57,
            "this looks unlike the photos you labelled (similarity 0.31 to the closest of them; "
            "of the 60 labelled photos training held out in turn, 57 were at least 0.44 similar to the rest)",
            id="photos, measured",
        ),
        pytest.param(
            "text",
            12,
            12,
            "this looks unlike the texts you labelled (similarity 0.31 to the closest of them; "
            "of the 12 labelled texts training held out in turn, all were at least 0.44 similar to the rest)",
            id="texts, all held out passed",
        ),
        pytest.param(
            "video",
            0,
            0,
            "this looks unlike the inputs you labelled (similarity 0.31 to the closest of them, "
            "below the cut-off of 0.44 that training set)",
            id="a version older than the measure",
        ),
    ],
)
def test_an_unknown_input_is_explained_in_plain_words_first(trained, kind, held_out, kept, expected):
    from dataclasses import replace

    from core.learning import load_model
    from core.prediction import describe_unknown

    heads = replace(load_model(trained).spaces["tiny-image"], unknown_cutoff=0.44, unknown_held_out=held_out, unknown_kept=kept)
    assert describe_unknown(heads, 0.3149, kind) == expected


@pytest.mark.parametrize("held_out, kept", [(10, 11), (-1, 0), (5, -1)])
def test_heads_refuse_counts_of_held_out_inputs_that_cannot_be(trained, held_out, kept):
    from dataclasses import replace

    from core.learning import load_model

    with pytest.raises(ValueError, match="unknown_kept"):
        replace(load_model(trained).spaces["tiny-image"], unknown_held_out=held_out, unknown_kept=kept)


# ---------------------------------------------------------------- faces: one prediction per face


@contextlib.contextmanager
def _data_home(home):
    """``CONCEPTLAB_HOME`` set to ``home`` for the block: a module-scoped fixture cannot use monkeypatch."""
    old = os.environ.get("CONCEPTLAB_HOME")
    os.environ["CONCEPTLAB_HOME"] = str(home)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CONCEPTLAB_HOME", None)
        else:
            os.environ["CONCEPTLAB_HOME"] = old


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """A faces project of the five people in tests/fixtures/faces/train, one folder each, trained."""

    from .faces import FACES

    with _data_home(tmp_path_factory.mktemp("people-home")):
        project = create_project("people", "faces")
        report = ingest(project, read_inputs([FACES / "train"], ReadConfig(labels_from_folders=True)))
        assert len(report.added) == 10 and report.failed == []
        train(project)
    return project


def test_a_group_photo_gives_one_prediction_per_face_naming_its_box(people, tmp_path):
    from .faces import KIT_WITH_ROSE, OBAMA_AND_BIDEN, OBAMA_TEST, make_no_face, make_tiny_face

    paths = [OBAMA_AND_BIDEN, KIT_WITH_ROSE, OBAMA_TEST, make_no_face(tmp_path / "shapes.jpg"), make_tiny_face(tmp_path / "tiny.jpg")]
    results = list(predict(people, read_inputs(paths)))
    by_name = {r.input.rsplit("/", 1)[-1] if isinstance(r, Prediction) else r.name.rsplit("/", 1)[-1]: r for r in results}
    assert list(by_name) == [
        "obama_and_biden.jpg#face1",
        "obama_and_biden.jpg#face2",
        "obama_and_biden.jpg#face3",
        "kit_with_rose.jpg#face1",
        "kit_with_rose.jpg#face2",
        "obama1.jpg#face1",
        "shapes.jpg",
        "tiny.jpg",
    ]
    top = {name: r.concepts[0].concept for name, r in by_name.items() if isinstance(r, Prediction)}
    assert top["obama_and_biden.jpg#face1"] == "biden" and top["obama_and_biden.jpg#face2"] == "obama"
    assert top["kit_with_rose.jpg#face1"] == "rose_leslie" and top["kit_with_rose.jpg#face2"] == "kit_harington"
    assert top["obama1.jpg#face1"] == "obama" and "obama" in by_name["obama1.jpg#face1"].matches
    assert by_name["shapes.jpg"].reason == "no face found"
    assert by_name["tiny.jpg"].reason.startswith("face too small to trust")
    face = by_name["obama_and_biden.jpg#face2"].to_dict()["face"]
    assert face["number"] == 2 and face["of"] == 3 and len(face["box"]) == 4 and face["box"][0] > 400
    neighbours = by_name["obama1.jpg#face1"].neighbours
    assert neighbours and neighbours[0].name.startswith("train/obama/")  # the closest stored face is Obama's


def test_a_text_cannot_be_predicted_with_faces(people):
    (result,) = predict(people, read_texts(["Barack Obama"]))
    assert isinstance(result, InputError) and "has no text space" in result.reason


def test_search_with_a_photo_finds_the_same_persons_faces(people):
    from .faces import OBAMA_TEST

    (query,) = read_inputs([OBAMA_TEST])
    hits = search_similar(people, query, k=2)
    assert [h.record.name.split("/")[1] for h in hits] == ["obama", "obama"]


@pytest.fixture(scope="module")
def four_people(tmp_path_factory):
    """A faces project of four of the five people, trained: Kit Harington is a stranger to it."""
    import shutil

    from .faces import FACES

    home, folder = tmp_path_factory.mktemp("four-home"), tmp_path_factory.mktemp("four") / "train"
    for person in ("alex_lacamoire", "biden", "obama", "rose_leslie"):
        shutil.copytree(FACES / "train" / person, folder / person)
    with _data_home(home):
        project = create_project("four", "faces")
        ingest(project, read_inputs([folder], ReadConfig(labels_from_folders=True)))
        train(project)
    return project


@pytest.mark.parametrize(
    "photo, face, expected",
    [
        ("KIT", 1, None),  # a stranger's face: unknown, never forced onto the nearest name
        ("KIT2", 1, None),
        ("KIT_TEST", 1, None),
        ("KIT_WITH_ROSE", 2, None),  # the stranger beside an enrolled person ...
        ("KIT_WITH_ROSE", 1, "rose_leslie"),  # ... who is named
        ("OBAMA_TEST", 1, "obama"),  # an enrolled person's new photo gets their name
        ("OBAMA_AND_BIDEN", 1, "biden"),
        ("OBAMA_AND_BIDEN", 2, "obama"),
        ("OBAMA_AND_BIDEN", 3, None),  # the third person there was never enrolled
    ],
)
def test_a_stranger_is_unknown_and_an_enrolled_person_is_named(four_people, photo, face, expected):
    from . import faces

    results = [r for r in predict(four_people, read_inputs([getattr(faces, photo)])) if isinstance(r, Prediction)]
    (result,) = [r for r in results if r.face["number"] == face]
    assert result.matches == ([expected] if expected else [])
    assert result.unknown == (expected is None)
    if expected is None:
        assert "unlike the photos you labelled" in result.unknown_reason


def test_a_faces_version_keeps_which_held_out_faces_were_unknown_for_its_rates(people):
    from core.evaluate import list_mistakes, verification_at_threshold

    report = people.store.get_version(1)[4]
    assert report["scores"]["faces"]["unknown"] == [False] * 10  # every labelled face passed the cut-off, held out
    # Each person: 2 own held-out faces, 8 of the others'; at 0 everyone is let in, at 1 no one.
    assert verification_at_threshold(people, "faces", "obama", 0.0).false_accepts == 8
    low, high = list_mistakes(people, "faces", "obama", 0.0).rates, list_mistakes(people, "faces", "obama", 1.0).rates
    assert (low.far, low.frr, high.far, high.frr) == (1.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="threshold"):
        verification_at_threshold(people, "faces", "obama", -0.1)


@pytest.mark.parametrize(
    "thresholds, matches",
    [
        pytest.param({"red": 0.0, "blue": 0.0}, ["red"], id="both pass: an exclusive project matches only the most probable"),
    ],
)
def test_an_exclusive_version_from_before_the_prior_shift_loads_and_respects_thresholds(tmp_path, thresholds, matches):
    project = _red_and_blue(create_project("x", "tiny", exclusive=True), tmp_path / "in")
    version = train(project).version
    # A file written before priors were estimated: its calibration never shifts the softmax.
    (path,) = (project.root / "versions").glob("*.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["tiny-image/calibration"][:, 1] = 0.0
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    for concept, value in thresholds.items():
        set_threshold(project, version, concept, value)
    solid_image(RED, seed=99).save(tmp_path / "new.png")
    (prediction,) = list(predict(project, read_inputs([tmp_path / "new.png"]), explain=0))
    assert prediction.concepts[0].concept == "red" and prediction.matches == matches
