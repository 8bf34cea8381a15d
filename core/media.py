"""Decode images and sample video frames, refusing hostile or broken files with an ``InputError``.

Decoders are third-party code fed with whatever people upload, so every call into them is wrapped:
a bad file becomes one ``InputError`` naming it, never a crash, a hang or an out-of-memory kill.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import re
import subprocess
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from moviepy import VideoFileClip
from moviepy.config import FFMPEG_BINARY
from moviepy.video.io.ffmpeg_reader import FFmpegInfosParser
from PIL import Image, ImageOps

from .errors import InputError
from .sources import (
    ARCHIVE_SUFFIXES,
    IMAGE_SUFFIXES,
    TABLE_SUFFIXES,
    TEXT_SUFFIXES,
    VIDEO_SUFFIXES,
    RawInput,
    ReadConfig,
    read_inputs,
    read_texts,
)
from .store import as_storage_error

# Reading inputs lives in core.sources; it is re-exported so callers need one module for media.
__all__ = [
    "ARCHIVE_SUFFIXES",
    "IMAGE_SUFFIXES",
    "TABLE_SUFFIXES",
    "TEXT_SUFFIXES",
    "VIDEO_SUFFIXES",
    "RawInput",
    "ReadConfig",
    "VideoConfig",
    "VideoFrames",
    "decode_image",
    "make_thumbnail",
    "read_inputs",
    "read_texts",
    "sample_frames",
]

logger = logging.getLogger(__name__)

# Only the formats people may upload; Pillow's other plugins (EPS runs Ghostscript) stay out of reach.
_PIL_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "DIB", "TIFF")
_WHITE = (255, 255, 255)
# ffmpeg's demuxers for single pictures ("Input #0, png_pipe, from ..."); GIF, an animation, is not one.
_STILL_IMAGE_INPUT = re.compile(r"^Input #0, (?:\w+_pipe|image2)\b", re.MULTILINE)
# A song's cover art is a "video" stream too, marked "(attached pic)".
_VIDEO_STREAM = re.compile(r"^\s*Stream #\d+:\d+.*?: Video: .*$", re.MULTILINE)


def decode_image(data: bytes, name: str, min_side: int | None = None, max_pixels: int = 64_000_000) -> Image.Image:
    """Decode image bytes into an upright RGB image.

    The EXIF orientation is applied, animated files give their first frame, transparency is
    composited on white and high bit depths are scaled to 8 bits. The declared size is checked
    against ``max_pixels`` before any pixel is decoded.

    Args:
        data: the file's bytes.
        name: what the person would recognise (used in errors).
        min_side: if given, a large JPEG may be decoded at a reduced scale whose shorter side
            stays at least ``min_side`` (cheaper; the result is not resized further).
        max_pixels: largest accepted width * height (Pillow's own ``Image.MAX_IMAGE_PIXELS``, about
            89 megapixels, still caps it: Pillow's decompression-bomb warning is turned into a refusal).

    Returns:
        A loaded ``PIL.Image.Image`` in mode ``"RGB"``; ``info["original_size"]`` holds the
        upright (width, height) of the file, before any draft-mode reduction.

    Raises:
        InputError: empty, unreadable, truncated or too large image.
    """
    if not data:
        raise InputError(name, "empty file")
    limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
    try:
        with warnings.catch_warnings():
            # Pillow warns (instead of refusing) between its limit and twice its limit.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_PIL_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        match = re.search(r"\((\d+) pixels\)", str(e))
        pixels = int(match.group(1)) if match else limit + 1
        raise InputError(name, _too_large_reason(pixels, limit)) from e
    except Exception as e:
        raise InputError(name, _unreadable_reason(e)) from e
    width, height = image.size
    if width * height > limit:
        raise InputError(name, _too_large_reason(width * height, limit))
    if width < 1 or height < 1:
        raise InputError(name, "not a readable image")
    try:
        if min_side is not None and image.format in ("JPEG", "MPO"):
            _draft(image, min_side)
        image.load()
    except Exception as e:
        raise InputError(name, _unreadable_reason(e)) from e
    loaded_size = image.size
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except Exception as e:  # a broken EXIF block should not cost the person their image
        logger.warning("%s: ignoring unreadable EXIF orientation (%s)", name, e)
    # Draft decoding shrinks the pixels; callers still want the photo's real (upright) size.
    original_size = (height, width) if image.size != loaded_size else (width, height)
    try:
        rgb = _to_rgb(image)
    except Exception as e:
        raise InputError(name, f"unsupported colour mode {image.mode}") from e
    rgb.info["original_size"] = original_size
    return rgb


def make_thumbnail(image: Image.Image, size: int = 256) -> Image.Image:
    """Return a copy of ``image`` that fits within ``size`` x ``size``, keeping its aspect ratio.

    Raises:
        ValueError: ``size`` is not positive.
    """
    if size < 1:
        raise ValueError(f"thumbnail size must be positive, got {size}")
    thumbnail = image.copy()
    thumbnail.thumbnail((size, size))
    return thumbnail


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
class VideoFrames:
    """Frames sampled from one video: ``images[i]`` was shown at ``times[i]`` seconds.

    ``width`` and ``height`` are the video's own (upright) size, before any downscaling of the frames.
    """

    times: list[float]
    images: list[Image.Image]
    duration: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if len(self.times) != len(self.images) or not self.images:
            raise ValueError("VideoFrames needs as many times as images, and at least one")


def sample_frames(
    data: bytes,
    name: str,
    config: VideoConfig = VideoConfig(),
    suffix: str = ".mp4",
    min_side: int | None = None,
) -> VideoFrames:
    """Sample RGB frames from video bytes at ``config.fps`` (0, 1/fps, 2/fps, ... before the end).

    If that would exceed ``config.max_frames``, that many frames are spread evenly over the whole video
    instead. The bytes go to a temporary file (ffmpeg needs to seek), deleted afterwards.

    Args:
        data: the video file's bytes.
        name: what the person would recognise (used in errors).
        config: sampling rate and limits.
        suffix: the original file's suffix, a hint for ffmpeg.
        min_side: if given, frames are downscaled by ffmpeg so their shorter side is ``min_side``.

    Returns:
        ``VideoFrames`` with at least one frame.

    Raises:
        InputError: empty or undecodable file, a still image, no video stream, zero or excessive duration, timeout.
        StorageError: no room (or no permission) for the temporary copy.
    """
    if not data:
        raise InputError(name, "empty file")
    safe_suffix = suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,10}", suffix) else ".bin"
    deadline = time.monotonic() + config.timeout_s
    try:
        fd, path = tempfile.mkstemp(prefix="conceptlab-video-", suffix=safe_suffix)
    except OSError as e:
        raise (as_storage_error(e, tempfile.gettempdir()) or e) from e
    try:
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
        except OSError as e:
            raise (as_storage_error(e, tempfile.gettempdir()) or e) from e
        return _sample_file(path, name, config, min_side, deadline)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _sample_file(path: str, name: str, config: VideoConfig, min_side: int | None, deadline: float) -> VideoFrames:
    infos, decode_file = _probe(path, name, deadline)
    if not infos.get("video_found"):
        raise InputError(name, "no video stream")
    duration = float(infos.get("video_duration") or 0.0)
    if not duration > 0:
        raise InputError(name, "video has zero duration")
    if duration > config.max_duration_s:
        raise InputError(name, f"video too long ({duration / 3600:.1f} hours, limit {config.max_duration_s / 3600:g})")
    width, height = infos.get("video_size") or (0, 0)
    if abs(infos.get("video_rotation", 0)) in (90, 270):  # ffmpeg turns such frames upright
        width, height = height, width
    if width < 1 or height < 1:
        raise InputError(name, "not a readable video")
    target = None
    if min_side is not None and min(width, height) > min_side:
        target = (min_side, None) if width <= height else (None, min_side)
    times = _sample_times(duration, config)
    clip = None
    try:
        clip = VideoFileClip(path, decode_file=decode_file, audio=False, target_resolution=target)
        images = _read_frames(clip, times, name, deadline - time.monotonic())
    except InputError:
        raise
    except Exception as e:
        raise InputError(name, "not a readable video") from e
    finally:
        if clip is not None:
            clip.close()
    logger.debug("%s: sampled %d frames over %.1f s", name, len(images), duration)
    return VideoFrames(times, images, duration, int(width), int(height))


def _probe(path: str, name: str, deadline: float) -> tuple[dict[str, Any], bool]:
    """Run ``ffmpeg -i`` under a time limit and parse it with moviepy's parser.

    Returns the infos and whether the whole file had to be decoded to learn the duration
    (webm recorded by browsers has none in its header).
    """
    for decode_file in (False, True):
        command = [FFMPEG_BINARY, "-hide_banner", "-i", path] + (["-f", "null", "-"] if decode_file else [])
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
            return FFmpegInfosParser(output, path, decode_file=decode_file).parse(), decode_file
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


def _read_frames(clip: Any, times: list[float], name: str, timeout_s: float) -> list[Image.Image]:
    """Read the frames at ``times`` through moviepy's reader, which seeks for far frames itself.

    moviepy pipes ffmpeg's stderr without reading it: a corrupt stream can fill that pipe and
    block ffmpeg (and us) forever, so each ffmpeg process gets a thread that drains it. A timer
    kills ffmpeg if the whole sampling overruns its budget.
    """
    timed_out = threading.Event()

    def kill_reader() -> None:
        timed_out.set()
        proc = getattr(clip.reader, "proc", None)
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.kill()

    timer = threading.Timer(max(timeout_s, 0.1), kill_reader)
    timer.daemon = True
    timer.start()
    drained: list[Any] = []
    images = []
    try:
        for t in times:
            _drain_stderr(clip.reader.proc, drained)
            try:
                frame = clip.get_frame(t)
            except Exception as e:
                if timed_out.is_set():
                    raise InputError(name, "video took too long to decode") from e
                raise
            if timed_out.is_set():  # killed mid-read: moviepy repeats the last good frame instead of failing
                raise InputError(name, "video took too long to decode")
            images.append(Image.fromarray(np.ascontiguousarray(frame[:, :, :3])))
    finally:
        timer.cancel()
    return images


def _drain_stderr(proc: subprocess.Popen[bytes] | None, drained: list[Any]) -> None:
    if proc is None or any(known is proc for known in drained):
        return
    drained.append(proc)
    try:
        # A duplicate descriptor, so moviepy closing its own file object never races our reads.
        fd = os.dup(proc.stderr.fileno())  # type: ignore[union-attr]
    except (OSError, ValueError, AttributeError):
        return

    def discard() -> None:
        try:
            while os.read(fd, 65536):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)

    threading.Thread(target=discard, name="ffmpeg-stderr", daemon=True).start()


def _draft(image: Image.Image, min_side: int) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale while the shorter side stays >= ``min_side``."""
    width, height = image.size
    scale = min_side / min(width, height)
    if scale <= 0.5:
        image.draft(image.mode, (math.ceil(width * scale), math.ceil(height * scale)))


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        return Image.fromarray(_to_8_bit(np.asarray(image), mode)).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", image.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image if mode == "RGB" else image.convert("RGB")


def _to_8_bit(values: np.ndarray, mode: str) -> np.ndarray:
    """Map 16-bit, 32-bit integer or float greyscale to 0..255 without saturating it."""
    if mode.startswith("I;16"):
        return (values >> 8).astype(np.uint8)
    values = values.astype(np.float32)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if mode == "F" and low >= 0 and high <= 1:
        values = values * 255
    elif low >= 0 and high <= 255:
        pass
    elif mode == "I" and low >= 0 and high <= 65535:
        values = values / 257
    elif high > low:
        values = (values - low) * (255 / (high - low))
    else:
        values = np.zeros_like(values)
    return np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0).clip(0, 255).round().astype(np.uint8)


def _unreadable_reason(error: Exception) -> str:
    return "truncated image" if "truncated" in str(error).lower() else "not a readable image"


def _too_large_reason(pixels: int, limit: int) -> str:
    return f"image too large ({_megapixels(pixels)} megapixels, limit {_megapixels(limit)})"


def _megapixels(pixels: int) -> str:
    value = pixels / 1e6
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"
