"""Tests for core.inputs.media (decoding images, sampling videos) and core.inputs.sources (walking paths, zips, tables, texts)."""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.errors import InputError
from core.inputs import (
    RawInput,
    ReadConfig,
    VideoConfig,
    decode_image,
    make_thumbnail,
    open_video,
    read_inputs,
    read_texts,
    sample_frames,
    video,
)
from tests.media_fixtures import (
    BLUE,
    GREEN,
    RED,
    VIDEO_COLOURS,
    decode_every_frame,
    make_animated,
    make_array_image,
    make_audio_only_mp4,
    make_image,
    make_noisy_corrupt_mp4,
    make_oriented_jpeg,
    make_png_header,
    make_transparent_png,
    make_truncated_streamable_mp4,
    make_webm_without_duration,
    mark_encrypted,
    symlink_entry,
    timecode_of,
    write_colour_video,
    write_timecode_video,
    write_zip,
)

OK = contextlib.nullcontext()
WHITE = (255, 255, 255)
MID_GREY = ((128, 32), (128, 128, 128))  # the middle of GRADIENT_16, in 8 bits
GRADIENT_16 = np.linspace(0, 65535, 64 * 256).reshape(64, 256).astype(np.uint16)


def raises(reason: str) -> pytest.RaisesExc:
    return pytest.raises(InputError, match=reason)


def _close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(int(a) - int(e)) <= tolerance for a, e in zip(actual, expected, strict=True))


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


# ---------------------------------------------------------------- images

IMAGE_CASES = [
    # bytes, decode_image kwargs, expectation, decoded size, colour at pixel (x, y)
    pytest.param(lambda: make_image("JPEG"), {}, OK, (40, 30), ((5, 5), RED), id="jpeg"),
    pytest.param(lambda: make_image("PNG"), {}, OK, (40, 30), ((5, 5), RED), id="png"),
    pytest.param(lambda: make_image("WEBP"), {}, OK, (40, 30), ((5, 5), RED), id="webp"),
    pytest.param(lambda: make_image("BMP"), {}, OK, (40, 30), ((5, 5), RED), id="bmp"),
    pytest.param(lambda: make_image("TIFF"), {}, OK, (40, 30), ((5, 5), RED), id="tiff"),
    pytest.param(lambda: make_animated("GIF"), {}, OK, (24, 24), ((5, 5), RED), id="gif-first-frame"),
    pytest.param(lambda: make_animated("WEBP"), {}, OK, (24, 24), ((5, 5), RED), id="webp-first-frame"),
    pytest.param(lambda: make_animated("TIFF"), {}, OK, (24, 24), ((5, 5), RED), id="tiff-first-page"),
    # Orientation 6: the stored 40x20 image is shown rotated clockwise, so its left (red) half ends up on top.
    pytest.param(make_oriented_jpeg, {}, OK, (20, 40), ((10, 5), RED), id="exif-orientation"),
    pytest.param(lambda: make_image("JPEG", mode="CMYK", colour=(0, 255, 255, 0)), {}, OK, (40, 30), ((5, 5), RED), id="cmyk-jpeg"),
    pytest.param(lambda: make_image("PNG", mode="L", colour=128), {}, OK, (40, 30), ((5, 5), (128,) * 3), id="greyscale"),
    pytest.param(lambda: make_image("PNG", mode="1", colour=1), {}, OK, (40, 30), ((5, 5), WHITE), id="bilevel"),
    pytest.param(lambda: make_transparent_png("RGBA"), {}, OK, (16, 16), ((5, 5), WHITE), id="rgba-on-white"),
    pytest.param(lambda: make_transparent_png("LA"), {}, OK, (16, 16), ((5, 5), WHITE), id="la-on-white"),
    pytest.param(lambda: make_transparent_png("P"), {}, OK, (16, 16), ((5, 5), WHITE), id="palette-transparency"),
    pytest.param(lambda: make_array_image(GRADIENT_16, "PNG"), {}, OK, (256, 64), MID_GREY, id="png-16-bit"),
    pytest.param(lambda: make_array_image(GRADIENT_16, "TIFF"), {}, OK, (256, 64), MID_GREY, id="tiff-16-bit"),
    pytest.param(lambda: make_array_image(GRADIENT_16.astype(np.int32), "TIFF"), {}, OK, (256, 64), MID_GREY, id="tiff-32-bit-int"),
    pytest.param(lambda: make_array_image(GRADIENT_16 / np.float32(65535), "TIFF"), {}, OK, (256, 64), MID_GREY, id="tiff-float"),
    pytest.param(lambda: make_image("JPEG", size=(2000, 1000)), {"min_side": 200}, OK, (500, 250), None, id="jpeg-draft"),
    pytest.param(lambda: make_image("JPEG", size=(2000, 1000)), {"min_side": 400}, OK, (1000, 500), None, id="jpeg-draft-keeps-min-side"),
    pytest.param(lambda: make_image("PNG", size=(2000, 1000)), {"min_side": 200}, OK, (2000, 1000), None, id="png-no-draft"),
    pytest.param(lambda: b"", {}, raises("empty file"), None, None, id="zero-bytes"),
    pytest.param(lambda: b"just some notes\n" * 20, {}, raises("not a readable image"), None, None, id="text-as-jpg"),
    pytest.param(lambda: _half(make_image("JPEG", size=(200, 100))), {}, raises("truncated image"), None, None, id="truncated-jpeg"),
    pytest.param(lambda: _half(make_image("PNG", size=(200, 100))), {}, raises("truncated image"), None, None, id="truncated-png"),
    pytest.param(lambda: make_image("PPM"), {}, raises("not a readable image"), None, None, id="format-not-offered"),
    pytest.param(lambda: make_png_header(10_000, 7_000), {}, raises(r"too large \(70 megapixels, limit 64\)"), None, None, id="ours"),
    pytest.param(lambda: make_png_header(10_000, 10_000), {}, raises(r"too large \(100 megapixels"), None, None, id="pillow-warns"),
    pytest.param(lambda: make_png_header(20_000, 20_000), {}, raises(r"too large \(400 megapixels"), None, None, id="pillow-refuses"),
    pytest.param(lambda: make_image("PNG", size=(100, 100)), {"max_pixels": 5_000}, raises(r"0.01 megapixels, limit 0.005"), None, None),
]


@pytest.mark.parametrize("make, kwargs, expectation, size, colour", IMAGE_CASES)
def test_decode_image(make, kwargs, expectation, size, colour):
    with expectation as raised:
        image = decode_image(make(), "photo.jpg", **kwargs)
    if raised is not None:
        assert raised.value.name == "photo.jpg"
        return
    assert image.mode == "RGB"
    assert image.size == size
    if colour is not None:
        point, expected = colour
        assert _close(image.getpixel(point), expected), image.getpixel(point)


def test_16_bit_png_keeps_its_gradient():
    grey = np.asarray(decode_image(make_array_image(GRADIENT_16, "PNG"), "deep.png"))[:, :, 0]
    assert grey.min() == 0 and grey.max() == 255
    assert len(np.unique(grey)) > 200  # not saturated, not posterised


def test_huge_declared_size_is_refused_without_allocating():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.monotonic()
    with raises("image too large"):
        decode_image(make_png_header(60_000, 60_000), "bomb.png", max_pixels=10**10)
    assert time.monotonic() - start < 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_images_give_an_image_or_an_input_error(data):
    original = make_image(data.draw(st.sampled_from(["JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"])), size=(20, 20))
    damaged = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    damaged = damaged[: data.draw(st.integers(0, len(damaged)))]
    try:
        assert decode_image(bytes(damaged), "x").mode == "RGB"
    except InputError:
        pass


@pytest.mark.parametrize(
    "size, bound, expected",
    [((400, 200), 256, (256, 128)), ((200, 400), 100, (50, 100)), ((40, 30), 256, (40, 30))],
)
def test_make_thumbnail_fits_and_keeps_aspect(size, bound, expected):
    image = Image.new("RGB", size, RED)
    assert make_thumbnail(image, bound).size == expected
    assert image.size == size


# ---------------------------------------------------------------- video


@pytest.fixture(scope="module")
def colour_mp4(tmp_path_factory) -> bytes:
    return write_colour_video(tmp_path_factory.mktemp("video") / "colours.mp4", "libx264").read_bytes()


def _colours(frames) -> list[tuple[int, ...]]:
    return [image.getpixel((image.width // 2, image.height // 2)) for image in frames.images]


VIDEO_CASES = [
    # config, min_side, expectation, planned times, frame size
    pytest.param(VideoConfig(), None, OK, [0, 1, 2, 3, 4], (64, 48), id="one-per-second"),
    pytest.param(VideoConfig(fps=2), None, OK, [i / 2 for i in range(10)], (64, 48), id="two-per-second"),
    pytest.param(VideoConfig(max_frames=3), None, OK, [0, 4.9 / 3, 9.8 / 3], (64, 48), id="max-frames-spread"),
    pytest.param(VideoConfig(), 24, OK, [0, 1, 2, 3, 4], (32, 24), id="downscaled"),
    pytest.param(VideoConfig(), 25, OK, [0, 1, 2, 3, 4], (33, 25), id="downscaled-keeps-aspect"),
    pytest.param(VideoConfig(), 100, OK, [0, 1, 2, 3, 4], (64, 48), id="never-upscaled"),
    pytest.param(VideoConfig(max_duration_s=2), None, raises(r"video too long"), None, None, id="too-long"),
]


@pytest.mark.parametrize("config, min_side, expectation, planned, size", VIDEO_CASES)
def test_sample_frames(colour_mp4, config, min_side, expectation, planned, size):
    with expectation:
        frames = sample_frames(colour_mp4, "holiday.mp4", config, min_side=min_side)
    if planned is None:
        return
    # Each frame is the first shown at or after its planned time, and not half a period later.
    period = planned[1] - planned[0]
    assert len(frames.times) == len(planned)
    assert all(want - 1e-6 <= got < want + period / 2 for got, want in zip(frames.times, planned, strict=True)), frames.times
    # The colour changes every second: the frame shows the colour of the time reported for it.
    assert all(_close(got, VIDEO_COLOURS[int(t + 1e-6)]) for got, t in zip(_colours(frames), frames.times, strict=True)), _colours(frames)
    assert {image.size for image in frames.images} == {size}
    assert {image.mode for image in frames.images} == {"RGB"}
    assert (frames.width, frames.height) == (64, 48)
    assert frames.duration == pytest.approx(4.9, abs=0.15)


@pytest.fixture(scope="module")
def timecode_mp4(tmp_path_factory) -> tuple[bytes, np.ndarray]:
    """40 s at 20 frames/s, a keyframe every 20 s, each frame spelling its number; and every frame as ffmpeg decodes it."""
    path = write_timecode_video(tmp_path_factory.mktemp("timecode") / "timecode.mp4", seconds=40, fps=20, gop=400)
    return path.read_bytes(), decode_every_frame(path, (64, 48))


TIMECODE_CASES = [
    # config, whether every sample is the very frame shown at its time (B-frames decoded, or a seek that reports its frame's time)
    pytest.param(VideoConfig(fps=1), False, id="one-pass-skipping-b-frames"),
    pytest.param(VideoConfig(fps=2.5), True, id="one-pass-every-frame"),
    pytest.param(VideoConfig(fps=1, max_frames=7), False, id="capped-spread"),
    pytest.param(VideoConfig(fps=1 / 16), True, id="seek-per-sample"),
    pytest.param(VideoConfig(fps=1, max_frames=2), True, id="capped-seeks"),
]


@pytest.mark.parametrize("config, exact", TIMECODE_CASES)
def test_sampled_frames_are_the_frames_shown_at_their_times(timecode_mp4, config, exact):
    data, every_frame = timecode_mp4
    frames = sample_frames(data, "timecode.mp4", config)
    count = min(math.ceil(40 * config.fps), config.max_frames)
    period = 1 / config.fps if count < config.max_frames else 40 / count
    assert len(frames.times) == len(frames.images) == count
    shown = []
    for i, (t, image) in enumerate(zip(frames.times, frames.images, strict=True)):
        assert abs(t - i * period) < period / 4
        # The frame is one shown at its reported time or at most 3 frames (skipped B-frames) before it,
        # exactly as ffmpeg's full decode gives it.
        number = timecode_of(image)
        assert 0 <= t * 20 - number < 3 + 1e-6, (t, number)
        assert np.abs(every_frame[number].astype(np.int16) - np.asarray(image, np.int16)).mean() < 2
        shown.append(number == round(t * 20))
    assert all(shown) == exact


@pytest.mark.parametrize("size, min_side, expected", [((48, 64), 24, (24, 32)), ((64, 48), 24, (32, 24)), ((90, 30), 20, (60, 20))])
def test_frames_arrive_scaled_to_the_short_side(tmp_path, size, min_side, expected):
    data = write_timecode_video(tmp_path / "clip.mp4", seconds=2, size=size).read_bytes()
    frames = sample_frames(data, "clip.mp4", min_side=min_side)
    assert {image.size for image in frames.images} == {expected}
    assert (frames.width, frames.height) == size


@pytest.mark.parametrize("suffix, codec", [(".webm", "libvpx"), (".avi", "png"), (".mov", "libx264")])
def test_other_containers(tmp_path, suffix, codec):
    data = write_colour_video(tmp_path / f"clip{suffix}", codec, seconds=3).read_bytes()
    frames = sample_frames(data, f"clip{suffix}", suffix=suffix)
    assert all(_close(got, want) for got, want in zip(_colours(frames), VIDEO_COLOURS[:3], strict=True))


def test_webm_without_duration_in_header():
    frames = sample_frames(make_webm_without_duration(seconds=3), "recorded.webm", suffix=".webm")
    assert frames.times == [0, 1, 2]
    assert frames.duration == pytest.approx(3, abs=0.2)


BAD_VIDEO_CASES = [
    pytest.param(lambda tmp, good: b"", "empty file", id="empty"),
    pytest.param(lambda tmp, good: np.random.default_rng(0).bytes(5000), "not a readable video", id="random-bytes"),
    pytest.param(lambda tmp, good: b"a plain text note\n" * 50, "not a readable video", id="text"),
    pytest.param(lambda tmp, good: good[: len(good) // 2], "not a readable video", id="truncated"),
    pytest.param(lambda tmp, good: make_audio_only_mp4(tmp / "sound.mp4"), "no video stream", id="audio-only"),
]


@pytest.mark.parametrize("make, reason", BAD_VIDEO_CASES)
def test_bad_videos_are_refused(tmp_path, colour_mp4, make, reason):
    with pytest.raises(InputError, match=reason) as raised:
        sample_frames(make(tmp_path, colour_mp4), "clip.mp4")
    assert raised.value.name == "clip.mp4"


def test_temporary_file_is_removed(tmp_path, colour_mp4, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    sample_frames(colour_mp4, "a.mp4")
    with pytest.raises(InputError):
        sample_frames(b"junk" * 100, "b.mp4")
    assert list(tmp_path.iterdir()) == []


def test_noisy_corrupt_video_does_not_hang(tmp_path):
    # ffmpeg writes >64 KiB of errors for this file; unread, that pipe would block ffmpeg and us forever.
    data = make_noisy_corrupt_mp4(tmp_path / "noisy.mp4")
    outcome = []

    def sample() -> None:
        with contextlib.suppress(InputError):
            outcome.append(sample_frames(data, "noisy.mp4", VideoConfig(fps=15, max_frames=1000)))

    worker = threading.Thread(target=sample, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()


SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
# Writes one 64x48 RGB frame (9216 bytes), then hangs: the frame must not come back as a result.
ONE_FRAME_THEN_SLEEP = [
    sys.executable,
    "-c",
    "import sys, time; sys.stdout.buffer.write(bytes(64 * 48 * 3)); sys.stdout.flush(); time.sleep(60)",
]


@pytest.mark.parametrize("command", [SLEEPER, ONE_FRAME_THEN_SLEEP], ids=["silent", "one-frame"])
def test_stuck_decoder_is_killed_after_the_timeout(colour_mp4, monkeypatch, command):
    streams = []
    monkeypatch.setattr(video, "_decode_command", lambda plan, start=None: command)
    monkeypatch.setattr(video.VideoStream, "close", lambda self, close=video.VideoStream.close: (streams.append(self), close(self)))
    start = time.monotonic()
    with raises("took too long"):
        sample_frames(colour_mp4, "stuck.mp4", VideoConfig(timeout_s=2))
    assert time.monotonic() - start < 12
    assert len(streams) == 1 and streams[0]._proc.wait(timeout=10) != 0


def test_leaving_the_stream_early_kills_ffmpeg_and_removes_the_copy(tmp_path, timecode_mp4, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with open_video(timecode_mp4[0], "timecode.mp4", VideoConfig(fps=5)) as video:
        first = next(video.batches(2))
        proc = video._proc
    assert len(first) == 2
    assert proc is not None and proc.wait(timeout=10) is not None
    assert list(tmp_path.iterdir()) == []


def test_broken_off_mid_stream_is_one_input_error(tmp_path):
    data = make_truncated_streamable_mp4(tmp_path / "cut.mp4")
    with raises(r"video is damaged \(its frames stop at \d+ s of 10 s\)") as raised:
        sample_frames(data, "cut.mp4")
    assert raised.value.name == "cut.mp4" and "\n" not in str(raised.value)


# ---------------------------------------------------------------- read_inputs


def _outcomes(items) -> list[tuple]:
    """(name, kind or None, concept or error reason) per item, names relative to nothing."""
    return [(item.name, None, item.reason) if isinstance(item, InputError) else (item.name, item.kind, item.concept) for item in items]


@pytest.fixture
def tree(tmp_path) -> Path:
    """photos/{cats/a.jpg, cats/b.png, dogs/c.jpg, notes.txt, top.jpg} plus hidden things that must be skipped."""
    root = tmp_path / "photos"
    files = {
        "cats/a.jpg": make_image("JPEG", colour=RED),
        "cats/b.png": make_image("PNG", colour=GREEN),
        "dogs/c.jpg": make_image("JPEG", colour=BLUE),
        "notes.txt": b"  a note about pets \n",
        "top.jpg": make_image("JPEG", colour=RED),
        ".hidden.jpg": make_image("JPEG"),
        ".git/x.jpg": make_image("JPEG"),
        "__MACOSX/cats/._a.jpg": b"resource fork",
    }
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return root


TREE_ORDER = ["cats/a.jpg", "cats/b.png", "dogs/c.jpg", "notes.txt", "top.jpg"]
TREE_KINDS = ["image", "image", "image", "text", "image"]


@pytest.mark.parametrize(
    "labels_from_folders, concepts",
    [(True, ["cats", "cats", "dogs", None, None]), (False, [None] * 5)],
)
def test_folder_walk(tree, labels_from_folders, concepts):
    items = list(read_inputs([tree], ReadConfig(labels_from_folders=labels_from_folders)))
    assert _outcomes(items) == [(f"{tree}/{p}", k, c) for p, k, c in zip(TREE_ORDER, TREE_KINDS, concepts, strict=True)]
    note = items[3]
    assert note.text == "a note about pets" and note.data == b"  a note about pets \n" and note.suffix == ".txt"


def test_zip_matches_the_folder(tree, tmp_path):
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    archive = write_zip(tmp_path / "pets.zip", [(str(p.relative_to(tree)), p.read_bytes()) for p in files])
    from_zip = list(read_inputs([archive], ReadConfig(labels_from_folders=True)))
    from_folder = list(read_inputs([tree], ReadConfig(labels_from_folders=True)))
    assert _outcomes(from_zip) == [
        (f"{archive}/{p}", k, c) for p, k, c in zip(TREE_ORDER, TREE_KINDS, ["cats", "cats", "dogs", None, None], strict=True)
    ]
    assert [i.sha256 for i in from_zip] == [i.sha256 for i in from_folder]
    assert [i.data for i in from_zip] == [i.data for i in from_folder]


def test_equal_bytes_hash_equal(tree):
    # top.jpg and cats/a.jpg hold the same red JPEG; dogs/c.jpg is blue.
    by_name = {item.name: item for item in read_inputs([tree])}
    top, twin, other = (by_name[f"{tree}/{p}"] for p in ("top.jpg", "cats/a.jpg", "dogs/c.jpg"))
    assert top.sha256 == hashlib.sha256(top.data).hexdigest()
    assert top.sha256 == twin.sha256 != other.sha256
    [typed] = read_texts(["a note about pets"])
    [row] = read_inputs([_write(tree.parent / "n.csv", "text\n a note about pets\n")])
    assert typed.sha256 == row.sha256


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
    assert _outcomes(items[-1:]) == [(f"{archive}/zz-last.txt", "text", None)]
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
    assert _outcomes(read_inputs([archive])) == [
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


def _write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


NOTES_CSV = 'id,text,label\n1,a cat,cats\n2,,dogs\n3,a dog,\n\n4,"quoted, with comma",cats \n'
NOTES_TSV = NOTES_CSV.replace(",", "\t").replace('"quoted\t with comma"', "quoted, with comma")
NOTES_ROWS = [
    ("row 2", "text", "cats"),
    ("row 3", None, "empty text"),
    ("row 4", "text", None),
    ("row 6", "text", "cats"),
]

COLUMNS = "(columns: id, text, label)"
LONG_ROW_CSV = "text\n" + "x" * 30 + "\nshort\n"
LONG_ROW_ROWS = [("row 2", None, "text too long (30 characters, limit 20)"), ("row 3", "text", None)]
TABLE_CASES = [
    # file name, content, config, expected (name suffix, kind, concept or reason) per item
    pytest.param("notes.csv", NOTES_CSV, ReadConfig(label_column="label"), NOTES_ROWS, id="csv"),
    pytest.param("notes.tsv", NOTES_TSV, ReadConfig(label_column="label"), NOTES_ROWS, id="tsv"),
    pytest.param("notes.csv", "\ufeffText\nhello\n", ReadConfig(), [("row 2", "text", None)], id="bom-and-case"),
    pytest.param(
        "notes.csv", "sentence\nhello\nworld\n", ReadConfig(), [("row 2", "text", None), ("row 3", "text", None)], id="one-column"
    ),
    pytest.param("notes.csv", NOTES_CSV, ReadConfig(text_column="body"), [("", None, f"column 'body' not found {COLUMNS}")], id="no-body"),
    pytest.param("notes.csv", "a,b\n1,2\n", ReadConfig(), [("", None, "column 'text' not found (columns: a, b)")], id="no-text"),
    pytest.param("notes.csv", NOTES_CSV, ReadConfig(label_column="tag"), [("", None, f"column 'tag' not found {COLUMNS}")], id="no-tag"),
    pytest.param("notes.csv", LONG_ROW_CSV, ReadConfig(max_text_chars=20), LONG_ROW_ROWS, id="too-long-row"),
    pytest.param("notes.csv", b"text\nfine\n" + "caf\xe9\n".encode("latin-1"), ReadConfig(), [("", None, "not UTF-8 text")], id="latin-1"),
    pytest.param("notes.csv", "\n\n", ReadConfig(), [("", None, "no header row (the first line is empty)")], id="no-header"),
    pytest.param("notes.csv", "text\n", ReadConfig(), [], id="header-only"),
]


@pytest.mark.parametrize("filename, content, config, expected", TABLE_CASES)
def test_tables(tmp_path, filename, content, config, expected):
    path = _write(tmp_path / filename, content)
    items = list(read_inputs([path], config))
    assert _outcomes(items) == [(f"{path}:{row}" if row else str(path), kind, what) for row, kind, what in expected]
    texts = [item.text for item in items if isinstance(item, RawInput)]
    if filename.endswith("sv") and config.label_column == "label":
        assert texts == ["a cat", "a dog", "quoted, with comma"]
        assert all(item.suffix == ".txt" and item.data == item.text.encode() for item in items if isinstance(item, RawInput))


def test_csv_inside_zip_and_folder_concept(tmp_path):
    archive = write_zip(tmp_path / "data.zip", [("cats/notes.csv", b"text\npurr\n\n")])
    assert _outcomes(read_inputs([archive], ReadConfig(labels_from_folders=True))) == [(f"{archive}/cats/notes.csv:row 2", "text", "cats")]


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
    path = tmp_path / "gone.jpg" if filename is None else _write(tmp_path / filename, content)
    good = _write(tmp_path / "after.txt", "still read")
    items = list(read_inputs([str(path), good], config))
    kind, reason = expected
    assert _outcomes(items) == [(str(path), kind, reason), (str(good), "text", None)]


def test_read_inputs_is_lazy(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    _write(folder / "a.txt", "first")
    _write(folder / "b.txt", "old")
    items = read_inputs([folder])
    assert next(items).text == "first"
    _write(folder / "b.txt", "written after the first item came out")
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
    _write(deepest / "deep.txt", "found")
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
    paths = [_write(tmp_path / f"random{suffix}", data), _write(tmp_path / "mutated.zip", bytes(mutated))]
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
