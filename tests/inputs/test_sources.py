"""Tests for core.inputs.sources: walking folders and files in order, lazily, one error per bad item; typed texts."""

from __future__ import annotations

import hashlib
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InputError
from core.inputs import (
    RawInput,
    ReadConfig,
    read_inputs,
    read_texts,
)
from tests.media_fixtures import (
    describe_outcomes,
    write_file,
    write_zip,
)

TREE_ORDER = ["cats/a.jpg", "cats/b.png", "dogs/c.jpg", "notes.txt", "top.jpg"]
TREE_KINDS = ["image", "image", "image", "text", "image"]


@pytest.mark.parametrize(
    "labels_from_folders, concepts",
    [(True, ["cats", "cats", "dogs", None, None]), (False, [None] * 5)],
)
def test_folder_walk(tree, labels_from_folders, concepts):
    items = list(read_inputs([tree], ReadConfig(labels_from_folders=labels_from_folders)))
    assert describe_outcomes(items) == [(f"{tree}/{p}", k, c) for p, k, c in zip(TREE_ORDER, TREE_KINDS, concepts, strict=True)]
    note = items[3]
    assert note.text == "a note about pets" and note.data == b"  a note about pets \n" and note.suffix == ".txt"


def test_equal_bytes_hash_equal(tree):
    # top.jpg and cats/a.jpg hold the same red JPEG; dogs/c.jpg is blue.
    by_name = {item.name: item for item in read_inputs([tree])}
    top, twin, other = (by_name[f"{tree}/{p}"] for p in ("top.jpg", "cats/a.jpg", "dogs/c.jpg"))
    assert top.sha256 == hashlib.sha256(top.data).hexdigest()
    assert top.sha256 == twin.sha256 != other.sha256
    [typed] = read_texts(["a note about pets"])
    [row] = read_inputs([write_file(tree.parent / "n.csv", "text\n a note about pets\n")])
    assert typed.sha256 == row.sha256


FILE_CASES = [
    # file name (None: missing), content, config, expected reason (None: comes through as that kind)
    pytest.param("note.txt", "hello", ReadConfig(), ("text", None), id="text"),
    pytest.param("note.txt", "caf\xe9".encode("latin-1"), ReadConfig(), (None, "not UTF-8 text"), id="latin-1-text"),
    pytest.param("note.txt", " \n\t ", ReadConfig(), (None, "empty text"), id="blank-text"),
    pytest.param("note.txt", "x" * 50, ReadConfig(max_text_chars=10), (None, "text too long (50 characters, limit 10)"), id="long-text"),
    pytest.param("empty.jpg", b"", ReadConfig(), (None, "empty file"), id="zero-bytes"),
    pytest.param("big.mp4", b"x" * 2048, ReadConfig(max_file_bytes=1024), (None, "file too large (2 KB, limit 1 KB)"), id="too-large"),
    pytest.param("clip.MP4", b"not decoded here", ReadConfig(), ("video", None), id="video-not-decoded"),
    pytest.param("data.xyz", b"?", ReadConfig(), (None, "unsupported file type .xyz"), id="unsupported"),
    pytest.param("README", b"?", ReadConfig(), (None, "unsupported file type (no extension)"), id="no-extension"),
    pytest.param("fake.zip", b"not a zip at all", ReadConfig(), (None, "not a readable zip archive"), id="not-a-zip"),
    pytest.param(None, b"", ReadConfig(), (None, "no such file or folder"), id="missing"),
]


@pytest.mark.parametrize("filename, content, config, expected", FILE_CASES)
def test_single_files(tmp_path, filename, content, config, expected):
    path = tmp_path / "gone.jpg" if filename is None else write_file(tmp_path / filename, content)
    good = write_file(tmp_path / "after.txt", "still read")
    items = list(read_inputs([str(path), good], config))
    kind, reason = expected
    assert describe_outcomes(items) == [(str(path), kind, reason), (str(good), "text", None)]


def test_read_inputs_is_lazy(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    write_file(folder / "a.txt", "first")
    write_file(folder / "b.txt", "old")
    items = read_inputs([folder])
    assert next(items).text == "first"
    write_file(folder / "b.txt", "written after the first item came out")
    assert next(items).text == "written after the first item came out"

    def paths():
        yield folder / "a.txt"
        raise RuntimeError("the caller's own iterable failed")

    items = read_inputs(paths())
    assert next(items).text == "first"
    with pytest.raises(RuntimeError):
        next(items)


def test_deep_folders_are_walked_without_recursion(tmp_path):
    deepest = tmp_path
    for _ in range(300):
        deepest = deepest / "d"
        deepest.mkdir()
    write_file(deepest / "deep.txt", "found")
    stack_depth, frame = 0, sys._getframe()
    while frame is not None:
        stack_depth, frame = stack_depth + 1, frame.f_back
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(stack_depth + 100)  # a walk that recursed per folder would need 300 more frames
    try:
        items = list(read_inputs([tmp_path], ReadConfig(labels_from_folders=True)))
    finally:
        sys.setrecursionlimit(limit)
    assert [(item.text, item.concept) for item in items] == [("found", "d")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suffix=st.sampled_from([".zip", ".csv", ".tsv", ".txt"]), data=st.binary(max_size=2_000))
def test_random_bytes_never_break_the_walk(tmp_path, suffix, data):
    archive = write_zip(tmp_path / "real.zip", [("a.txt", b"fine"), ("b.csv", b"text\nrow\n")])
    mutated = bytearray(archive.read_bytes())
    mutated[len(data) % len(mutated)] ^= 0xFF
    paths = [write_file(tmp_path / f"random{suffix}", data), write_file(tmp_path / "mutated.zip", bytes(mutated))]
    items = list(read_inputs(paths))
    assert items and all(isinstance(item, RawInput | InputError) for item in items)


@pytest.mark.parametrize(
    "texts, concept, expected",
    [
        (
            ["a cat", "  ", " a dog \n"],
            " cats ",
            [("text 1", "a cat", "cats"), ("text 2", None, "empty text"), ("text 3", "a dog", "cats")],
        ),
        ([], None, []),
        (["x" * 20_001], None, [("text 1", None, "text too long (20,001 characters, limit 20,000)")]),
    ],
)
def test_read_texts(texts, concept, expected):
    items = list(read_texts(texts, concept))
    assert [(i.name, None, i.reason) if isinstance(i, InputError) else (i.name, i.text, i.concept) for i in items] == expected
    for item in items:
        if isinstance(item, RawInput):
            assert (item.kind, item.suffix, item.data) == ("text", ".txt", item.text.encode())


@pytest.mark.parametrize(
    "target, follow, expected",
    [
        ("outside", False, (None, "link to a file outside the folder (not followed; --follow-links reads it)")),
        ("outside", True, ("text", None)),
        ("inside", False, ("text", None)),  # a link to a file of the same folder is that file
        ("nowhere", False, (None, "link to a folder or to nothing (not followed)")),
    ],
)
def test_links_in_a_folder_never_read_files_outside_it_unless_asked(tmp_path, target, follow, expected):
    secret = write_file(tmp_path / "secret.txt", "a private file")
    folder = tmp_path / "shared"
    folder.mkdir()
    write_file(folder / "real.txt", "a shared file")
    pointed = {"outside": secret, "inside": folder / "real.txt", "nowhere": tmp_path / "gone.txt"}[target]
    (folder / "link.txt").symlink_to(pointed)
    items = list(read_inputs([folder], ReadConfig(follow_links=follow)))
    assert describe_outcomes(items) == [(f"{folder}/link.txt", *expected), (f"{folder}/real.txt", "text", None)]
    if expected[0] == "text" and target == "outside":
        assert items[0].text == "a private file"


@pytest.mark.parametrize(
    "files, limit, expected",
    [
        # (file name, content); the limit counts inputs only, so bad files are still each named.
        ([("a.txt", "one"), ("b.txt", "two")], 2, [("a.txt", "text", None), ("b.txt", "text", None)]),
        (
            [("a.txt", "one"), ("b.txt", ""), ("c.txt", "three"), ("d.txt", "four")],
            2,
            [("a.txt", "text", None), ("b.txt", None, "empty file"), ("c.txt", "text", None), ("d.txt", None, "more than 2 inputs")],
        ),
        # Rows of a table count one each: the batch stops inside it, at the row past the limit.
        (
            [("a.txt", "one"), ("b.csv", "text\nx\ny\nz\n")],
            3,
            [
                ("a.txt", "text", None),
                ("b.csv:row 2", "text", None),
                ("b.csv:row 3", "text", None),
                ("b.csv:row 4", None, "more than 3 inputs"),
            ],
        ),
    ],
    ids=["at-limit", "over-limit", "inside-a-table"],
)
def test_a_batch_stops_at_its_input_limit_with_one_line(tmp_path, files, limit, expected):
    for name, content in files:
        write_file(tmp_path / name, content)
    items = list(read_inputs([tmp_path], ReadConfig(max_inputs=limit)))
    outcomes = [
        (name.removeprefix(f"{tmp_path}/"), kind, what if what is None or kind else what[:18])
        for name, kind, what in describe_outcomes(items)
    ]
    assert outcomes == expected
    if expected[-1][2] and expected[-1][2].startswith("more than"):
        assert items[-1].reason == f"more than {limit} inputs in one batch: this one and the rest were not read (add them in another batch)"


def test_a_file_deleted_after_the_folder_was_listed_gets_its_line(tmp_path):
    for name in ("a.txt", "b.txt", "c.txt"):
        write_file(tmp_path / name, f"text {name}")
    items = read_inputs([tmp_path])
    first = next(items)  # the folder is listed now; b.txt goes before it is read
    (tmp_path / "b.txt").unlink()
    rest = list(items)
    assert first.name.endswith("a.txt") and isinstance(rest[1], RawInput) and rest[1].name.endswith("c.txt")
    assert rest[0].name == str(tmp_path / "b.txt") and rest[0].reason == "gone before it could be read (moved or deleted during the ingest)"


@pytest.mark.parametrize(
    "given, keep_paths, stored",
    [
        # What was ingested, named from the folder or file given: never the folders above it.
        ("{root}/photos", False, ["photos/cats/a.txt", "photos/notes.csv:row 2", "photos/pack.zip/b.txt"]),
        ("{root}/photos/", False, ["photos/cats/a.txt", "photos/notes.csv:row 2", "photos/pack.zip/b.txt"]),
        ("{root}/photos/cats/a.txt", False, ["a.txt"]),
        ("{root}/photos/notes.csv", False, ["notes.csv:row 2"]),
        ("{root}/photos/pack.zip", False, ["pack.zip/b.txt"]),
        ("photos/cats/../cats", False, ["cats/a.txt"]),  # relative, with '..': still only what was given
        # Asked for, the path as given.
        ("{root}/photos", True, ["{root}/photos/cats/a.txt", "{root}/photos/notes.csv:row 2", "{root}/photos/pack.zip/b.txt"]),
    ],
)
def test_inputs_are_stored_under_names_relative_to_what_was_ingested(tmp_path, monkeypatch, given, keep_paths, stored):
    (tmp_path / "photos" / "cats").mkdir(parents=True)
    write_file(tmp_path / "photos" / "cats" / "a.txt", "a cat")
    write_file(tmp_path / "photos" / "notes.csv", "text\na note\n")
    write_zip(tmp_path / "photos" / "pack.zip", [("b.txt", b"b in a zip")])
    monkeypatch.chdir(tmp_path)
    items = list(read_inputs([given.format(root=tmp_path)], ReadConfig(keep_paths=keep_paths)))
    assert all(isinstance(item, RawInput) for item in items)
    assert [item.stored_name or item.name for item in items] == [name.format(root=tmp_path) for name in stored]
    assert all(item.name.startswith(given.format(root=tmp_path)) for item in items)  # messages keep the path as typed
