"""Tests for core.evaluate (and thresholds in prediction): thresholds, unknown inputs, mistakes to relabel, held-out runs."""

from __future__ import annotations

import json
from contextlib import nullcontext as does_not_raise

import numpy as np
import pytest

from core.cli import run
from core.errors import ConceptError, ConceptlabError, ModelVersionError
from core.evaluate import (
    FALSE_NEGATIVE,
    FALSE_POSITIVE,
    evaluate_inputs,
    get_evaluations,
    list_mistakes,
    metrics_at_threshold,
    misclassified,
)
from core.exchange import export_model, import_model
from core.ingestion import ingest
from core.inputs import ReadConfig, read_inputs
from core.learning import set_threshold, train
from core.prediction import predict
from core.storage.projects import create_project
from tests.photos import COLOURS, save_photo_folders, solid_image

# -- thresholds and unknown inputs in a project ---------------------------------------------


def _query(project, tmp_path, image):
    path = tmp_path / "query.png"
    image.save(path)
    (result,) = list(predict(project, read_inputs([path])))
    return result


def test_training_reports_cross_validated_metrics_and_thresholds(colours):
    project, result = colours
    (evaluation,) = result.evaluations
    assert evaluation.method == "5-fold cross-validation" and evaluation.macro_f1 == 1.0
    assert {m.concept for m in evaluation.concepts} == set(COLOURS)
    assert all(m.tp == 6 and m.fp == 0 and m.roc_auc == 1.0 for m in evaluation.concepts)
    assert get_evaluations(project) == [evaluation]
    assert {c.concept for c in result.choices} == set(COLOURS) and all(c.metric == "ROC AUC" for c in result.choices)
    report = project.store.list_versions()[-1][4]
    assert set(report["thresholds"]["tiny-image"]) == set(COLOURS) and report["choices"]["tiny-image"]


def test_thresholds_at_zero_and_one(colours, tmp_path):
    project, result = colours
    query = solid_image(COLOURS["red"], seed=999)
    scores = {c.concept: c for c in _query(project, tmp_path, query).concepts}
    assert scores["red"].passes and not scores["blue"].passes
    set_threshold(project, result.version, "blue", 0.0)
    set_threshold(project, result.version, "red", 1.0)
    scores = {c.concept: c for c in _query(project, tmp_path, query).concepts}
    assert scores["blue"].passes and scores["blue"].threshold == 0.0
    assert not scores["red"].passes and scores["red"].threshold == 1.0 and scores["red"].score < 1.0
    assert metrics_at_threshold(project, "tiny-image", "red", 0.0).recall == 1.0
    at_one = metrics_at_threshold(project, "tiny-image", "red", 1.0)
    assert at_one.recall == 0.0 and at_one.precision is None
    false_pos, false_neg = misclassified(project, "tiny-image", "red", 0.0)
    assert len(false_pos) == 12 and false_neg == []
    for bad in (-0.1, 1.1, float("nan")):
        with pytest.raises(ValueError):
            set_threshold(project, result.version, "red", bad)
    with pytest.raises(ConceptError):
        set_threshold(project, result.version, "purple", 0.5)


def test_an_input_far_from_everything_labelled_is_unknown(colours, tmp_path):
    project, _ = colours
    rng = np.random.default_rng(5)
    from PIL import Image

    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::8] = 255
    stripes[::8] = rng.integers(0, 255, (8, 64, 3))
    result = _query(project, tmp_path, Image.fromarray(stripes))
    assert result.unknown and result.unknown_reason.startswith("this looks unlike the photos you labelled (similarity ")
    # 18 labelled photos are too few for a 95 % rate to be measured: all of them pass, with room to spare.
    assert "; of the 18 labelled photos training held out in turn, all were at least " in result.unknown_reason
    assert result.to_dict()["unknown_reason"] == result.unknown_reason
    assert result.matches == [] and not any(c.passes for c in result.concepts)
    known = _query(project, tmp_path, solid_image(COLOURS["green"], seed=4242))
    assert not known.unknown and known.matches == ["green"]
    assert known.to_dict()["unknown"] is False and "unknown_reason" not in known.to_dict()


# -- mistakes to relabel -----------------------------------------------------------------------


@pytest.mark.parametrize("exclusive", [False, True])
def test_a_miss_says_which_concept_the_model_took_it_for(tmp_path, exclusive):
    """A green photo labelled red is missed for red, taken for green; a red one missed at threshold 1 was taken for nothing else."""
    project = create_project("mixed", "tiny", exclusive=exclusive)
    for concept, colour in COLOURS.items():
        (tmp_path / "in" / concept).mkdir(parents=True)
        for i in range(5):
            solid_image(colour, seed=i + 10 * len(concept)).save(tmp_path / "in" / concept / f"{i}.png")
    ingest(project, read_inputs([tmp_path / "in"], ReadConfig(labels_from_folders=True)))
    solid_image(COLOURS["green"], seed=999).save(tmp_path / "oops.png")
    (wrong,) = ingest(project, read_inputs([tmp_path / "oops.png"]), concept="red").added
    result = train(project)
    mistakes = list_mistakes(project, "tiny-image", "red", result.evaluations[0].concept("red").threshold)
    assert [(m.record.id, m.instead) for m in mistakes.false_negatives] == [(wrong, "green")]
    everything = list_mistakes(project, "tiny-image", "red", 1.0, limit=20)
    assert {m.instead for m in everything.false_negatives if m.record.id != wrong} == {None}
    assert all(m.instead is None for m in list_mistakes(project, "tiny-image", "green", 0.0, limit=20).false_positives)


@pytest.mark.parametrize(
    "threshold, limit, listed, totals, expectation",
    [
        (0.0, 5, (5, 0), (12, 0), does_not_raise()),  # everything matches: every other colour is wrongly matched
        (1.0, 20, (0, 6), (0, 6), does_not_raise()),  # nothing matches: every red is missed
        (0.0, 0, (0, 0), (12, 0), does_not_raise()),
        (None, 8, (0, 0), (0, 0), does_not_raise()),  # the trained threshold separates the colours
        (1.5, 8, None, None, pytest.raises(ValueError, match="threshold")),
        (0.5, -1, None, None, pytest.raises(ValueError, match="limit")),
    ],
)
def test_list_mistakes_worst_first_and_capped(colours, threshold, limit, listed, totals, expectation):
    project, result = colours
    threshold = result.evaluations[0].concept("red").threshold if threshold is None else threshold
    with expectation:
        mistakes = list_mistakes(project, "tiny-image", "red", threshold, limit=limit)
        assert (len(mistakes.false_positives), len(mistakes.false_negatives)) == listed
        assert (mistakes.total_false_positives, mistakes.total_false_negatives) == totals and not mistakes.note
        false_pos, false_neg = misclassified(project, "tiny-image", "red", threshold)
        assert [m.record.id for m in mistakes.false_positives] == false_pos[:limit]
        assert [m.record.id for m in mistakes.false_negatives] == false_neg[:limit]
        assert all(m.kind == FALSE_POSITIVE and m.score >= threshold for m in mistakes.false_positives)
        assert all(m.kind == FALSE_NEGATIVE and m.score < threshold for m in mistakes.false_negatives)
        assert all(project.store.labels_of(m.record.id).get("red") != 1 for m in mistakes.false_positives)
        scores = [m.score for m in mistakes.false_positives]
        assert scores == sorted(scores, reverse=True)
        at = metrics_at_threshold(project, "tiny-image", "red", threshold)
        assert mistakes.metrics == at and (at.fp, at.fn) == totals  # the figures shown beside the mistakes


def test_list_mistakes_reads_the_report_once(colours, monkeypatch):
    project, _ = colours
    reads = []
    get_version = project.store.get_version
    monkeypatch.setattr(project.store, "get_version", lambda number: reads.append(number) or get_version(number))
    list_mistakes(project, "tiny-image", "red", 0.5)
    assert len(reads) == 1  # a slider move: the metrics and the mistakes come from one read


@pytest.mark.parametrize(
    "space, concept, version, error",
    [
        ("tiny-image", "purple", None, ConceptError),
        ("tiny-text", "red", None, ModelVersionError),
        ("tiny-image", "red", 9, ModelVersionError),
    ],
)
def test_list_mistakes_of_nothing_stored_is_an_error(colours, space, concept, version, error):
    with pytest.raises(error):
        list_mistakes(colours[0], space, concept, 0.5, version)


def test_list_mistakes_skips_deleted_inputs_and_lists_none_of_an_imported_version(colours):
    project, _ = colours
    first = list_mistakes(project, "tiny-image", "red", 0.0, limit=3).false_positives
    project.store.delete_inputs([first[0].record.id])
    after = list_mistakes(project, "tiny-image", "red", 0.0, limit=3)
    assert [m.record.id for m in after.false_positives][:2] == [m.record.id for m in first[1:]] and len(after.false_positives) == 3
    other = create_project("other", "tiny")
    version = import_model(other, export_model(project)).version
    imported = list_mistakes(other, "tiny-image", "red", 0.0, version)
    assert imported.false_positives == [] and imported.total_false_positives == 12 and "imported" in imported.note


# -- evaluate on held-out data ----------------------------------------------------------------

PHOTOS = {"cat": "chelsea", "coffee": "coffee", "astronaut": "astronaut"}


def test_evaluate_held_out_photos_end_to_end(tmp_path, capsys):
    save_photo_folders(tmp_path / "train", PHOTOS, count=5)
    save_photo_folders(tmp_path / "test", PHOTOS, count=3, seed=500)
    (tmp_path / "test" / "dog").mkdir()
    (tmp_path / "test" / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    project = create_project("photos", "lite")
    ingest(project, read_inputs([tmp_path / "train"], ReadConfig(labels_from_folders=True)))
    train(project)
    result = evaluate_inputs(project, read_inputs([tmp_path / "test"], ReadConfig(labels_from_folders=True)))
    (evaluation,) = result.evaluations
    assert result.inputs == 9 and evaluation.method == "held-out" and len(result.failed) == 1
    assert evaluation.macro_f1 == 1.0 and all(m.tp == 3 and m.fn == 0 for m in evaluation.concepts)
    assert [row[:3] for row in evaluation.confusion] == [[3, 0, 0], [0, 3, 0], [0, 0, 3]]

    assert run(["--json", "evaluate", "photos", str(tmp_path / "test"), "--labels-from-folders"]) == 3  # broken.jpg: partly done
    data = json.loads(capsys.readouterr().out)
    assert data["inputs"] == 9 and data["evaluations"][0]["macro_f1"] == 1.0
    assert run(["evaluate", "photos", str(tmp_path / "test")]) == 1  # no labels: nothing to measure
    assert "none of these inputs" in capsys.readouterr().err


def test_evaluate_a_csv_with_a_label_column(tmp_path, capsys):
    rows = [("red apples and red roses", "red"), ("a green leaf, green grass", "green")] * 4
    rows += [("the red wine", "red"), ("green peas", "green"), ("purple rain", "purple")]
    table = tmp_path / "texts.csv"
    table.write_text("text,label\n" + "".join(f'"{t}",{c}\n' for t, c in rows), encoding="utf-8")
    assert run(["project", "create", "texts", "--embedder", "tiny"]) == 0
    assert run(["ingest", "texts", str(table), "--label-column", "label"]) == 0
    assert run(["train", "texts"]) == 0
    capsys.readouterr()
    assert run(["--json", "evaluate", "texts", str(table), "--label-column", "label"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["inputs"] == 11 and data["skipped"] == []
    assert {m["concept"] for m in data["evaluations"][0]["concepts"]} >= {"red", "green"}
    with pytest.raises(ConceptlabError):
        evaluate_inputs(create_project("empty", "tiny"), [])
