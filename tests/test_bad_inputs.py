"""Hostile and broken inputs, one class per row: what each must become (an input, or one InputError line).

tests/test_media.py holds the everyday cases (truncated JPEG/PNG, a huge PNG header, CMYK JPEG, 16-bit
PNG/TIFF, animated GIF/WEBP/TIFF, zip traversal and bombs); these are the rest of the hostile classes.
tests/test_fuzz.py throws random variations of all of them at the same functions.
"""

from __future__ import annotations

import codecs
import io
import resource
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import InputError
from core.inputs import RawInput, ReadConfig, VideoConfig, decode_image, read_inputs, sample_frames
from tests.media_fixtures import RED, make_image, run_ffmpeg

# ---------------------------------------------------------------- images


def _patched(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    raw = bytearray(data)
    struct.pack_into(fmt, raw, offset, *values)
    return bytes(raw)


def _huge_jpeg() -> bytes:
    data = make_image("JPEG")
    sof = data.find(b"\xff\xc0")
    return _patched(data, sof + 5, ">HH", 65000, 65000)


def _huge_webp() -> bytes:
    data = bytearray(make_image("WEBP", lossless=True))
    bits = struct.unpack_from("<I", data, 21)[0] & ~((1 << 28) - 1)
    struct.pack_into("<I", data, 21, bits | 16383 | (16383 << 14))  # VP8L: 14-bit width - 1 and height - 1
    return bytes(data)


def _huge_tiff() -> bytes:
    data = make_image("TIFF")
    width, height = data.find(struct.pack("<HHI", 256, 3, 1)), data.find(struct.pack("<HHI", 257, 3, 1))
    return _patched(_patched(data, width + 8, "<H", 60000), height + 8, "<H", 60000)


def _png(width: int, height: int, depth: int, colour_type: int, pixel: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\0" + pixel * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _frames(fmt: str, count: int, **save) -> bytes:
    frames = [Image.new("RGB", (16, 16), (255, 0, 0) if i == 0 else (0, 0, (i * 7) % 256)) for i in range(count)]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], **save)
    return buffer.getvalue()


def _array_tiff(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    (Image.fromarray(array, mode) if mode else Image.fromarray(array)).save(buffer, "TIFF")
    return buffer.getvalue()


def _cut(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


TOO_LARGE = "image too large"
UNREADABLE = "not a readable image|truncated image"
IMAGE_CASES = [
    # bytes, expected: an (width, height) and the colour at (2, 2), or the reason's pattern
    pytest.param(lambda: _patched(make_image("GIF"), 6, "<HH", 65535, 65535), TOO_LARGE, id="huge-gif-screen"),
    pytest.param(lambda: _patched(make_image("BMP"), 18, "<ii", 60000, 60000), TOO_LARGE, id="huge-bmp"),
    pytest.param(lambda: _patched(make_image("BMP"), 18, "<ii", 60000, -60000), TOO_LARGE, id="huge-bmp-top-down"),
    pytest.param(_huge_jpeg, TOO_LARGE, id="huge-jpeg"),
    pytest.param(_huge_webp, TOO_LARGE, id="huge-webp"),
    pytest.param(_huge_tiff, f"{TOO_LARGE}|{UNREADABLE}", id="huge-tiff"),
    pytest.param(lambda: _cut(make_image("GIF", size=(200, 100))), UNREADABLE, id="truncated-gif"),
    pytest.param(lambda: _cut(make_image("WEBP", size=(200, 100))), UNREADABLE, id="truncated-webp"),
    pytest.param(lambda: _cut(make_image("BMP", size=(200, 100))), UNREADABLE, id="truncated-bmp"),
    pytest.param(lambda: _cut(make_image("TIFF", size=(200, 100))), UNREADABLE, id="truncated-tiff"),
    pytest.param(lambda: make_image("GIF")[:12], UNREADABLE, id="header-only-gif"),
    pytest.param(lambda: make_image("TIFF", mode="CMYK", colour=(0, 255, 255, 0)), ((40, 30), RED), id="cmyk-tiff"),
    pytest.param(lambda: make_image("JPEG", mode="CMYK", colour=(0, 255, 255, 0), quality=95), ((40, 30), RED), id="cmyk-jpeg"),
    pytest.param(lambda: _png(20, 10, 16, 2, b"\xff\xff\x00\x00\x00\x00"), ((20, 10), RED), id="png-48-bit-rgb"),
    pytest.param(lambda: _png(20, 10, 16, 6, b"\xff\xff\x00\x00\x00\x00\xff\xff"), ((20, 10), RED), id="png-64-bit-rgba"),
    pytest.param(lambda: _png(20, 10, 16, 4, b"\x80\x00\x00\x00"), ((20, 10), (255, 255, 255)), id="png-16-bit-la-transparent"),
    pytest.param(lambda: _array_tiff(np.full((10, 20), 65535, ">u2"), "I;16B"), ((20, 10), (255, 255, 255)), id="tiff-16-bit-big-endian"),
    pytest.param(lambda: _frames("PNG", 3), ((16, 16), RED), id="animated-png"),
    pytest.param(lambda: _frames("GIF", 2000, duration=10), ((16, 16), RED), id="gif-2000-frames"),
    pytest.param(lambda: _frames("WEBP", 50, duration=10), ((16, 16), RED), id="webp-50-frames"),
    pytest.param(lambda: make_image("TIFF", mode="LAB", colour=(50, 0, 0)), ((40, 30), None), id="lab-tiff"),
    pytest.param(lambda: make_image("ICO"), UNREADABLE, id="icon-not-offered"),
    pytest.param(lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", UNREADABLE, id="eps-never-runs-ghostscript"),
    pytest.param(lambda: b"<svg xmlns='http://www.w3.org/2000/svg' width='99999' height='99999'/>", UNREADABLE, id="svg"),
]


@pytest.mark.parametrize("make, expected", IMAGE_CASES)
def test_hostile_images(make, expected):
    data = make()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    if isinstance(expected, str):
        with pytest.raises(InputError, match=expected) as raised:
            decode_image(data, "upload.jpg")
        assert raised.value.name == "upload.jpg" and "\n" not in str(raised.value)
    else:
        size, colour = expected
        image = decode_image(data, "upload.jpg")
        assert image.mode == "RGB" and image.size == size
        if colour is not None:
            assert all(abs(a - b) <= 40 for a, b in zip(image.getpixel((2, 2)), colour)), image.getpixel((2, 2))
    assert time.monotonic() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300 * 1024  # KiB: nothing huge was allocated


# ---------------------------------------------------------------- videos


def _lavfi(tmp: Path, name: str, source: str, *args: str) -> bytes:
    path = tmp / name
    run_ffmpeg("-f", "lavfi", "-i", source, *args, str(path))
    return path.read_bytes()


def _still(fmt: str) -> bytes:
    return make_image(fmt, size=(32, 24))


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("bad-videos")
    h264 = ("-c:v", "libx264", "-pix_fmt", "yuv420p")
    cover = tmp / "cover.jpg"
    Image.new("RGB", (64, 64), RED).save(cover)
    song = tmp / "song.mp3"
    song_args = "-c:a libmp3lame -c:v copy -disposition:v attached_pic".split()
    run_ffmpeg("-f", "lavfi", "-i", "sine=d=3", "-i", str(cover), "-map", "0", "-map", "1", *song_args, str(song))
    return {
        "good": _lavfi(tmp, "good.mp4", "testsrc=d=3:s=64x48:r=10", *h264),
        "zero-frames-mp4": _lavfi(tmp, "zero.mp4", "color=c=red:s=16x16:r=10", "-frames:v", "0", "-c:v", "libx264"),
        "zero-frames-mkv": _lavfi(tmp, "zero.mkv", "color=c=red:s=16x16:r=10", "-frames:v", "0", "-c:v", "mpeg4"),
        "wav": _lavfi(tmp, "a.wav", "sine=d=1"),
        "mp3": _lavfi(tmp, "a.mp3", "sine=d=1"),
        "song-with-cover": song.read_bytes(),
        # One frame every 10 minutes: long videos that are quick to make and to seek.
        "five-hours": _lavfi(tmp, "long5.mp4", "color=c=red:s=16x16:r=1/600", "-t", "18000", *h264),
        "three-hours": _lavfi(tmp, "long3.mp4", "color=c=red:s=16x16:r=1/600", "-t", "10800", *h264),
    }


VIDEO_CASES = [
    # which bytes, the suffix they arrive with, expected frame count or the reason's pattern
    pytest.param("good", ".webm", 3, id="mp4-named-webm"),
    pytest.param("good", ".avi", 3, id="mp4-named-avi"),
    pytest.param("zero-frames-mp4", ".mp4", "not a readable video", id="no-frames-mp4"),
    pytest.param("zero-frames-mkv", ".mkv", "not a readable video", id="no-frames-mkv"),
    pytest.param("wav", ".mp4", "no video stream", id="wav-as-mp4"),
    pytest.param("mp3", ".mov", "no video stream", id="mp3-as-mov"),
    pytest.param("song-with-cover", ".mp4", r"no video stream \(only a cover picture\)", id="song-with-cover-art"),
    pytest.param("five-hours", ".mp4", r"video too long \(5.0 hours, limit 4\)", id="absurd-length"),
    pytest.param("three-hours", ".mp4", 120, id="long-video-capped-at-max-frames"),
    pytest.param("png", ".mp4", "a still image, not a video", id="png-as-mp4"),
    pytest.param("jpeg", ".mov", "a still image, not a video", id="jpeg-as-mov"),
    pytest.param("gif", ".mp4", 2, id="animated-gif-as-mp4-is-a-video"),
    pytest.param("srt", ".mkv", "not a readable video", id="subtitles-as-mkv"),
    pytest.param("zip", ".mp4", "not a readable video", id="zip-as-mp4"),
]


@pytest.mark.parametrize("which, suffix, expected", VIDEO_CASES)
def test_hostile_videos(videos, which, suffix, expected):
    extra = {
        "png": _still("PNG"),
        "jpeg": _still("JPEG"),
        "gif": _frames("GIF", 20, duration=100),
        "srt": b"1\n00:00:00,000 --> 00:00:01,000\nhello\n",
        "zip": _zip_bytes({"a.txt": b"x" * 100}),
    }
    data = videos.get(which) or extra[which]
    start = time.monotonic()
    if isinstance(expected, str):
        with pytest.raises(InputError, match=expected) as raised:
            sample_frames(data, f"clip{suffix}", suffix=suffix)
        assert raised.value.name == f"clip{suffix}" and "\n" not in str(raised.value)
    else:
        frames = sample_frames(data, f"clip{suffix}", VideoConfig(max_frames=120), suffix=suffix)
        assert len(frames.times) == expected and len(frames.images) == expected
    assert time.monotonic() - start < 30


# ---------------------------------------------------------------- texts and tables


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _outcome(items) -> list[tuple[str, str | None]]:
    return [(i.name.rsplit("/", 1)[-1], i.reason if isinstance(i, InputError) else i.text) for i in items]


TEXT_CASES = [
    # file name, bytes, what comes out: (name, reason or text) per item
    pytest.param("a.txt", b"", [("a.txt", "empty file")], id="empty"),
    pytest.param("a.txt", b" \n\t\r\n ", [("a.txt", "empty text")], id="blank"),
    pytest.param("a.txt", b"word " * 6_000_000, [("a.txt", "text too long (28.6 MB, limit 20,000 characters)")], id="30-MB-text"),
    pytest.param("a.txt", "café".encode("latin-1"), [("a.txt", "not UTF-8 text")], id="latin-1"),
    pytest.param("a.txt", "naïve “quotes”".encode("cp1252"), [("a.txt", "not UTF-8 text")], id="windows-1252"),
    pytest.param("a.txt", "日本語のテキスト".encode("shift_jis"), [("a.txt", "not UTF-8 text")], id="shift-jis"),
    pytest.param("a.txt", "héllo wörld".encode("utf-16"), [("a.txt", "héllo wörld")], id="utf-16-with-bom"),
    pytest.param("a.txt", codecs.BOM_UTF16_BE + "héllo".encode("utf-16-be"), [("a.txt", "héllo")], id="utf-16-be"),
    pytest.param("a.txt", "héllo".encode("utf-32"), [("a.txt", "héllo")], id="utf-32-with-bom"),
    pytest.param("a.txt", codecs.BOM_UTF16_LE + b"\x00\xd8", [("a.txt", "not UTF-16 text")], id="broken-utf-16"),
    pytest.param("a.txt", b"\x00" * 100, [("a.txt", "binary data, not text (it holds NUL characters)")], id="nul-bytes"),
    pytest.param("a.txt", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, [("a.txt", "not UTF-8 text")], id="png-named-txt"),
    pytest.param("t.csv", "text\nhéllo\n".encode("utf-16"), [("t.csv:row 2", "héllo")], id="utf-16-csv-from-excel"),
    pytest.param("t.tsv", "text\tlabel\nhéllo\tx\n".encode("utf-16"), [("t.tsv:row 2", "héllo")], id="utf-16-tsv"),
    pytest.param("t.csv", "text\ncafé\n".encode("latin-1"), [("t.csv", "not UTF-8 text")], id="latin-1-csv"),
    pytest.param(
        "t.csv",
        b"text\nab\x00cd\nok\n",
        [("t.csv:row 2", "binary data, not text (it holds NUL characters)"), ("t.csv:row 3", "ok")],
        id="nul-in-a-row",
    ),
    pytest.param(
        "t.csv",
        b"text\n" + b"x" * 3_000_000 + b"\nafter\n",
        [("t.csv:row 2", "malformed row (a line longer than 1,048,576 characters)"), ("t.csv:row 3", "after")],
        id="3-MB-line",
    ),
    pytest.param(
        "t.csv",
        b'text\n"' + b"y" * 200_000 + b'"\nafter\n',
        [("t.csv:row 2", "malformed row (field larger than field limit (131072))"), ("t.csv:row 3", "after")],
        id="huge-quoted-field",
    ),
    pytest.param("t.csv", b"text\rone\rtwo\r", [("t.csv:row 2", "one"), ("t.csv:row 3", "two")], id="old-mac-line-ends"),
    pytest.param("t.csv", b'"te\nxt",b\n1,2\n', [("t.csv", "column 'text' not found (columns: te\\nxt, b)")], id="line-break-in-header"),
    pytest.param(
        "t.csv",
        ",".join(f"c{i}" for i in range(5000)).encode() + b"\n",
        [("t.csv", "column 'text' not found (columns: " + ", ".join(f"c{i}" for i in range(12)) + ", … (4,988 more))")],
        id="5000-columns",
    ),
]


@pytest.mark.parametrize("filename, data, expected", TEXT_CASES)
def test_hostile_texts(tmp_path, filename, data, expected):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    items = list(read_inputs([_write(tmp_path, filename, data)], ReadConfig(label_column=None)))
    assert _outcome(items) == expected
    assert all("\n" not in str(i) for i in items if isinstance(i, InputError))
    assert time.monotonic() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024


# ---------------------------------------------------------------- archives


def _zip_bytes(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _overlap_bomb(copies: int = 200, size: int = 4 * 1024**2) -> bytes:
    """Fifield's trick in its plainest form: every directory entry points at the same compressed stream."""
    raw = b"a" * size
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = compressor.compress(raw) + compressor.flush()
    crc = zlib.crc32(raw)
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(stream), len(raw), 5, 0) + b"a.txt" + stream
    central = b""
    for i in range(copies):
        name = f"f{i:03d}.txt".encode()
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(stream), len(raw), len(name), 0, 0, 0, 0, 0, 0
        )
        central += name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, copies, copies, len(central), len(local), 0)
    return local + central + end


def _size_lie() -> bytes:
    """An entry that declares 100 bytes and holds 10 MB."""
    raw = b"b" * (10 * 1024**2)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = compressor.compress(raw) + compressor.flush()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, zlib.crc32(raw), len(stream), 100, 5, 0) + b"a.txt" + stream
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, zlib.crc32(raw), len(stream), 100, 5, 0, 0, 0, 0, 0, 0)
    central += b"a.txt"
    return local + central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local), 0)


ARCHIVE_CASES = [
    # archive bytes, what comes out: (name after the archive's path, reason or kind) per item
    pytest.param(lambda: _zip_bytes({}), [("", "no files in the archive")], id="empty-zip"),
    pytest.param(lambda: _zip_bytes({"photos/": b"", "photos/cats/": b""}), [("", "no files in the archive")], id="folders-only"),
    pytest.param(lambda: _zip_bytes({"__MACOSX/._a.txt": b"x", ".DS_Store": b"x"}), [("", "no files in the archive")], id="hidden-only"),
    pytest.param(_overlap_bomb, [("", "entries overlap each other, possibly a zip bomb")], id="overlapping-entries-bomb"),
    pytest.param(_size_lie, [("/a.txt", "damaged archive entry")], id="declared-size-lie"),
    pytest.param(
        lambda: _zip_bytes({"..\\..\\evil.txt": b"x"}),
        [("/../../evil.txt", "path leads outside the archive ('..')")],
        id="backslash-dot-dot",
    ),
    pytest.param(lambda: _zip_bytes({"a\0b.txt": b"x"}), [("/a", "unsupported file type (no extension)")], id="nul-in-name"),
    pytest.param(lambda: _zip_bytes({"a.txt": b"hi"}, zipfile.ZIP_BZIP2), [("/a.txt", "text")], id="bzip2"),
    pytest.param(lambda: _zip_bytes({"a.txt": b"hi"}, zipfile.ZIP_LZMA), [("/a.txt", "text")], id="lzma"),
    pytest.param(
        lambda: _zip_bytes({"/".join(["d"] * 200) + "/a.txt": b"deep"}), [("/" + "/".join(["d"] * 200) + "/a.txt", "text")], id="deep"
    ),
    pytest.param(lambda: _zip_bytes({"big.txt": b" " * 30_000_000}), [("/big.txt", "compressed too much")], id="text-bomb"),
    pytest.param(
        lambda: _zip_bytes({"notes.txt": np.random.default_rng(0).bytes(200_000).hex().encode()}),
        [("/notes.txt", "text too long (390.6 KB, limit 20,000 characters)")],
        id="long-text-entry",
    ),
]


@pytest.mark.parametrize("make, expected", ARCHIVE_CASES)
def test_hostile_archives(tmp_path, make, expected):
    archive = _write(tmp_path, "upload.zip", make())
    start = time.monotonic()
    items = list(read_inputs([archive]))
    got = [(i.name[len(str(archive)) :], i.reason if isinstance(i, InputError) else i.kind) for i in items]
    assert [name for name, _ in got] == [name for name, _ in expected]
    for (_, outcome), (_, wanted) in zip(got, expected, strict=True):
        assert outcome.startswith(wanted), outcome
    assert all(isinstance(i, RawInput | InputError) for i in items)
    assert time.monotonic() - start < 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upload.zip"]  # nothing is ever unpacked to disk


def test_line_breaks_in_file_names_stay_on_one_line(tmp_path):
    folder = tmp_path / "upload"
    folder.mkdir()
    (folder / "evil\nname\r.xyz").write_bytes(b"?")
    (error,) = read_inputs([folder])
    assert error.name == str(folder / "evil\nname\r.xyz")  # the real name, for matching
    assert str(error) == f"{folder}/evil\\nname\\r.xyz: unsupported file type .xyz"
