"""Builders for the files tests/inputs/ feeds to core.inputs (images, videos, zips, tables): all made on the spot."""

from __future__ import annotations

import io
import random
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from moviepy import ImageSequenceClip
from moviepy.config import FFMPEG_BINARY
from PIL import Image

from core.errors import InputError

RED, GREEN, BLUE, YELLOW, CYAN = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)
VIDEO_COLOURS = [RED, GREEN, BLUE, YELLOW, CYAN]  # one per second of the test video


def make_image(fmt: str, size: tuple[int, int] = (40, 30), colour: tuple[int, ...] = RED, mode: str = "RGB", **save) -> bytes:
    """Encode a solid image of ``colour`` in ``fmt``."""
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, fmt, **save)
    return buffer.getvalue()


def make_array_image(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    """Encode a numpy array (greyscale 16-bit, 32-bit, float...) in ``fmt``."""
    buffer = io.BytesIO()
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(buffer, fmt)
    return buffer.getvalue()


def make_oriented_jpeg() -> bytes:
    """A 40x20 JPEG, left half red, right half blue, tagged EXIF orientation 6 (display rotated 90° clockwise)."""
    image = Image.new("RGB", (40, 20), BLUE)
    image.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, quality=95)
    return buffer.getvalue()


def make_animated(fmt: str) -> bytes:
    """Two frames, red then blue: decoders must return the red one."""
    frames = [Image.new("RGB", (24, 24), RED), Image.new("RGB", (24, 24), BLUE)]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def make_transparent_png(mode: str) -> bytes:
    """Fully transparent red image in RGBA / LA, or a palette image whose only colour is transparent."""
    buffer = io.BytesIO()
    if mode == "P":
        image = Image.new("P", (16, 16), 0)
        image.putpalette([255, 0, 0] + [0, 0, 0] * 255)
        image.save(buffer, "PNG", transparency=0)
    else:
        Image.new(mode, (16, 16), (255, 0, 0, 0) if mode == "RGBA" else (0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def make_png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` but holds almost no data (a decompression bomb's shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def write_colour_video(path: Path, codec: str, seconds: int = 5, fps: int = 10) -> Path:
    """A 64x48 video whose colour changes every second (``VIDEO_COLOURS``)."""
    frames = [np.full((48, 64, 3), VIDEO_COLOURS[s % len(VIDEO_COLOURS)], np.uint8) for s in range(seconds) for _ in range(fps)]
    ImageSequenceClip(frames, fps=fps).write_videofile(str(path), codec=codec, audio=False, logger=None)
    return path


def write_timecode_video(path: Path, seconds: int, fps: int = 20, gop: int = 250, size: tuple[int, int] = (64, 48)) -> Path:
    """An H.264 video (with B-frames) whose frame ``n`` is one flat colour that spells ``n`` (see ``timecode_of``).

    ``gop`` frames between keyframes (x264's default is 250), so seeking has to decode its way to a sample.
    """
    geq = "r='mod(N,16)*16+8':g='mod(trunc(N/16),16)*16+8':b='trunc(N/256)*16+8'"
    source = f"color=s={size[0]}x{size[1]}:r={fps}:d={seconds},format=rgb24,geq={geq}"
    run_ffmpeg("-f", "lavfi", "-i", source, "-c:v", "libx264", "-g", str(gop), "-bf", "3", "-pix_fmt", "yuv420p", str(path))
    return path


def timecode_of(image: Image.Image) -> int:
    """The frame number a ``write_timecode_video`` frame spells in its colour (each channel in steps of 16)."""
    r, g, b = (round((int(c) - 8) / 16) for c in image.getpixel((image.width // 2, image.height // 2)))
    return r + 16 * g + 256 * b


def decode_every_frame(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Every frame of a video, fully decoded by ffmpeg itself: the reference sampled frames are checked against."""
    raw = run_ffmpeg(
        "-i", str(path), "-vf", f"scale={size[0]}:{size[1]}", "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"
    )
    return np.frombuffer(raw, np.uint8).reshape(-1, size[1], size[0], 3)


def make_truncated_streamable_mp4(path: Path, seconds: int = 10) -> bytes:
    """The first half of an mp4 whose index comes first (``+faststart``): it opens, then breaks off mid-stream."""
    source = f"testsrc=d={seconds}:s=160x120:r=10"
    run_ffmpeg("-f", "lavfi", "-i", source, "-c:v", "libx264", "-g", "10", "-movflags", "+faststart", str(path))
    data = path.read_bytes()
    return data[: len(data) // 2]


def run_ffmpeg(*args: str, stdout: int | None = None) -> bytes:
    """Run the bundled ffmpeg quietly; return what it wrote to stdout."""
    done = subprocess.run([FFMPEG_BINARY, "-hide_banner", "-loglevel", "error", "-y", *args], stdout=subprocess.PIPE, check=True)
    return done.stdout


def make_webm_without_duration(seconds: int = 3) -> bytes:
    """A webm written to a pipe, so its header has no duration (as browsers' MediaRecorder files)."""
    source = f"testsrc=d={seconds}:s=64x48:r=10"
    return run_ffmpeg("-f", "lavfi", "-i", source, "-c:v", "libvpx", "-deadline", "realtime", "-f", "webm", "pipe:1")


def make_audio_only_mp4(path: Path) -> bytes:
    run_ffmpeg("-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", str(path))
    return path.read_bytes()


def make_noisy_corrupt_mp4(path: Path) -> bytes:
    """A 20 s video with an eighth of its bytes scrambled: ffmpeg reports over 64 KiB of errors while decoding it."""
    source = "testsrc=d=20:s=320x240:r=15"
    run_ffmpeg("-f", "lavfi", "-i", source, "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-movflags", "+faststart", str(path))
    data = bytearray(path.read_bytes())
    rng = random.Random(0)
    for _ in range(len(data) // 8):
        data[rng.randrange(len(data) // 20, len(data))] = rng.randrange(256)
    return bytes(data)


def write_zip(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    """Write a deflated zip; a ``ZipInfo`` entry keeps its own attributes (symlink bits, flags)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry, data in entries:
            if isinstance(entry, zipfile.ZipInfo):
                entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return path


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16) | 0x20  # S_IFLNK
    return info


def mark_encrypted(path: Path, entry: str) -> Path:
    """Set the "encrypted" flag of ``entry`` in the central directory (zipfile cannot write encrypted entries)."""
    data = bytearray(path.read_bytes())
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) >= 0:
        name_length = struct.unpack_from("<H", data, start + 28)[0]
        if data[start + 46 : start + 46 + name_length] == entry.encode():
            data[start + 8] |= 0x1
        start += 4
    path.write_bytes(bytes(data))
    return path


def write_file(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def describe_outcomes(items) -> list[tuple]:
    """(name, kind or None, concept or error reason) per item read."""
    return [(item.name, None, item.reason) if isinstance(item, InputError) else (item.name, item.kind, item.concept) for item in items]


def raises_input_error(reason: str) -> pytest.RaisesExc:
    return pytest.raises(InputError, match=reason)


def close_colour(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    """Whether two colours agree channel by channel within ``tolerance`` (lossy codecs shift them)."""
    return all(abs(int(a) - int(e)) <= tolerance for a, e in zip(actual, expected, strict=True))
