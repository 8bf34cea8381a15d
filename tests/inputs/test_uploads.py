"""Uploads in memory read like files on disk, named as the person sent them."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from core.errors import InputError
from core.inputs import ReadConfig
from core.inputs.uploads import count_upload_items, read_camera_photo, read_uploads

from ..photos import solid_image


def _png(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    solid_image((200, 10, 10), seed=seed).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_names_are_the_uploaded_names_never_temp_paths():
    files = [
        ("holiday photo.png", _png()),
        ("notes.csv", b"text,label\nhello,greeting\n,greeting\n"),
        ("set.zip", _zip({"cats/a.png": _png(1), "dogs/b.png": _png(2)})),
        ("broken.jpg", b"nope"),
        ("empty.png", b""),
    ]
    items = list(read_uploads(files, ReadConfig(labels_from_folders=True, label_column="label")))
    names = [i.name for i in items]
    assert names[0] == "holiday photo.png"
    assert "notes.csv:row 2" in names and any(n.startswith("notes.csv:row 3") for n in names)
    assert {"set.zip/cats/a.png", "set.zip/dogs/b.png"} <= set(names)
    assert "/tmp" not in " ".join(names) and "conceptlab-upload" not in " ".join(str(i) for i in items)
    concepts = {i.name: i.concept for i in items if not isinstance(i, InputError)}
    assert concepts["set.zip/cats/a.png"] == "cats" and concepts["notes.csv:row 2"] == "greeting"
    assert items[-2].name == "broken.jpg"  # decoded (and refused) later, at ingest
    assert isinstance(items[-1], InputError) and str(items[-1]) == "empty.png: empty file"


@pytest.mark.parametrize("name", ["../../etc/passwd.png", "/abs/path.png", "C:\\Users\\me\\pic.png", "..png", ""])
def test_hostile_or_odd_names_stay_inside_the_temp_folder(name):
    (item,) = list(read_uploads([(name, _png())]))
    assert not isinstance(item, InputError) or "unsupported" in item.reason
    assert ".." not in item.name.replace("..png", "")


def test_same_name_twice_keeps_both():
    items = list(read_uploads([("a.png", _png(1)), ("a.png", _png(2))]))
    assert [i.name for i in items] == ["a.png", "a.png"] and items[0].sha256 != items[1].sha256


@pytest.mark.parametrize(
    "files, expected",
    [
        ([("a.png", b"x")], 1),
        ([("t.csv", b"text\na\nb\nc\n")], 3),
        ([("t.csv", b"text\na\nb")], 2),
        ([("z.zip", _zip({"a.png": b"1", "b/c.png": b"2"}))], 2),
        ([("z.zip", b"not a zip")], 1),
        ([], 0),
    ],
)
def test_count_upload_items(files, expected):
    assert count_upload_items(files) == expected


def test_camera_photo():
    photo = read_camera_photo(_png())
    assert photo.kind == "image" and photo.name == "camera photo"
    assert isinstance(read_camera_photo(b""), InputError)


@pytest.mark.parametrize("seconds, expected", [(0, "1 s"), (7.4, "7 s"), (59.4, "59 s"), (90, "2 min"), (3600, "1 h"), (3900, "1 h 5 min")])
def test_format_duration(seconds, expected):
    from core.inputs.uploads import format_duration

    assert format_duration(seconds) == expected


@pytest.mark.parametrize(
    "done, total, elapsed, expected",
    [
        (0, 40, 0.0, (0.0, "0 of 40 inputs")),
        (10, 40, 5.0, (0.25, "10 of 40 inputs · about 15 s left")),
        (40, 40, 20.0, (1.0, "40 of 40 inputs")),
        (50, 40, 20.0, (1.0, "50 of 50 inputs")),  # the estimate was short: the total grows
        (0, 0, 0.0, (0.0, "0 of 1 inputs")),
    ],
)
def test_describe_progress(done, total, elapsed, expected):
    from core.inputs.uploads import describe_progress

    assert describe_progress(done, total, elapsed) == expected


def test_uploads_stop_at_the_batch_limit_with_one_line():
    files = [(f"note {i}.txt", f"text {i}".encode()) for i in range(5)]
    items = list(read_uploads(files, ReadConfig(max_inputs=3)))
    assert [item.name for item in items] == ["note 0.txt", "note 1.txt", "note 2.txt", "note 3.txt"]
    assert isinstance(items[-1], InputError) and "more than 3 inputs in one batch" in items[-1].reason


def test_photos_and_texts_are_read_from_memory_and_archives_from_a_private_folder(monkeypatch):
    import core.inputs.uploads as uploads

    folders = []
    real = uploads.tempfile.mkdtemp
    monkeypatch.setattr(uploads.tempfile, "mkdtemp", lambda **kw: folders.append(real(**kw)) or folders[-1])
    plain = list(read_uploads([("a.png", _png()), ("b.txt", b"a note"), ("c.exe", b"MZ")]))
    assert [type(item).__name__ for item in plain] == ["RawInput", "RawInput", "InputError"] and folders == []
    expanded = list(read_uploads([("pack.zip", _zip({"x.png": _png(1)})), ("d.png", _png(2))]))
    assert [item.name for item in expanded] == ["pack.zip/x.png", "d.png"] and len(folders) == 1
    assert not os.path.exists(folders[0])  # removed once read
