"""A video summarised by when each concept passes its threshold: segments with times, not one top score.

A clip that is half roses and half ants scored "ant, 96 %" overall (the mean of its frames leans to the
concept seen most clearly) while its chart showed ant at 60 % over the roses. Per concept, the frames
at or above its threshold form runs; each run is a segment from its first frame to one sampling step
past its last (a frame stands for the time until the next one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.prediction import Prediction


@dataclass(frozen=True)
class ConceptTimeline:
    """When one concept passes in a video: (start, end) seconds, and their total against the video's length."""

    concept: str
    segments: list[tuple[float, float]]
    seconds: float
    duration: float


def find_concept_segments(prediction: Prediction) -> list[ConceptTimeline]:
    """Each concept that passes somewhere in a video, the longest first; [] for other inputs or none passing."""
    frames = prediction.frames
    if frames is None or not frames.times:
        return []
    times = np.asarray(frames.times, dtype=np.float64)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    duration = float(times[-1] + step)
    thresholds = {c.concept: c.threshold for c in prediction.concepts}
    found = []
    for concept, values in frames.scores.items():
        if concept not in thresholds:
            continue
        passing = np.asarray(values) >= thresholds[concept]
        segments, start = [], None
        for i, ok in enumerate(passing):
            if ok and start is None:
                start = i
            if start is not None and (not ok or i == len(passing) - 1):
                last = i if ok else i - 1
                segments.append((round(float(times[start]), 2), round(float(times[last] + step), 2)))
                start = None
        if segments:
            found.append(ConceptTimeline(concept, segments, round(sum(b - a for a, b in segments), 2), round(duration, 2)))
    return sorted(found, key=lambda t: (-t.seconds, t.concept))


def format_clock(seconds: float) -> str:
    """``75.0`` -> ``1:15``: the way a video player shows a time."""
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}" if whole >= 3600 else f"{whole // 60}:{whole % 60:02d}"
