"""Figure 4: a 60 s 720p clip at 1 frame/s against embedding its frames alone."""

from __future__ import annotations

import resource
import time
from pathlib import Path

from .common import CLIP, Row, fresh_home, median_time, met


def _cpu_seconds() -> float:
    """CPU time of this process and its waited-for children (ffmpeg), user and system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench_video(video: Path, rows: list[Row]) -> None:
    """Figure 4: a 60 s 720p clip at 1 frame/s against embedding its 60 frames alone.

    The CPU-time row says the same with what other processes on the machine cannot inflate.
    """
    from core.embedding import load_embedder
    from core.ingestion import ingest
    from core.inputs import VideoConfig, read_inputs, sample_frames
    from core.storage.projects import create_project

    embedder = load_embedder(CLIP)
    frames = sample_frames(video.read_bytes(), video.name, VideoConfig(fps=1.0), min_side=embedder.image_size)
    embed_only = median_time(lambda: embedder.embed_images(frames.images), 1)
    cpu = _cpu_seconds()
    embedder.embed_images(frames.images)
    embed_cpu = _cpu_seconds() - cpu
    fresh_home()
    project = create_project("video", CLIP)
    cpu, start = _cpu_seconds(), time.perf_counter()
    report = ingest(project, read_inputs([video]), video=VideoConfig(fps=1.0))
    took, took_cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    assert len(report.added) == 1, report.failed
    ratio = took / embed_only
    rows.append(
        Row(
            f"video ingest, 60 s 720p at 1 fps ({len(frames.times)} frames)",
            f"{took:.1f} s",
            f"{embed_only:.1f} s to embed the frames",
            f"{ratio:.2f}",
            "<= 1.5",
            met(ratio <= 1.5),
        )
    )
    rows.append(
        Row(
            "video ingest CPU time, with ffmpeg's",
            f"{took_cpu:.1f} s",
            f"{embed_cpu:.1f} s to embed the frames",
            f"{took_cpu / embed_cpu:.2f}",
        )
    )
