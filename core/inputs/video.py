"""Sample video frames with one ffmpeg process, refusing hostile or broken files with an ``InputError``.

ffmpeg picks the sampled frames and scales them down before they reach the pipe, so only the
frames wanted cross it, at the size the embedder wants. A reader thread empties the pipe while the
caller embeds the frames already there (``open_video``). Every call into ffmpeg has a deadline;
a bad file becomes one ``InputError`` naming it, never a crash, a hang or a leftover process.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from PIL import Image

from core.disk import as_storage_error
from core.errors import InputError
from core.inputs.video_plan import VideoConfig, VideoPlan, find_ffmpeg, plan_video

logger = logging.getLogger(__name__)

# The showinfo filter's line for each frame it passes on: "n:   3 pts:  36864 pts_time:3 ...".
_SHOWINFO = re.compile(rb"\bn:\s*\d+\s+pts:\s*-?\d+\s+pts_time:(-?[\d.]+)")
_GRACE_S = 10.0  # how long to wait for a killed ffmpeg and its pipes to close
_ERROR_CHARS = 500  # how much of ffmpeg's error output goes to the log


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
    """Sample RGB frames from video bytes about every ``1 / config.fps`` seconds from the start.

    If that would exceed ``config.max_frames``, that many frames are spread evenly over the whole video
    instead. Each frame is the one shown at its planned time; for samples 16 or more frames apart,
    B-frames are not decoded and a sample may come from up to 3 frames earlier. Samples 15 s or more
    apart are each reached by seeking, and then ``times`` holds when the frame found was shown.

    Args:
        data: the video file's bytes.
        name: what the person would recognise (used in errors).
        config: sampling rate and limits.
        suffix: the original file's suffix, a hint for ffmpeg.
        min_side: if given, frames are downscaled by ffmpeg so their shorter side is ``min_side``.

    Returns:
        ``VideoFrames`` with at least one frame.

    Raises:
        InputError: empty, undecodable or damaged file, a still image, no video stream, zero or excessive duration, timeout.
        StorageError: no room (or no permission) for the temporary copy.
    """
    images: list[Image.Image] = []
    with open_video(data, name, config, suffix, min_side) as video:
        for batch in video.batches():
            images += batch
    return VideoFrames(video.times, images, video.duration, video.width, video.height)


@contextlib.contextmanager
def open_video(
    data: bytes,
    name: str,
    config: VideoConfig = VideoConfig(),
    suffix: str = ".mp4",
    min_side: int | None = None,
) -> Iterator[VideoStream]:
    """Probe a video and start decoding its sampled frames, so the caller can work on some while ffmpeg decodes the rest.

    The bytes go to a temporary file (ffmpeg needs to seek), deleted when the context ends; ffmpeg is
    killed then too if it still runs. Arguments as for ``sample_frames``.

    Yields:
        a ``VideoStream``: iterate ``batches()``, then read ``times``.

    Raises:
        InputError: as ``sample_frames`` (decoding failures and timeouts from ``batches()``).
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
        video = VideoStream(plan_video(path, name, config, min_side, deadline), name, deadline)
        try:
            yield video
        finally:
            video.close()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


class VideoStream:
    """The sampled frames of one probed video, decoded by ffmpeg in the background.

    ffmpeg runs in its own process and a reader thread empties its pipe as frames come, so the
    caller's work on one batch overlaps the decoding of the next. A timer kills ffmpeg when the
    video's time budget runs out; a thread drains ffmpeg's stderr (frame times and errors) so a
    corrupt stream's flood of errors never blocks it.
    """

    def __init__(self, plan: VideoPlan, name: str, deadline: float) -> None:
        self.name = name
        self.duration = plan.duration
        self.width = plan.width
        self.height = plan.height
        self.times: list[float] = []  # when each frame was shown, complete once batches() is exhausted
        self._plan = plan
        self._deadline = deadline
        self._frames: queue.SimpleQueue[Image.Image | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False
        self._timed_out = False
        self._failure: str | None = None
        self._errors: collections.deque[bytes] = collections.deque(maxlen=8)
        self._timer = threading.Timer(max(deadline - time.monotonic(), 0.1), self._time_out)
        self._timer.daemon = True
        self._timer.start()
        self._reader = threading.Thread(target=self._read_all, name="conceptlab-video", daemon=True)
        self._reader.start()

    def batches(self, size: int = 16, first: int | None = None) -> Iterator[list[Image.Image]]:
        """Yield the frames in order, up to ``size`` at a time (``first`` for the first batch), as ffmpeg delivers them.

        Raises:
            InputError: ffmpeg failed, the stream broke off early, or the time limit ran out.
        """
        images: list[Image.Image] = []
        count = 0
        while True:
            try:
                image = self._frames.get(timeout=max(self._deadline - time.monotonic(), 0.0) + _GRACE_S)
            except queue.Empty:
                self._time_out()
                raise InputError(self.name, "video took too long to decode") from None
            if image is None:
                break
            images.append(image)
            count += 1
            if len(images) == (size if first is None or count > first else first):
                yield images
                images = []
        self._check_end(count)
        if images:
            yield images
        logger.debug("%s: sampled %d frames over %.1f s", self.name, count, self.duration)

    def close(self) -> None:
        """Stop ffmpeg if it still runs and wait for the reader thread."""
        with self._lock:
            self._stopped = True
            _kill(self._proc)
        self._timer.cancel()
        self._reader.join(timeout=_GRACE_S)

    def _check_end(self, count: int) -> None:
        if self._timed_out:
            raise InputError(self.name, "video took too long to decode")
        if self._failure is not None or count == 0:
            logger.info("%s: ffmpeg failed: %s", self.name, self._failure or self._error_text() or "no frames")
            raise InputError(self.name, "not a readable video")
        # Errors and frames that stop early: a truncated or damaged file, not a video that ends there.
        # (One sample short is the end of the stream rounding away the last planned time.)
        planned = self._plan.times
        if len(planned) - count > 1 and self._errors:
            logger.info("%s: %s", self.name, self._error_text())
            raise InputError(self.name, f"video is damaged (its frames stop at {self.times[-1]:.0f} s of {self.duration:.0f} s)")

    def _time_out(self) -> None:
        with self._lock:
            self._timed_out = self._stopped = True
            _kill(self._proc)

    def _read_all(self) -> None:
        plan = self._plan
        try:
            if not plan.seek:
                read = self._run(_decode_command(plan), len(plan.times))
                self.times += plan.times[: len(read)]
                return
            last: tuple[float, Image.Image] | None = None
            for t in plan.times:
                read = self._run(_decode_command(plan, start=t), 1)
                if read:
                    last = (t + read[0][0], read[0][1])
                elif last is None or self._errors or self._stopped:
                    break  # nothing at all, or a damaged file
                # Past the last frame (its display time runs to the end): that frame is still the one shown.
                self.times.append(last[0])  # type: ignore[index]
                self._frames.put(last[1])  # type: ignore[index]
        except Exception as e:  # the caller waits for the end marker: never lose it
            self._failure = f"{type(e).__name__}: {e}"
        finally:
            self._frames.put(None)

    def _run(self, command: list[str], count: int) -> list[tuple[float, Image.Image]]:
        """Run one ffmpeg and read up to ``count`` frames from it, each with when it was shown (after a seek, from there).

        Frames from one pass are queued for the caller as they come; after a seek, the caller queues them.
        """
        with self._lock:
            if self._stopped:
                return []
            self._proc = proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        shown: list[float] = []
        drain = threading.Thread(target=self._drain, args=(proc.stderr, shown), name="ffmpeg-stderr", daemon=True)
        drain.start()
        size = (self._plan.out_width, self._plan.out_height)
        read: list[Image.Image] = []
        with proc.stdout:  # type: ignore[union-attr]
            while len(read) < count and (data := _read_exactly(proc.stdout, size[0] * size[1] * 3)) is not None:
                read.append(Image.frombytes("RGB", size, data))
                if not self._plan.seek:
                    self._frames.put(read[-1])
        proc.wait()
        drain.join(timeout=_GRACE_S)
        if proc.returncode != 0 and not self._stopped:
            raise RuntimeError(f"ffmpeg exit status {proc.returncode}: {self._error_text()}")
        shown += [0.0] * (len(read) - len(shown))  # showinfo logs every frame; never leave one without a time
        return list(zip(shown, read))

    def _drain(self, stream: Any, shown: list[float]) -> None:
        """Read ffmpeg's stderr to its end: frame times into ``shown``, the last error lines kept."""
        try:
            with stream:
                for line in stream:
                    if match := _SHOWINFO.search(line):
                        shown.append(float(match.group(1)))
                    elif b"[error]" in line or b"[fatal]" in line:
                        self._errors.append(line.strip()[:_ERROR_CHARS])
        except (OSError, ValueError):
            pass

    def _error_text(self) -> str:
        return b" | ".join(self._errors).decode("utf-8", errors="replace")[-_ERROR_CHARS:]


def _decode_command(plan: VideoPlan, start: float | None = None) -> list[str]:
    """ffmpeg reading ``plan.path`` and writing raw RGB frames of the planned size to its stdout.

    One pass keeps, for each planned time, the frame shown then: the last one decoded at or before it
    (``fps`` filter rounding up, counting from 0 s). A seek (``-ss`` before ``-i``) decodes from the
    keyframe before ``start`` to the first frame at or after it, whose time ``showinfo`` reports.
    """
    # One decoder thread: the embedder runs at the same time on the other core, and a threaded
    # decoder spent more CPU for the same frames (0.96 against 0.70 CPU-s on the 60 s bench clip).
    command = [find_ffmpeg(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-threads", "1"]
    scale = f"scale={plan.out_width}:{plan.out_height}:flags=bicubic"
    if plan.skip_b_frames:
        command += ["-skip_frame", "bidir"]
    if start is None:
        rate = Fraction(1 / plan.period).limit_denominator(1_000_000) if len(plan.times) > 1 else Fraction(1)
        sample = f"fps=fps={rate.numerator}/{rate.denominator}:round=up:start_time=0"
        command += ["-i", plan.path, "-vf", f"{sample},{scale}", "-frames:v", str(len(plan.times))]
    else:
        command += ["-ss", f"{start:.6f}", "-i", plan.path, "-vf", f"showinfo,{scale}", "-frames:v", "1"]
    return command + ["-an", "-sn", "-dn", "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]


def _read_exactly(stream: Any, size: int) -> bytearray | None:
    """``size`` bytes from a pipe, or None at its end (a partial last frame is dropped)."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    while filled < size:
        got = stream.readinto(view[filled:])
        if not got:
            return None
        filled += got
    return buffer


def _kill(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.kill()
