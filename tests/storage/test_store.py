"""Storage: rows, content-addressed originals, labels, and atomic writes."""

from __future__ import annotations

import hashlib
import sqlite3

import numpy as np
import pytest

from core.errors import ConceptError, ProjectError
from core.storage import NewInput, Store, validate_concept_name


def _item(i: int, space: str = "s", kind: str = "text", frames: int = 0) -> NewInput:
    data = f"input {i}".encode()
    vector = np.zeros(4, np.float32)
    vector[i % 4] = 1.0
    extra = {}
    if frames:
        extra = {"frame_times": [float(t) for t in range(frames)], "frame_vectors": np.tile(vector, (frames, 1))}
    return NewInput(hashlib.sha256(data).hexdigest(), kind, f"in{i}.txt", ".txt", data, space, vector, text=f"input {i}", **extra)


@pytest.fixture
def store(tmp_path):
    return Store.initialize(tmp_path / "p", {"name": "p", "embedder": "tiny"})


def test_missing_database_is_a_project_error(tmp_path):
    with pytest.raises(ProjectError, match="no project database"):
        Store(tmp_path / "nothing")


def test_inputs_round_trip_with_blob_and_embedding(store):
    ids = store.add_inputs([_item(1), _item(2)]).ids
    record = store.get_input(ids[_item(1).sha256])
    assert record.name == "in1.txt" and record.text == "input 1"
    assert store.read_blob(record) == b"input 1"
    got_ids, vectors = store.load_embeddings("s")
    assert list(got_ids) == sorted(ids.values()) and vectors.shape == (2, 4) and vectors.dtype == np.float32
    assert store.count_inputs() == {"text": 2}


def test_same_bytes_are_stored_once_and_bump_no_generation(store):
    first = store.add_inputs([_item(1)])
    generation = store.generation()
    again = store.add_inputs([_item(1)])
    assert first.ids == again.ids and len(store.list_inputs()) == 1
    assert first.inserted == {_item(1).sha256} and again.inserted == set()  # the second call added nothing
    assert store.generation() == generation  # nothing new: the FAISS cache stays valid


def test_video_frames_are_kept_with_their_times(store):
    ids = store.add_inputs([_item(3, kind="video", frames=4)]).ids
    times, vectors = store.load_frames(ids[_item(3).sha256])
    assert list(times) == [0.0, 1.0, 2.0, 3.0] and vectors.shape == (4, 4)


def test_failed_transaction_leaves_nothing_behind(store):
    store.add_inputs([_item(1)])
    broken = _item(2)
    object.__setattr__(broken, "kind", "hologram")  # violates the CHECK constraint mid-transaction
    with pytest.raises(sqlite3.IntegrityError):
        store.add_inputs([_item(5), broken])
    assert [r.name for r in store.list_inputs()] == ["in1.txt"]
    assert len(store.load_embeddings("s")[0]) == 1


@pytest.mark.parametrize(
    "name, expected",
    [("cat", "cat"), ("  big   dog ", "big dog"), ("", ConceptError), ("   ", ConceptError), ("x" * 101, ConceptError)],
)
def test_validate_concept_name(name, expected):
    if expected is ConceptError:
        with pytest.raises(ConceptError):
            validate_concept_name(name)
    else:
        assert validate_concept_name(name) == expected


def test_concepts_create_rename_delete(store):
    cid = store.create_concept("Cat")
    with pytest.raises(ConceptError, match="already exists"):
        store.create_concept("cat")
    store.rename_concept("cat", "Kitten")
    assert store.list_concepts() == [(cid, "Kitten")]
    with pytest.raises(ConceptError, match="no concept named"):
        store.rename_concept("dog", "wolf")
    store.delete_concept("kitten")
    assert store.list_concepts() == []


def test_labels_positive_negative_remove_and_cascade(store):
    ids = store.add_inputs([_item(1), _item(2)]).ids
    a, b = ids[_item(1).sha256], ids[_item(2).sha256]
    cat = store.ensure_concepts(["cat"])["cat"]
    store.set_labels([a], cat, 1)
    store.set_labels([b], cat, -1)
    assert sorted(store.load_annotations()) == sorted([(a, cat, 1), (b, cat, -1)])
    store.set_labels([b], cat, 1)  # relabelling replaces
    assert store.labels_of(b) == {"cat": 1}
    store.set_labels([b], cat, None)
    assert store.labels_of(b) == {}
    store.delete_concept("cat")
    assert store.load_annotations() == []


def test_delete_inputs_removes_rows_and_files(store):
    ids = store.add_inputs([_item(1), _item(2)]).ids
    record = store.get_input(ids[_item(1).sha256])
    assert store.delete_inputs([record.id]) == 1
    assert store.get_input(record.id) is None and not store.blob_path(record.sha256, record.suffix).exists()
    assert len(store.load_embeddings("s")[0]) == 1


@pytest.mark.parametrize("ref, found", [("1", True), ("999", False), ("", False), ("abc", False)])
def test_resolve_input_id(store, ref, found):
    store.add_inputs([_item(1)])
    assert (store.resolve_input_id(ref) is not None) == found


def test_resolve_input_id_by_hash_prefix(store):
    ids = store.add_inputs([_item(7)]).ids
    assert store.resolve_input_id(_item(7).sha256[:10]) == ids[_item(7).sha256]


_REPORT = {"concepts": [{"concept": "a"}], "scores": [[0.1, 0.9]], "odd.key": 3, "none": None}


@pytest.mark.parametrize(
    "keys, expected",
    [
        (None, _REPORT),
        ((), {}),
        (("concepts",), {"concepts": [{"concept": "a"}]}),
        (("concepts", "odd.key"), {"concepts": [{"concept": "a"}], "odd.key": 3}),
        (("missing", "none"), {}),  # absent and null keys are left out alike
    ],
)
def test_list_versions_picks_report_keys(store, keys, expected):
    number = store.add_version("a.npz", 0.5, _REPORT)
    assert store.list_versions(report_keys=keys) == [(number, pytest.approx(store.list_versions()[0][1]), "a.npz", 0.5, expected)]
    assert store.get_version(number)[4] == _REPORT
    assert store.get_version(number + 1) is None


def test_versions_and_active(store):
    v1 = store.add_version("a.npz", 0.5, {"x": 1})
    v2 = store.add_version("b.npz", 0.7, {"x": 2})
    assert [v[0] for v in store.list_versions()] == [v1, v2]
    assert store.get_meta("active_version") == str(v2)


@pytest.mark.parametrize(
    "kind, data, text, suffix, has_file",
    [
        ("text", b"a row of a table", "a row of a table", ".txt", False),  # the row's text is its original
        ("text", b"  padded file text\n", "padded file text", ".txt", True),  # the file's own bytes differ from the text
        ("text", "\ufeffUTF-16 text".encode("utf-16"), "UTF-16 text", ".txt", True),
        ("image", b"\x89PNG not really", None, ".png", True),
    ],
    ids=["table-row", "padded-file", "utf-16-file", "image"],
)
def test_a_text_is_kept_in_the_database_alone_when_its_text_is_its_original(store, kind, data, text, suffix, has_file):
    sha = hashlib.sha256(data).hexdigest()
    item = NewInput(sha, kind, f"in{suffix}", suffix, data, "s", np.ones(4, np.float32) / 2, text=text)
    added = store.add_inputs([item])
    assert added.inserted == {sha}
    record = store.get_input(added.ids[sha])
    assert store.blob_path(sha, suffix).exists() == has_file
    assert store.read_blob(record) == data  # the original, from the file or from the row
    assert store.delete_inputs([record.id]) == 1 and not store.blob_path(sha, suffix).exists()


def _face(photo: bytes, number: int) -> NewInput:
    """Face ``number`` of a photo, as ingest stores it: its own key, the photo's bytes and hash as its original."""
    source = hashlib.sha256(photo).hexdigest()
    key = hashlib.sha256(f"{source}#face{number}".encode()).hexdigest()
    info = {"face": {"box": [10 * number, 0, 10 * number + 50, 50]}, "source_sha256": source, "blob_sha256": source}
    return NewInput(key, "image", f"team.jpg#face{number}", ".jpg", photo, "faces", np.ones(4, np.float32) / 2, info=info)


@pytest.mark.parametrize(
    ("deleted", "photo_kept"),
    [([], True), ([1], True), ([2], True), ([1, 2], False)],
    ids=["none", "first", "second", "both"],
)
def test_faces_share_their_photos_file_until_the_last_is_deleted(store, deleted, photo_kept):
    photo, other = b"\xff\xd8 a photo of two people", b"\xff\xd8 someone else"
    added = store.add_inputs([_face(photo, 1), _face(photo, 2), _face(other, 1)])
    ids = [added.ids[item.sha256] for item in (_face(photo, 1), _face(photo, 2))]
    blob = store.blob_path(hashlib.sha256(photo).hexdigest(), ".jpg")
    assert len(list((store.root / "blobs").rglob("*.jpg"))) == 2 and blob.read_bytes() == photo  # once per photo, not per face
    assert store.delete_inputs([ids[n - 1] for n in deleted]) == len(deleted)
    store.remove_orphans(min_age_s=0)  # the sweep of files no input refers to keeps what faces refer to
    assert blob.exists() == photo_kept
    for record in store.list_inputs():
        assert store.read_blob(record) in (photo, other)
    source = hashlib.sha256(photo).hexdigest()
    found = store.find_faces_of([source, hashlib.sha256(b"never stored").hexdigest()])
    assert [input_id for _, input_id in found.get(source, [])] == [i for n, i in enumerate(ids, 1) if n not in deleted]
