"""Tests for core.views.timeline: a video's concepts by when they pass, not only by the top score."""

from __future__ import annotations

import pytest

from core.prediction import ConceptScore, FrameScores, Prediction
from core.views.timeline import find_concept_segments, format_clock


def _video(times, scores, thresholds):
    concepts = [ConceptScore(c, 0.9, "linear", t, True) for c, t in thresholds.items()]
    return Prediction("clip.mp4", "video", concepts, 1, [], FrameScores(list(times), scores), False, "")


@pytest.mark.parametrize(
    "scores, thresholds, expected",
    [
        # Half roses, half ants (one frame a second): ant passes only on its half, rose on the other.
        (
            {"ant": [0.9, 0.95, 0.9, 0.6, 0.6, 0.6], "rose": [0.1, 0.1, 0.2, 0.9, 0.9, 0.8]},
            {"ant": 0.7, "rose": 0.5},
            [("ant", [(0.0, 3.0)], 3.0), ("rose", [(3.0, 6.0)], 3.0)],
        ),
        # Two runs, and the last frame counts up to the video's end.
        ({"ant": [0.8, 0.2, 0.2, 0.8, 0.9, 0.8]}, {"ant": 0.5}, [("ant", [(0.0, 1.0), (3.0, 6.0)], 4.0)]),
        ({"ant": [0.1, 0.2, 0.3]}, {"ant": 0.5}, []),  # never passes: not listed
        ({"ant": [0.9], "bee": [0.9]}, {"ant": 0.5}, [("ant", [(0.0, 1.0)], 1.0)]),  # a concept without a threshold here: left out
    ],
)
def test_find_concept_segments(scores, thresholds, expected):
    times = [float(i) for i in range(len(next(iter(scores.values()))))]
    found = find_concept_segments(_video(times, scores, thresholds))
    assert [(t.concept, t.segments, t.seconds) for t in found] == expected
    assert all(t.duration == len(times) for t in found)


def test_an_image_has_no_timeline():
    assert find_concept_segments(Prediction("a.jpg", "image", [], 1, [], None, False, "")) == []


@pytest.mark.parametrize("seconds, shown", [(0, "0:00"), (7.4, "0:07"), (75, "1:15"), (3725, "1:02:05")])
def test_format_clock(seconds, shown):
    assert format_clock(seconds) == shown
