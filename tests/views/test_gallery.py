"""Gallery pages, filters, uncertainty order, suggestions and thumbnails on a real project."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.ingestion import ingest
from core.inputs import read_inputs, read_texts
from core.learning import train
from core.storage.projects import create_project
from core.views.gallery import GalleryFilter, label_inputs, list_gallery, load_thumbnail, preview_text, score_stored_inputs

from ..photos import solid_image

RED, BLUE, PURPLE = (220, 30, 30), (30, 40, 220), (125, 35, 125)


@pytest.fixture
def project(tmp_path):
    project = create_project("g", "tiny")
    for name, colour, count, concept in (
        ("red", RED, 3, "red"),
        ("blue", BLUE, 3, "blue"),
        ("purple", PURPLE, 2, None),
        ("pink", (230, 60, 60), 2, None),
    ):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(count):
            solid_image(colour, seed=10 * len(name) + i).save(folder / f"{name}{i}.png")
        ingest(project, read_inputs([folder]), concept=concept)
    ingest(project, read_texts(["first line\nsecond line\nthird line\nfourth line"]))
    return project


def _names(page):
    return [item.record.name.rsplit("/", 1)[-1] for item in page.items]


@pytest.mark.parametrize(
    "flt, expected",
    [
        (GalleryFilter(labels="unlabelled", kind="image"), 4),
        (GalleryFilter(labels="labelled"), 6),
        (GalleryFilter(positive_for="red"), 3),
        (GalleryFilter(negative_for="red"), 0),
        (GalleryFilter(kind="text"), 1),
        (GalleryFilter(), 11),
    ],
)
def test_filters(project, flt, expected):
    assert list_gallery(project, flt).total == expected


def test_paging_and_order(project):
    newest = list_gallery(project, GalleryFilter(order="newest"), page=0, page_size=4)
    oldest = list_gallery(project, GalleryFilter(order="oldest"), page=2, page_size=4)
    assert newest.pages == 3 and len(newest.items) == 4 and len(oldest.items) == 3
    assert newest.items[0].record.kind == "text" and oldest.items[-1].record.kind == "text"
    assert list_gallery(project, GalleryFilter(), page=99, page_size=4).page == 2


def test_predictions_filter_and_least_certain_first(project):
    assert score_stored_inputs(project).version is None
    train(project)
    scores = score_stored_inputs(project)
    predicted_red = list_gallery(project, GalleryFilter(predicted="red", kind="image"))
    assert "pink0.png" in _names(predicted_red) and all(i.predicted == "red" for i in predicted_red.items)
    ordered = list_gallery(project, GalleryFilter(order="least certain", kind="image"), page_size=20)
    certainties = [i.certainty for i in ordered.items]
    assert certainties == sorted(certainties) and set(scores.certainty) >= {i.record.id for i in ordered.items}
    # Purple sits between red and blue: less certain than a red photo.
    purple = min(c for i, c in zip(ordered.items, certainties) if "purple" in i.record.name)
    red = max(c for i, c in zip(ordered.items, certainties) if "red" in i.record.name)
    assert purple < red


def test_label_many_and_remove(project):
    page = list_gallery(project, GalleryFilter(labels="unlabelled", kind="image"))
    ids = [i.record.id for i in page.items]
    assert label_inputs(project, ids, "violet", -1) == len(ids)
    assert list_gallery(project, GalleryFilter(negative_for="violet")).total == len(ids)
    label_inputs(project, ids, "violet", None)
    assert list_gallery(project, GalleryFilter(negative_for="violet")).total == 0
    with pytest.raises(ValueError):
        label_inputs(project, ids, "violet", 2)


def test_thumbnails_are_cached_jpegs(project):
    record = list_gallery(project, GalleryFilter(kind="image")).items[0].record
    data = load_thumbnail(project, record, size=32)
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG" and max(image.size) <= 32
    assert (project.root / "thumbs" / f"{record.sha256}-32.jpg").read_bytes() == data
    text = list_gallery(project, GalleryFilter(kind="text")).items[0].record
    assert load_thumbnail(project, text) is None


def test_video_poster_frame(project, tmp_path):
    from moviepy import ImageSequenceClip

    frames = [np.full((32, 32, 3), c, np.uint8) for c in ([0, 0, 0], [0, 255, 0]) for _ in range(20)]
    path = tmp_path / "v.mp4"
    ImageSequenceClip(frames, fps=10).write_videofile(str(path), codec="libx264", logger=None)
    (input_id,) = ingest(project, read_inputs([path])).added
    poster = Image.open(io.BytesIO(load_thumbnail(project, project.store.get_input(input_id))))
    assert np.asarray(poster)[..., 1].mean() > 150  # the middle of the video, not its black first frame


@pytest.mark.parametrize(
    "lines, width, expected", [(3, 200, "first line\nsecond line\nthird line"), (1, 200, "first line"), (3, 8, "first l…")]
)
def test_preview_text(project, lines, width, expected):
    record = list_gallery(project, GalleryFilter(kind="text")).items[0].record
    assert preview_text(record, lines, width) == expected


def test_count_labels(project):
    from core.views.gallery import count_labels

    label_inputs(project, [7], "red", -1)
    assert count_labels(project) == {"blue": (3, 0), "red": (3, 1)}


@pytest.mark.parametrize(
    "times, scores, n, expected",
    [
        ([0, 1, 2, 3, 4, 5], [0.1, 0.9, 0.8, 0.2, 0.7, 0.3], 2, [(1, 0.9), (4, 0.7)]),  # 2 s is too close to 1 s
        ([0, 1], [0.5, 0.5], 3, [(0, 0.5)]),
        ([], [], 3, []),
    ],
)
def test_pick_top_moments(times, scores, n, expected):
    from core.views.gallery import pick_top_moments

    assert pick_top_moments(times, scores, n) == expected


def test_video_moments_show_the_frames_where_the_concept_scores(tmp_path):
    from moviepy import ImageSequenceClip

    from core.prediction import FrameScores
    from core.views.gallery import load_video_moments

    frames = [np.full((32, 32, 3), c, np.uint8) for c in ([0, 0, 0], [0, 255, 0], [0, 0, 0]) for _ in range(30)]
    path = tmp_path / "v.mp4"
    ImageSequenceClip(frames, fps=10).write_videofile(str(path), codec="libx264", logger=None)
    scores = FrameScores(times=[float(t) for t in range(9)], scores={"green": [0, 0, 0, 0.9, 0.8, 0.7, 0, 0, 0]})
    moments = load_video_moments(path.read_bytes(), "v.mp4", ".mp4", scores, "green", n=2)
    assert [(m.time, m.score) for m in moments] == [(3.0, 0.9), (5.0, 0.7)]
    assert all(np.asarray(m.image)[..., 1].mean() > 150 for m in moments)
    assert load_video_moments(path.read_bytes(), "v.mp4", ".mp4", scores, "absent") == []


@pytest.mark.parametrize(
    "flt, page, scored",
    [
        # 10 photos (the one text has no trained space, so nothing to score).
        (GalleryFilter(kind="image", order="newest"), 0, 4),  # a page of 4: only its 4 inputs are scored
        (GalleryFilter(kind="image", order="oldest"), 99, 2),  # past the end: the last page's 2, still with their scores
        (GalleryFilter(kind="image", labels="unlabelled", order="least certain"), 0, 4),  # ordered by the model: all it keeps
        (GalleryFilter(predicted="red"), 0, 10),  # filtered by the model: every photo
    ],
)
def test_a_gallery_page_scores_only_what_it_needs(project, monkeypatch, flt, page, scored):
    from core.learning.heads import SpaceHeads
    from core.views import gallery

    train(project)
    gallery._scores_cache.clear()
    counted = []
    original = SpaceHeads.score
    monkeypatch.setattr(SpaceHeads, "score", lambda self, queries: counted.append(len(queries)) or original(self, queries))
    shown = list_gallery(project, flt, page=page, page_size=4)
    assert sum(counted) == scored
    assert all(item.predicted is not None for item in shown.items)  # each card still says what the model thinks


@pytest.mark.parametrize(
    "exclusive, value, expected",
    [
        (True, 1, {"blue": 1}),  # one concept per input: blue replaces red
        (False, 1, {"red": 1, "blue": 1}),  # any number: both
        (True, -1, {"red": 1, "blue": -1}),  # a negative takes nothing away
        (True, None, {"red": 1}),
    ],
)
def test_labelling_in_a_project_of_one_concept_per_input_replaces_the_rival(tmp_path, exclusive, value, expected):
    project = create_project("x", "tiny", exclusive=exclusive)
    ingest(project, read_texts(["a thing"], concept="red"))
    label_inputs(project, [1], "blue", value)
    assert project.store.labels_of(1) == expected


@pytest.mark.parametrize(
    "name, shown",
    [
        ("photos/cats/a.jpg", "photos/cats/a.jpg"),  # relative to what was ingested: as stored
        ("notes.csv:row 3", "notes.csv:row 3"),
        ("text 1", "text 1"),
        ("/home/me/photos/cats/a.jpg", "…/cats/a.jpg"),  # stored before names were relative: no local path shown
        ("/home/me/notes.csv:row 3", "…/me/notes.csv:row 3"),
        ("C:\\\\Users\\\\me\\\\cats\\\\a.jpg", "…/cats/a.jpg"),
    ],
)
def test_describe_input_name_never_shows_a_full_local_path(name, shown):
    from core.views.gallery import describe_input_name

    assert describe_input_name(name) == shown


def test_a_faces_thumbnail_is_its_part_of_the_photo():
    from ..faces import OBAMA_AND_BIDEN

    project = create_project("group", "faces")
    ingest(project, read_inputs([OBAMA_AND_BIDEN]))
    thumbs = [Image.open(io.BytesIO(load_thumbnail(project, record))) for record in project.store.list_inputs()]
    assert len(thumbs) == 3 and len({t.tobytes() for t in thumbs}) == 3  # one picture per face, not the photo three times
    for thumb in thumbs:
        # The box with half its size again on each side: about square, unlike the 1000 x 714 photo.
        assert 0.8 < thumb.width / thumb.height < 1.25
        assert max(thumb.size) <= 256
