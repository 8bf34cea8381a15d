"""Tests for core.inputs.video: sampling frames at their times, containers, broken and stuck videos."""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time

import numpy as np
import pytest

from core.errors import InputError
from core.inputs import (
    VideoConfig,
    open_video,
    sample_frames,
    video,
)
from tests.media_fixtures import (
    VIDEO_COLOURS,
    close_colour,
    decode_every_frame,
    make_audio_only_mp4,
    make_noisy_corrupt_mp4,
    make_truncated_streamable_mp4,
    make_webm_without_duration,
    raises_input_error,
    timecode_of,
    write_colour_video,
    write_timecode_video,
)

OK = contextlib.nullcontext()


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
    pytest.param(VideoConfig(max_duration_s=2), None, raises_input_error(r"video too long"), None, None, id="too-long"),
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
    assert all(close_colour(got, VIDEO_COLOURS[int(t + 1e-6)]) for got, t in zip(_colours(frames), frames.times, strict=True)), _colours(
        frames
    )
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
    assert all(close_colour(got, want) for got, want in zip(_colours(frames), VIDEO_COLOURS[:3], strict=True))


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
    with raises_input_error("took too long"):
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
    with raises_input_error(r"video is damaged \(its frames stop at \d+ s of 10 s\)") as raised:
        sample_frames(data, "cut.mp4")
    assert raised.value.name == "cut.mp4" and "\n" not in str(raised.value)
