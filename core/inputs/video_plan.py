"""Look at a video before decoding it: probe its header with ffmpeg, refuse what is not a usable video,
and plan which frames to sample, at what size, and whether to reach them by seeking.
"""

from __future__ import annotations

import logging
import math
import re
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from core.errors import InputError

logger = logging.getLogger(__name__)

# ffmpeg's demuxers for single pictures ("Input #0, png_pipe, from ..."); GIF, an animation, is not one.
_STILL_IMAGE_INPUT = re.compile(r"^Input #0, (?:\w+_pipe|image2)\b", re.MULTILINE)
# A song's cover art is a "video" stream too, marked "(attached pic)".
_VIDEO_STREAM = re.compile(r"^\s*Stream #\d+:\d+.*?: Video: .*$", re.MULTILINE)
# Samples this far apart are each reached by seeking (ffmpeg -ss), not by one pass through every frame
# (break-even measured on a 720p clip with 10 s between keyframes, x264's default; shorter GOPs favour seeking sooner).
_SEEK_PERIOD_S = 15.0
# Samples this many frames apart come from a decoder that skips B-frames, which no other frame needs:
# about half the decoding, and a sample is then at most 3 frames (x264's B-frames in a row) before its planned time.
_SKIP_B_FRAMES_GAP = 16
_MAX_VIDEO_PIXELS = 64_000_000  # 8K is 33 megapixels; a header that claims more is hostile or broken


@dataclass(frozen=True)
class VideoConfig:
    """How many frames to sample from a video, and the limits that protect the sampler."""

    fps: float = 1.0
    max_frames: int = 120
    max_duration_s: float = 4 * 3600
    timeout_s: float = 600.0  # wall-clock budget for one video (probe + sampling); ffmpeg is killed after it

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.max_frames < 1 or self.max_duration_s <= 0 or self.timeout_s <= 0:
            raise ValueError(f"VideoConfig values must be positive: {self}")


@dataclass(frozen=True)
class VideoPlan:
    """What to ask ffmpeg for: the planned sample times, the frames' size, and how to reach them."""

    path: str
    times: list[float]
    duration: float
    width: int  # the video's upright size
    height: int
    out_width: int  # the frames' size
    out_height: int
    fps: float  # the video's frame rate, 0 if unknown

    @property
    def period(self) -> float:
        return self.times[1] - self.times[0] if len(self.times) > 1 else self.duration

    @property
    def seek(self) -> bool:
        """One short ffmpeg per sample, seeking to it, rather than one pass through every frame."""
        return self.period >= _SEEK_PERIOD_S

    @property
    def skip_b_frames(self) -> bool:
        return self.period * self.fps >= _SKIP_B_FRAMES_GAP


def plan_video(path: str, name: str, config: VideoConfig, min_side: int | None, deadline: float) -> VideoPlan:
    """Probe the video at ``path`` and plan its samples; ``InputError`` when it is not a video worth sampling."""
    infos = _probe(path, name, deadline)
    if not infos.get("video_found"):
        raise InputError(name, "no video stream")
    duration = float(infos.get("video_duration") or 0.0)
    if not duration > 0:
        raise InputError(name, "video has zero duration")
    if duration > config.max_duration_s:
        raise InputError(name, f"video too long ({duration / 3600:.1f} hours, limit {config.max_duration_s / 3600:g})")
    width, height = (int(side) for side in infos.get("video_size") or (0, 0))
    if abs(infos.get("video_rotation", 0)) in (90, 270):  # ffmpeg turns such frames upright
        width, height = height, width
    if width < 1 or height < 1:
        raise InputError(name, "not a readable video")
    if width * height > _MAX_VIDEO_PIXELS:
        raise InputError(name, f"video frames too large ({width}x{height})")
    out_width, out_height = width, height
    if min_side is not None and min(width, height) > min_side:
        scale = min_side / min(width, height)
        out_width, out_height = (min_side, max(round(height * scale), 1)) if width <= height else (max(round(width * scale), 1), min_side)
    fps = float(infos.get("video_fps") or 0.0)
    fps = fps if math.isfinite(fps) and fps > 0 else 0.0
    return VideoPlan(path, _sample_times(duration, config), duration, width, height, out_width, out_height, fps)


def find_ffmpeg() -> str:
    """The ffmpeg program moviepy found (its bundled imageio-ffmpeg, or $FFMPEG_BINARY).

    moviepy is imported here, not at the top: it takes a third of a second, and only videos need it.
    """
    from moviepy.config import FFMPEG_BINARY

    return FFMPEG_BINARY


def _probe(path: str, name: str, deadline: float) -> dict[str, Any]:
    """Run ``ffmpeg -i`` under a time limit and parse it with moviepy's parser.

    A file without a duration in its header (webm recorded by browsers) is decoded whole to learn it.
    """
    for decode_file in (False, True):
        command = [find_ffmpeg(), "-hide_banner", "-i", path] + (["-f", "null", "-"] if decode_file else [])
        try:
            done = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL, timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired as e:
            raise InputError(name, "video took too long to decode") from e
        output = done.stderr.decode("utf-8", errors="ignore")
        # ffmpeg reads a lone picture as a one-frame video; stored as a video, no browser could play it.
        if _STILL_IMAGE_INPUT.search(output):
            raise InputError(name, "a still image, not a video")
        streams = _VIDEO_STREAM.findall(output)
        if streams and all("(attached pic)" in line for line in streams):
            raise InputError(name, "no video stream (only a cover picture)")
        try:
            from moviepy.video.io.ffmpeg_reader import FFmpegInfosParser

            return FFmpegInfosParser(output, path, decode_file=decode_file).parse()
        except Exception as e:
            if decode_file or " Video: " not in output:
                raise InputError(name, "not a readable video") from e
            logger.debug("%s: no duration in the header, decoding the whole file to find it", name)
    raise AssertionError("unreachable")


def _sample_times(duration: float, config: VideoConfig) -> list[float]:
    count = max(math.ceil(duration * config.fps - 1e-9), 1)  # every i with i / fps < duration
    if count <= config.max_frames:
        return [i / config.fps for i in range(count)]
    return [duration * i / config.max_frames for i in range(config.max_frames)]
