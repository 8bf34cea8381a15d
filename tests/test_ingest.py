"""Ingest: dedup by content hash, labels, bad input in a batch, videos, and surviving a kill."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from core import ingestion as ingest_module
from core.errors import InputError
from core.ingestion import ingest
from core.inputs import ReadConfig, read_inputs, read_texts, sample_frames
from core.storage.index import load_index
from core.storage.projects import create_project, open_project

from .media_fixtures import make_truncated_streamable_mp4, write_colour_video
from .photos import solid_image


@pytest.fixture
def project():
    return create_project("p", "tiny")


def _images(folder, n, colour=(200, 40, 40), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        solid_image(colour, seed=seed + i).save(folder / f"img{i}.png")
    return folder


def test_folder_tree_with_labels_from_folders(project, tmp_path):
    _images(tmp_path / "tree" / "red", 3)
    _images(tmp_path / "tree" / "blue", 2, colour=(20, 20, 200), seed=10)
    report = ingest(project, read_inputs([tmp_path / "tree"], ReadConfig(labels_from_folders=True)))
    assert len(report.added) == 5 and report.labelled == 5 and report.failed == []
    assert [n for _, n in project.store.list_concepts()] == ["blue", "red"]
    record = project.store.get_input(report.added[0])
    assert record.kind == "image" and record.info["width"] == 64


def test_reingest_embeds_nothing_but_adds_labels(project, tmp_path, monkeypatch):
    folder = _images(tmp_path / "red", 4)
    first = ingest(project, read_inputs([folder]))
    embedder = project.embedder()
    calls = []
    monkeypatch.setattr(embedder, "embed_images", lambda images: calls.append(len(images)))
    again = ingest(project, read_inputs([folder]), concept="red")
    assert calls == [] and again.added == [] and sorted(again.already_stored) == sorted(first.added)
    assert again.labelled == 4 and len(project.store.list_inputs()) == 4


def test_same_bytes_twice_in_one_batch_is_one_input(project, tmp_path):
    folder = _images(tmp_path / "a", 1)
    (folder / "copy.png").write_bytes((folder / "img0.png").read_bytes())
    report = ingest(project, read_inputs([folder]))
    assert len(report.added) == 1 and len(project.store.list_inputs()) == 1


def test_negative_batch_labels(project, tmp_path):
    report = ingest(project, read_inputs([_images(tmp_path / "x", 2)]), concept="cat", negative=True)
    assert {v for _, _, v in project.store.load_annotations()} == {-1} and report.labelled == 2


def test_bad_files_fail_one_by_one_and_nothing_stored_is_touched(project, tmp_path):
    kept = ingest(project, read_inputs([_images(tmp_path / "before", 2)]))
    before = {r.id: project.store.read_blob(r) for r in project.store.list_inputs()}
    batch = _images(tmp_path / "batch", 2, seed=50)
    (batch / "empty.jpg").write_bytes(b"")
    (batch / "notes.jpg").write_bytes(b"this is not a picture")
    (batch / "cut.png").write_bytes((batch / "img0.png").read_bytes()[:200])
    (batch / "blank.txt").write_text("   \n")
    (batch / "clip.mp4").write_bytes(os.urandom(2048))
    (batch / "data.xyz").write_bytes(b"123")
    report = ingest(project, read_inputs([batch]))
    failed = {os.path.basename(f.name) for f in report.failed}
    assert failed == {"empty.jpg", "notes.jpg", "cut.png", "blank.txt", "clip.mp4", "data.xyz"}
    assert all(f.reason and "\n" not in str(f) for f in report.failed)
    assert len(report.added) == 2
    after = {r.id: project.store.read_blob(r) for r in project.store.list_inputs()}
    assert {i: after[i] for i in before} == before and set(kept.added) <= set(after)


def test_bad_concept_name_from_a_label_column_fails_only_that_row(project, tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("text,label\nhello there,greeting\nbye now," + "x" * 200 + "\n")
    report = ingest(project, read_inputs([table], ReadConfig(label_column="label")))
    assert len(report.added) == 1 and len(report.failed) == 1 and "row" in report.failed[0].name


def test_texts_and_errors_from_the_command_line(project):
    report = ingest(project, read_texts(["a sunny day", "", "a rainy day"], concept="weather"))
    assert len(report.added) == 2 and len(report.failed) == 1 and isinstance(report.failed[0], InputError)
    assert report.labelled == 2


def test_video_is_stored_with_frames_and_a_mean_vector(project, tmp_path):
    from moviepy import ImageSequenceClip

    frames = [np.full((48, 64, 3), c, np.uint8) for c in ([255, 0, 0], [0, 255, 0], [0, 0, 255]) for _ in range(10)]
    path = tmp_path / "rgb.mp4"
    ImageSequenceClip(frames, fps=10).write_videofile(str(path), codec="libx264", logger=None)
    report = ingest(project, read_inputs([path]))
    (input_id,) = report.added
    times, vectors = project.store.load_frames(input_id)
    assert list(times) == [0.0, 1.0, 2.0] and vectors.shape[0] == 3
    _, (video_vector,) = project.store.load_embeddings("tiny-image", [input_id])
    mean = vectors.mean(axis=0)
    np.testing.assert_allclose(video_vector, mean / np.linalg.norm(mean), atol=1e-5)
    assert project.store.get_input(input_id).info["duration"] == pytest.approx(3.0, abs=0.2)


@pytest.mark.parametrize("first, batch_size, calls", [(2, 2, [2, 2, 1]), (1, 2, [1, 2, 2]), (3, 32, [3, 2]), (8, 32, [5]), (8, 2, [5])])
def test_video_frames_are_embedded_batch_by_batch_as_they_are_decoded(project, tmp_path, monkeypatch, first, batch_size, calls):
    path = write_colour_video(tmp_path / "colours.mp4", "libx264")
    embedder = project.embedder()
    whole = embedder.embed_images(sample_frames(path.read_bytes(), "colours.mp4", min_side=embedder.image_size).images)
    seen, embed = [], embedder.embed_images
    monkeypatch.setattr(embedder, "embed_images", lambda images: (seen.append(len(images)), embed(images))[1])
    monkeypatch.setattr(ingest_module, "VIDEO_BATCH_SIZE", batch_size)
    monkeypatch.setattr(ingest_module, "VIDEO_FIRST_BATCH", first)
    (input_id,) = ingest(project, read_inputs([path])).added
    times, vectors = project.store.load_frames(input_id)
    assert seen == calls and list(times) == [0.0, 1.0, 2.0, 3.0, 4.0]
    np.testing.assert_allclose(vectors, whole, atol=1e-5)


def test_video_broken_off_mid_stream_fails_alone(project, tmp_path):
    folder = _images(tmp_path / "batch", 2)
    (folder / "cut.mp4").write_bytes(make_truncated_streamable_mp4(tmp_path / "whole.mp4"))
    report = ingest(project, read_inputs([folder]))
    assert len(report.added) == 2 and [os.path.basename(f.name) for f in report.failed] == ["cut.mp4"]
    assert "video is damaged" in str(report.failed[0]) and "\n" not in str(report.failed[0])
    assert {r.kind for r in project.store.list_inputs()} == {"image"}


def test_progress_is_reported_per_batch(project):
    seen = []
    ingest(project, read_texts([f"sentence number {i}" for i in range(70)]), progress=lambda r, m: seen.append(r.seen))
    assert seen == [32, 64, 70]


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    from core.ingestion import ingest
    from core.inputs import read_texts
    from core.storage.projects import open_project
    project = open_project("p")
    texts = (f"sentence {i} about {'cats' if i % 2 else 'dogs'} " * 3 for i in range(10**6))
    ingest(project, read_texts(texts, concept="animals"))
    """
)


def _count_inputs(db_path) -> int:
    try:
        with sqlite3.connect(db_path, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM inputs").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.parametrize("delay", [0.0, 0.07, 0.3])
def test_kill_mid_ingest_leaves_a_consistent_project(project, tmp_path, delay):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    child = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT], env=env)
    deadline = time.monotonic() + 120
    while _count_inputs(project.store.db_path) == 0 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.01)
    time.sleep(delay)  # kill at different points of the batch cycle
    child.send_signal(signal.SIGKILL)
    child.wait()
    reopened = open_project("p")
    db = sqlite3.connect(reopened.store.db_path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    inputs = db.execute("SELECT COUNT(*) FROM inputs").fetchone()[0]
    with_embeddings = db.execute("SELECT COUNT(*) FROM inputs JOIN embeddings ON embeddings.input_id = inputs.id").fetchone()[0]
    labelled = db.execute("SELECT COUNT(DISTINCT input_id) FROM annotations").fetchone()[0]
    assert inputs > 0 and inputs == with_embeddings == labelled
    for record in reopened.store.list_inputs():
        assert reopened.store.read_blob(record).decode() == record.text
    assert len(load_index(reopened.store, "tiny-text")) == inputs
    # The project keeps working: the same texts again add only what was missing.
    report = ingest(reopened, read_texts([f"sentence {i} about {'cats' if i % 2 else 'dogs'} " * 3 for i in range(inputs + 5)]))
    assert len(report.added) == 5 and len(report.already_stored) == inputs


def test_large_jpeg_keeps_its_real_size_in_the_record(project, tmp_path):
    from PIL import Image

    path = tmp_path / "big.jpg"
    Image.new("RGB", (2400, 1600), (10, 120, 200)).save(path, quality=80)
    (input_id,) = ingest(project, read_inputs([path])).added
    assert project.store.get_input(input_id).info == {"width": 2400, "height": 1600}


def test_inputs_another_writer_stored_first_are_reported_as_already_stored(monkeypatch):
    """Two ingests of the same bytes race: the one that commits second reports them stored, not added."""
    project = create_project("p", "tiny")
    texts = ["a shared line", "another shared line"]
    first = ingest(open_project("p"), read_texts(texts))  # the other writer, through its own handle
    monkeypatch.setattr(project.store, "find_input_ids", lambda shas: {})  # our check ran before its commit
    second = ingest(project, read_texts(texts, concept="shared"))
    assert (len(first.added), second.added, sorted(second.already_stored)) == (2, [], sorted(first.added))
    assert second.labelled == 2 and len(project.store.list_inputs()) == 2


# ---------------------------------------------------------------- faces: one input per face


@pytest.fixture
def faces_project():
    return create_project("people", "faces")


def _faces_by_name(project) -> dict[str, dict]:
    return {record.name: record.info for record in project.store.list_inputs()}


def test_a_group_photo_stores_each_face_with_its_box_and_shares_the_photo(faces_project, tmp_path):
    from .faces import OBAMA_AND_BIDEN

    report = ingest(faces_project, read_inputs([OBAMA_AND_BIDEN]), concept="group")
    assert len(report.added) == 3 and report.failed == [] and report.labelled == 3
    stored = _faces_by_name(faces_project)
    assert sorted(stored) == [f"obama_and_biden.jpg#face{i}" for i in (1, 2, 3)]
    photo = OBAMA_AND_BIDEN.read_bytes()
    for number, name in enumerate(sorted(stored), start=1):
        info = stored[name]
        left, top, right, bottom = info["face"]["box"]
        assert 0 <= left < right <= 1000 and 0 <= top < bottom <= 714 and info["face"]["number"] == number
        assert info["face"]["of"] == 3 and info["face"]["size"] >= 40 and info["source"] == "obama_and_biden.jpg"
    records = faces_project.store.list_inputs()
    assert {faces_project.store.read_blob(r) for r in records} == {photo}  # each face's original is the photo
    assert len(list((faces_project.root / "blobs").rglob("*.jpg"))) == 1  # kept once, for all three faces
    assert len({r.sha256 for r in records}) == 3
    ids, vectors = faces_project.store.load_embeddings("faces")
    assert vectors.shape == (3, 128) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_ingesting_a_photo_again_adds_no_face_and_embeds_nothing(faces_project, monkeypatch):
    from .faces import KIT_WITH_ROSE, OBAMA

    first = ingest(faces_project, read_inputs([KIT_WITH_ROSE, OBAMA]))
    assert len(first.added) == 3
    embedder = faces_project.embedder()
    monkeypatch.setattr(embedder, "find_faces", lambda image: pytest.fail("a known photo was searched for faces again"))
    again = ingest(faces_project, read_inputs([KIT_WITH_ROSE, OBAMA]), concept="friends")
    assert again.added == [] and sorted(again.already_stored) == sorted(first.added) and again.labelled == 3
    assert len(faces_project.store.list_inputs()) == 3
    assert [faces_project.store.labels_of(i) for i in sorted(first.added)] == [{"friends": 1}] * 3


@pytest.mark.parametrize(
    ("make", "name", "reason"),
    [
        ("no-face", "shapes.jpg", r"no face found$"),
        ("tiny-face", "tiny.jpg", r"face too small to trust: 3\d px, at least 40 px$"),
        ("broken", "broken.jpg", r"not a readable image$"),
        ("text", "note.txt", r"embedder 'faces' has no text space: it finds faces in photos and videos, not texts$"),
    ],
)
def test_a_bad_input_is_one_line_and_the_rest_of_the_batch_goes_in(faces_project, tmp_path, make, name, reason):
    from .faces import OBAMA, make_no_face, make_tiny_face

    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "obama.jpg").write_bytes(OBAMA.read_bytes())
    if make == "no-face":
        make_no_face(folder / "shapes.jpg")
    elif make == "tiny-face":
        make_tiny_face(folder / "tiny.jpg")
    elif make == "broken":
        (folder / "broken.jpg").write_bytes(b"not a jpeg")
    else:
        (folder / "note.txt").write_text("a text about faces")
    before = ingest(faces_project, read_inputs([OBAMA]))  # something stored already, which must stay
    report = ingest(faces_project, read_inputs([folder]))
    (failure,) = report.failed
    assert os.path.basename(failure.name) == name and re.match(reason, failure.reason) and "\n" not in str(failure)
    assert report.already_stored == before.added and report.added == []  # the good photo: its face is known
    assert [r.name for r in faces_project.store.list_inputs()] == ["obama.jpg#face1"]


def test_a_small_face_beside_a_big_one_is_refused_alone(faces_project, tmp_path):
    from PIL import Image

    from .faces import OBAMA, make_tiny_face

    # A thumbnail (320 px): Obama small on the left (a face of about 30 px) and large on the right.
    big = Image.open(OBAMA).convert("RGB").resize((200, 250))
    small = Image.open(make_tiny_face(tmp_path / "tiny.jpg", width=110)).convert("RGB")
    photo = Image.new("RGB", (320, 260), (200, 200, 200))
    photo.paste(small.crop((50, 0, 190, 200)), (0, 50))
    photo.paste(big, (120, 5))
    photo.save(tmp_path / "pair.jpg", quality=95)
    report = ingest(faces_project, read_inputs([tmp_path / "pair.jpg"]))
    assert len(report.added) == 1
    (failure,) = report.failed
    assert os.path.basename(failure.name) == "pair.jpg#face1"
    assert re.match(r"face too small to trust: 3\d px, at least 40 px$", failure.reason)
    (record,) = faces_project.store.list_inputs()
    assert record.name == "pair.jpg#face2" and record.info["face"]["of"] == 2


def test_a_video_gives_the_faces_of_its_sampled_frames_with_their_times(faces_project):
    from core.inputs import VideoConfig

    from .faces import VIDEO

    report = ingest(faces_project, read_inputs([VIDEO]), video=VideoConfig(fps=1.0))
    stored = _faces_by_name(faces_project)
    assert sorted(stored) == [f"obama_then_biden.mp4@{t}.0s#face1" for t in range(4)] and len(report.added) == 4
    assert [stored[name]["time"] for name in sorted(stored)] == [0.0, 1.0, 2.0, 3.0]
    ids, vectors = faces_project.store.load_embeddings("faces")
    # Obama for two seconds, then Biden: frames of one person are the same face, the others not.
    similar = vectors @ vectors.T
    assert similar[0, 1] > 0.9 and similar[2, 3] > 0.9 and similar[0, 2] < 0.9
    for record in faces_project.store.list_inputs():
        assert record.kind == "image" and faces_project.store.read_blob(record)[:2] == b"\xff\xd8"  # the frame, as a JPEG
    assert ingest(faces_project, read_inputs([VIDEO]), video=VideoConfig(fps=1.0)).added == []
