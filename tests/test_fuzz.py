"""Fuzzing the decoders and readers with hypothesis: no input may crash or hang; each failure is one line naming it.

Every target gets structured inputs (real images of many formats and modes, real videos, tables with
quotes and line breaks in odd places, archives with hostile names) and then damage on top: flipped
bytes, cut ends, spliced chunks, header fields overwritten with huge numbers.

``make test`` runs a bounded number of examples; ``make fuzz`` (CONCEPTLAB_FUZZ=1) runs many more,
with hypothesis keeping the failures it finds in .hypothesis/ for the next run.
"""

from __future__ import annotations

import io
import os
import struct
import time
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.errors import InputError
from core.ingestion import ingest
from core.inputs import RawInput, ReadConfig, VideoConfig, decode_image, read_inputs, sample_frames
from core.storage.projects import create_project
from tests.media_fixtures import run_ffmpeg

FUZZ = os.environ.get("CONCEPTLAB_FUZZ") == "1"
EXAMPLES = int(os.environ.get("CONCEPTLAB_FUZZ_EXAMPLES") or 0)  # overrides every target's count when set
HANG_S = 20.0  # no single input may take longer than this


def fuzz_settings(quick: int, long: int):
    return settings(
        max_examples=EXAMPLES or (long if FUZZ else quick),
        deadline=None,
        derandomize=not FUZZ,  # make test is reproducible; make fuzz explores
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    )


def _assert_one_line(error: InputError, name: str) -> None:
    event(f"refused: {error.reason.split(' (')[0]}")  # --hypothesis-show-statistics tallies the outcomes
    assert isinstance(error, InputError)
    assert error.name == name or error.name.startswith(f"{name}/") or error.name.startswith(f"{name}:row "), error.name
    assert error.reason and "Traceback" not in error.reason
    assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in str(error)), str(error)  # one line, whatever was uploaded


# ---------------------------------------------------------------- damage


@st.composite
def damaged(draw, original: bytes) -> bytes:
    """``original`` with a few kinds of damage: flips, huge header numbers, cuts, splices, repeats."""
    data = bytearray(original)
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        kind = draw(st.sampled_from(["flip", "huge", "cut", "splice", "repeat", "insert"]))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "huge" and at < 256 and at + 4 <= len(data):  # header fields: sizes, counts, offsets
            struct.pack_into(draw(st.sampled_from([">I", "<I", ">H", "<H"])), data, at, draw(st.sampled_from([0, 0xFFFF, 0x7FFF])))
        elif kind == "cut":
            del data[at:]
        elif kind == "splice":
            end = min(len(data), at + draw(st.integers(1, 64)))
            data[at:end] = draw(st.binary(min_size=0, max_size=64))
        elif kind == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 512))] * draw(st.integers(1, 20))
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
    return bytes(data)


# ---------------------------------------------------------------- images

IMAGE_KINDS = [
    ("JPEG", "RGB"),
    ("JPEG", "L"),
    ("JPEG", "CMYK"),
    ("PNG", "RGB"),
    ("PNG", "RGBA"),
    ("PNG", "LA"),
    ("PNG", "P"),
    ("PNG", "I;16"),
    ("PNG", "1"),
    ("GIF", "P"),
    ("BMP", "RGB"),
    ("TIFF", "RGB"),
    ("TIFF", "CMYK"),
    ("TIFF", "I;16"),
    ("TIFF", "F"),
    ("TIFF", "I"),
    ("WEBP", "RGB"),
    ("WEBP", "RGBA"),
]


@st.composite
def images(draw) -> bytes:
    fmt, mode = draw(st.sampled_from(IMAGE_KINDS))
    size = (draw(st.integers(1, 48)), draw(st.integers(1, 48)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    base = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    image = (
        base.convert(mode)
        if mode not in ("I;16", "F", "I")
        else Image.fromarray(
            (rng.random((size[1], size[0])) * (65535 if mode != "F" else 1)).astype(
                {"I;16": np.uint16, "F": np.float32, "I": np.int32}[mode]
            )
        )
    )
    buffer = io.BytesIO()
    frames = draw(st.integers(1, 3)) if fmt in ("GIF", "WEBP", "PNG", "TIFF") else 1
    extra = [image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)] * (frames - 1)
    image.save(buffer, fmt, **({"save_all": True, "append_images": extra} if frames > 1 else {}))
    return draw(damaged(buffer.getvalue()))


@fuzz_settings(quick=150, long=20_000)
@given(data=images(), min_side=st.sampled_from([None, 16, 224]))
def test_fuzz_decode_image(data, min_side):
    start = time.monotonic()
    try:
        image = decode_image(data, "fuzz.img", min_side=min_side)
    except InputError as e:
        _assert_one_line(e, "fuzz.img")
    else:
        event("decoded")
        assert image.mode == "RGB" and image.width * image.height <= 64_000_000
        image.resize((8, 8))  # the pixels are really there
    assert time.monotonic() - start < HANG_S


# ---------------------------------------------------------------- videos


@pytest.fixture(scope="module")
def video_seeds(tmp_path_factory) -> list[tuple[str, bytes]]:
    tmp = tmp_path_factory.mktemp("fuzz-videos")
    seeds = []
    for suffix, codec in ((".mp4", "libx264"), (".webm", "libvpx"), (".avi", "mjpeg"), (".mkv", "mpeg4"), (".mov", "libx264")):
        path = tmp / f"seed{suffix}"
        run_ffmpeg("-f", "lavfi", "-i", "testsrc=d=2:s=32x24:r=5", "-c:v", codec, "-pix_fmt", "yuv420p", str(path))
        seeds.append((suffix, path.read_bytes()))
    return seeds


@fuzz_settings(quick=12, long=1_500)
@given(data=st.data())
def test_fuzz_sample_frames(video_seeds, data):
    suffix, original = data.draw(st.sampled_from(video_seeds))
    damaged_bytes = data.draw(damaged(original))
    claimed = data.draw(st.sampled_from([suffix, ".mp4", ".webm", ".bin"]))
    start = time.monotonic()
    try:
        frames = sample_frames(damaged_bytes, f"fuzz{claimed}", VideoConfig(max_frames=8, timeout_s=HANG_S), suffix=claimed)
    except InputError as e:
        _assert_one_line(e, f"fuzz{claimed}")
    else:
        event("sampled")
        assert 1 <= len(frames.images) <= 8 and all(i.mode == "RGB" for i in frames.images)
    assert time.monotonic() - start < HANG_S + 5


# ---------------------------------------------------------------- tables and texts

CELL_TOKENS = st.sampled_from(list("abc xyz,;\t\"'\n\r\x00é漢😀\ufeff\u2028=+-@\\") + ["text", "label", "  ", "\r\n"])
CELLS = st.lists(CELL_TOKENS, max_size=12).map("".join)
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "shift_jis"]


@st.composite
def tables(draw) -> tuple[str, bytes, ReadConfig]:
    suffix = draw(st.sampled_from([".csv", ".tsv"]))
    delimiter = "\t" if suffix == ".tsv" else ","
    header = draw(st.lists(st.sampled_from(["text", "label", "Text", "id", "", "tex t", '"text"']), min_size=0, max_size=4))
    rows = draw(st.lists(st.lists(CELLS, max_size=5), max_size=12))
    lines = [delimiter.join(header)] + [delimiter.join(row) for row in rows]
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    encoding = draw(st.sampled_from(ENCODINGS))
    data = text.encode(encoding, errors="replace")
    if draw(st.booleans()):
        data = draw(damaged(data))
    config = ReadConfig(
        text_column=draw(st.sampled_from([None, "text", "label", "missing"])),
        label_column=draw(st.sampled_from([None, "label", "id"])),
        max_text_chars=draw(st.sampled_from([5, 20_000])),
    )
    return suffix, data, config


def _check_texts(items: list, path: Path, config: ReadConfig) -> None:
    for item in items:
        if isinstance(item, InputError):
            _assert_one_line(item, str(path))
        else:
            event("text")
            assert isinstance(item, RawInput) and item.kind == "text"
            assert item.text and item.text == item.text.strip() and len(item.text) <= config.max_text_chars
            assert "\x00" not in item.text
            assert item.name == str(path) or item.name.startswith(f"{path}:row ")
            if item.concept is not None:
                assert item.concept == item.concept.strip() and item.concept


@fuzz_settings(quick=200, long=30_000)
@given(table=tables())
def test_fuzz_tables(tmp_path_factory, table):
    suffix, data, config = table
    path = tmp_path_factory.mktemp("table") / f"fuzz{suffix}"
    path.write_bytes(data)
    start = time.monotonic()
    items = list(read_inputs([path], config))
    _check_texts(items, path, config)
    rows = [int(i.name.rsplit("row ", 1)[1]) for i in items if ":row " in i.name]
    assert rows == sorted(rows) and len(rows) == len(set(rows))
    assert time.monotonic() - start < HANG_S


@fuzz_settings(quick=150, long=20_000)
@given(
    text=st.lists(CELL_TOKENS, max_size=100).map("".join),
    encoding=st.sampled_from(ENCODINGS),
    noise=st.binary(max_size=64),
    spoil=st.booleans(),
)
def test_fuzz_text_files(tmp_path_factory, text, encoding, noise, spoil):
    path = tmp_path_factory.mktemp("text") / "fuzz.txt"
    data = text.encode(encoding, errors="replace") + (noise if spoil else b"")
    path.write_bytes(data)
    config = ReadConfig(max_text_chars=150)
    items = list(read_inputs([path], config))
    assert len(items) == 1
    _check_texts(items, path, config)
    if isinstance(items[0], RawInput):
        assert items[0].data == data  # the original bytes are kept, whatever their encoding


# ---------------------------------------------------------------- archives

ENTRY_PARTS = st.sampled_from(["..", ".", "", "cats", "Dogs", "été", "__MACOSX", ".hidden", "a" * 100, "C:", "\\..", "x\\y", " "])
ENTRY_SUFFIXES = st.sampled_from([".txt", ".csv", ".tsv", ".png", ".jpg", ".mp4", ".zip", ".ZIP", ".exe", "", ".TXT"])


@st.composite
def entry_names(draw) -> str:
    parts = draw(st.lists(ENTRY_PARTS, min_size=0, max_size=4))
    name = "/".join([*parts, draw(st.sampled_from(["a", "b", ".x", "n"])) + draw(ENTRY_SUFFIXES)])
    return draw(st.sampled_from(["", "/", "//"])) + name


PNG = io.BytesIO()
Image.new("RGB", (8, 8), (200, 10, 10)).save(PNG, "PNG")


@st.composite
def archives(draw) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for _ in range(draw(st.integers(0, 6))):
            info = zipfile.ZipInfo(draw(entry_names()))
            info.compress_type = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]))
            if draw(st.integers(0, 5)) == 0:
                info.external_attr = (0o120777 << 16) if draw(st.booleans()) else (0o040755 << 16) | 0x10
            payload = draw(st.sampled_from([b"", b"hello", b"text\nrow one\n", PNG.getvalue(), b"\0" * 3000, b"PK\x05\x06" + b"\0" * 18]))
            archive.writestr(info, payload)
    data = buffer.getvalue()
    return draw(damaged(data)) if draw(st.booleans()) else data


@fuzz_settings(quick=200, long=30_000)
@given(data=archives(), labels=st.booleans())
def test_fuzz_zip_archives(tmp_path_factory, data, labels):
    folder = tmp_path_factory.mktemp("zip")
    path = folder / "fuzz.zip"
    path.write_bytes(data)
    start = time.monotonic()
    items = list(read_inputs([path], ReadConfig(labels_from_folders=labels)))
    assert items, "an archive always says something, if only that it holds nothing"
    for item in items:
        if isinstance(item, InputError):
            _assert_one_line(item, str(path))
            continue
        event(f"read: {item.kind}")
        inner = item.name[len(str(path)) + 1 :].split(":row ")[0].replace("\\", "/")
        assert item.name.startswith(f"{path}/")
        assert ".." not in inner.split("/") and not inner.startswith("/") and not inner[1:2] == ":"
        assert not any(part.startswith(".") or part == "__MACOSX" for part in inner.split("/") if part not in ("", "."))
        if item.concept is not None:
            assert "/" not in item.concept and item.concept.strip() == item.concept
    assert [p.name for p in folder.iterdir()] == ["fuzz.zip"]  # nothing unpacked, anywhere
    assert time.monotonic() - start < HANG_S


# ---------------------------------------------------------------- everything through ingest


@fuzz_settings(quick=25, long=2_000)
@given(files=st.lists(st.tuples(ENTRY_SUFFIXES, st.one_of(images(), archives(), st.binary(max_size=300))), min_size=1, max_size=8))
def test_fuzz_ingest_of_a_folder(tmp_path_factory, files):
    """A folder of random and damaged files goes through ingest: each is stored or fails in one line, the project stays whole."""
    home = tmp_path_factory.mktemp("home")
    folder = home / "upload"
    folder.mkdir()
    for i, (suffix, data) in enumerate(files):
        (folder / f"f{i}{suffix}").write_bytes(data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONCEPTLAB_HOME", str(home))
        project = create_project("p", "tiny")
        report = ingest(project, read_inputs([folder], ReadConfig(labels_from_folders=True)))
        for failure in report.failed:
            _assert_one_line(failure, failure.name)
            assert failure.name.startswith(str(folder / "f"))
        stored = project.store.list_inputs()
        assert {r.id for r in stored} == set(report.added)
        assert set(project.store.embedding_spaces(report.added)) == set(report.added)
        for record in stored:
            assert project.store.read_blob(record)
        project.store.close()
