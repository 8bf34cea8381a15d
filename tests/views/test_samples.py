"""The sample data: a complete loop with real (lite) embeddings, and idempotent."""

from __future__ import annotations

import pytest

from core.learning import train
from core.prediction import predict
from core.storage.projects import create_project
from core.views.samples import IMAGES_PER_SHAPE, SAMPLE_TEXTS, add_sample_data, build_sample_inputs


def test_sample_is_deterministic_and_labelled():
    first, second = build_sample_inputs(), build_sample_inputs()
    assert [i.sha256 for i in first] == [i.sha256 for i in second]
    assert all(i.concept for i in first)
    assert len(first) == 2 * IMAGES_PER_SHAPE + sum(len(v) for v in SAMPLE_TEXTS.values())


@pytest.mark.slow
def test_sample_teaches_shapes_and_topics_with_lite():
    project = create_project("sample", "lite")
    report = add_sample_data(project)
    assert report.failed == [] and report.labelled == len(report.added)
    assert add_sample_data(project).added == []
    train(project)
    from core.inputs import read_texts

    results = list(predict(project, read_texts(["the referee showed a red card", "fry the garlic in olive oil"])))
    assert [r.concepts[0].concept for r in results] == ["sports", "cooking"]
