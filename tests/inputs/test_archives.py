"""Tests for core.inputs.archives: zip entries as their folders would be, and every hostile entry refused alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.errors import InputError
from core.inputs import (
    RawInput,
    ReadConfig,
    read_inputs,
)
from tests.media_fixtures import (
    describe_outcomes,
    make_image,
    mark_encrypted,
    symlink_entry,
    write_zip,
)

TREE_ORDER = ["cats/a.jpg", "cats/b.png", "dogs/c.jpg", "notes.txt", "top.jpg"]
TREE_KINDS = ["image", "image", "image", "text", "image"]


def test_zip_matches_the_folder(tree, tmp_path):
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    archive = write_zip(tmp_path / "pets.zip", [(str(p.relative_to(tree)), p.read_bytes()) for p in files])
    from_zip = list(read_inputs([archive], ReadConfig(labels_from_folders=True)))
    from_folder = list(read_inputs([tree], ReadConfig(labels_from_folders=True)))
    assert describe_outcomes(from_zip) == [
        (f"{archive}/{p}", k, c) for p, k, c in zip(TREE_ORDER, TREE_KINDS, ["cats", "cats", "dogs", None, None], strict=True)
    ]
    assert [i.sha256 for i in from_zip] == [i.sha256 for i in from_folder]
    assert [i.data for i in from_zip] == [i.data for i in from_folder]


ZIP_ENTRY_CASES = [
    # entry, bytes, expected reason (None: comes through)
    pytest.param("ok.txt", b"fine", None, id="good-text"),
    pytest.param("cats/a.jpg", make_image("JPEG"), None, id="good-image"),
    pytest.param("../evil.txt", b"escape", r"path leads outside the archive \('\.\.'\)", id="dot-dot"),
    pytest.param("cats/../../evil.txt", b"escape", "path leads outside the archive .*", id="nested-dot-dot"),
    pytest.param("/etc/evil.txt", b"absolute", "absolute path in archive", id="absolute"),
    pytest.param("C:/evil.txt", b"absolute", "absolute path in archive", id="drive-letter"),
    pytest.param(symlink_entry("link.txt"), b"/etc/passwd", "symbolic link in archive", id="symlink"),
    pytest.param("inner.zip", b"PK\x05\x06" + b"\0" * 18, "archives inside archives are not supported", id="nested-zip"),
    pytest.param("run.exe", b"MZ", r"unsupported file type \.exe", id="unsupported"),
    pytest.param("blank.txt", b"", "empty file", id="empty"),
    pytest.param("bomb.txt", b"\0" * (20 * 1024**2), r"compressed too much \([\d,]+ to 1, limit 250\), possibly a zip bomb", id="zip-bomb"),
    pytest.param("repetitive.txt", b"ab" * 5_000, None, id="small-and-compressible-is-fine"),
    pytest.param(".DS_Store", b"junk", "skipped", id="hidden"),
    pytest.param("__MACOSX/._ok.txt", b"junk", "skipped", id="macosx"),
]


@pytest.mark.parametrize("entry, data, reason", ZIP_ENTRY_CASES)
def test_zip_entries(tmp_path, entry, data, reason):
    archive = write_zip(tmp_path / "upload.zip", [(entry, data), ("zz-last.txt", b"still read")])
    items = list(read_inputs([archive]))
    assert describe_outcomes(items[-1:]) == [(f"{archive}/zz-last.txt", "text", None)]
    if reason == "skipped":
        assert len(items) == 1
    elif reason is None:
        assert isinstance(items[0], RawInput) and items[0].data == data
    else:
        [error] = items[:-1]
        assert isinstance(error, InputError)
        assert error.name.startswith(f"{archive}/") and error.name.endswith(Path(str(getattr(entry, "filename", entry))).name)
        assert re.fullmatch(reason, error.reason), error.reason


def test_encrypted_zip_entry(tmp_path):
    archive = mark_encrypted(write_zip(tmp_path / "locked.zip", [("secret.txt", b"x"), ("open.txt", b"y")]), "secret.txt")
    assert describe_outcomes(read_inputs([archive])) == [
        (f"{archive}/open.txt", "text", None),
        (f"{archive}/secret.txt", None, "encrypted entry"),
    ]


ZIP_ARCHIVE_CASES = [
    pytest.param(ReadConfig(max_zip_entries=3), r"too many entries \(5, limit 3\)", id="entries"),
    pytest.param(ReadConfig(max_zip_total_bytes=100), r"too large when unpacked \(1.2 KB, limit 100 bytes\)", id="total-size"),
]


@pytest.mark.parametrize("config, reason", ZIP_ARCHIVE_CASES)
def test_zip_archive_limits(tmp_path, config, reason):
    archive = write_zip(tmp_path / "many.zip", [(f"{i}.txt", b"x" * 250) for i in range(5)])
    [error] = read_inputs([archive], config)
    assert isinstance(error, InputError) and error.name == str(archive)
    assert re.fullmatch(reason, error.reason), error.reason


def test_csv_inside_zip_and_folder_concept(tmp_path):
    archive = write_zip(tmp_path / "data.zip", [("cats/notes.csv", b"text\npurr\n\n")])
    assert describe_outcomes(read_inputs([archive], ReadConfig(labels_from_folders=True))) == [
        (f"{archive}/cats/notes.csv:row 2", "text", "cats")
    ]
