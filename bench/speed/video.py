"""Figure 4: a 60 s 720p clip at 1 frame/s against embedding its frames alone."""

from __future__ import annotations

import time
from pathlib import Path

from .common import CLIP, Row, fresh_home, median_time, met


def bench_video(video: Path, rows: list[Row]) -> None:
    """Figure 4: a 60 s 720p clip at 1 frame/s against embedding its 60 frames alone."""
    from core.embedders import load_embedder
    from core.ingest import ingest
    from core.media import VideoConfig, read_inputs, sample_frames
    from core.projects import create_project

    embedder = load_embedder(CLIP)
    frames = sample_frames(video.read_bytes(), video.name, VideoConfig(fps=1.0), min_side=embedder.image_size)
    embed_only = median_time(lambda: embedder.embed_images(frames.images), 1)
    fresh_home()
    project = create_project("video", CLIP)
    start = time.perf_counter()
    report = ingest(project, read_inputs([video]), video=VideoConfig(fps=1.0))
    took = time.perf_counter() - start
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
