"""Tests for core.views.reports: the training report shaped for the Train page (quality rows, choices, confusion)."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise

import pytest

from core.evaluate import (
    get_evaluations,
)
from core.learning import train
from core.learning.heads import HeadConfig
from core.learning.metrics import (
    NONE_LABEL,
    ConceptMetrics,
    Evaluation,
    precision_recall_f1,
)
from core.learning.training import ConceptPlan
from core.views.reports import (
    OUTCOMES,
    build_confusion_chart,
    build_quality_rows,
    build_verification_rows,
    describe_choice,
    describe_overall,
    describe_plan,
    describe_plan_examples,
    describe_rate,
    read_evaluations,
)

# -- the report, shaped for the Train page ------------------------------------------------------


def _measured(name: str, tp: int, fp: int, fn: int, tn: int) -> ConceptMetrics:
    return ConceptMetrics(name, 0.4, tp, fp, fn, tn, *precision_recall_f1(tp, fp, fn), 0.75)


_EXCLUSIVE = Evaluation(
    "img",
    "leave-one-out",
    folds=6,
    inputs=6,
    exclusive=True,
    concepts=[_measured("a", 2, 0, 1, 3), _measured("b", 3, 1, 0, 2)],
    accuracy=5 / 6,
    labels=["a", "b", "c", NONE_LABEL],
    confusion=[[2, 1, 0, 0], [0, 3, 0, 0], [0, 0, 0, 0]],
)
_PLANS = [
    {"concept": "a", "space": "img", "head": "linear", "positives": 3, "negatives": 3},
    {"concept": "b", "space": "img", "head": "nearest-neighbour", "positives": 3, "negatives": 3},
    {"concept": "c", "space": "img", "head": "none", "positives": 0, "negatives": 6},
    {"concept": "d", "space": "img", "head": "prototype", "positives": 1, "negatives": 5},
    {"concept": "a", "space": "txt", "head": "nearest-neighbour", "positives": 2, "negatives": 0},
]
_CHOICES = {"img": [{"concept": "a", "head": "linear", "metric": "ROC AUC", "scores": {"linear": 0.9, "prototype": 0.88}, "margin": 0.02}]}


@pytest.mark.parametrize(
    "report, expected, expectation",
    [
        (
            {"concepts": _PLANS, "metrics": [_EXCLUSIVE.to_dict()], "choices": _CHOICES},
            [
                ("a", "img", "linear", "beat prototype by 0.02 ROC AUC", 1.0, 2 / 3, ""),
                ("b", "img", "nearest-neighbour", "", 0.75, 1.0, ""),
                ("d", "img", "prototype", "", None, None, "too few examples to measure"),  # measured space, concept left out
                ("a", "txt", "nearest-neighbour", "", None, None, "not measured: train again to measure it"),  # no evaluation
            ],
            does_not_raise(),
        ),
        ({"concepts": _PLANS[2:3]}, [], does_not_raise()),  # nothing trained
        ({}, [], does_not_raise()),
        ({"concepts": "a"}, None, pytest.raises(ValueError, match="concepts")),
        ({"concepts": _PLANS, "metrics": {"img": 1}}, None, pytest.raises(ValueError, match="metrics")),
        ({"concepts": _PLANS, "metrics": [{"method": "x"}]}, None, pytest.raises(ValueError, match="damaged")),
    ],
)
def test_build_quality_rows(report, expected, expectation):
    with expectation:
        rows = build_quality_rows(report)
        assert [(r.concept, r.space, r.head, r.chosen, r.precision, r.recall, r.note) for r in rows] == expected
        assert all(r.measured == (r.f1 is not None) for r in rows)
        assert [r.examples for r in rows] == [p["positives"] for p in report.get("concepts", []) if p["head"] != "none"]


@pytest.mark.parametrize(
    "plan, examples, heads",
    [
        (ConceptPlan("a", 1, "img", "none", 0, 0), "0 yes · 0 no", "not trained yet"),
        (ConceptPlan("a", 1, "img", "prototype", 1, 3, "", 3), "1 yes · 3 no", "prototype"),  # nothing to compare: the head it gets
        (ConceptPlan("a", 1, "img", "linear", 15, 12, "", 0), "15 yes · 0 no · 12 of other concepts", "linear"),
        (
            ConceptPlan("a", 1, "img", "linear", 6, 6, "", 2, ("nearest-neighbour", "prototype", "linear", "tip-adapter")),
            "6 yes · 2 no · 4 of other concepts",
            "tries nearest neighbour, prototype, linear and example cache; keeps the best",
        ),
        (
            ConceptPlan("a", 1, "img", "linear", 6, 6, "", 6, ("zero-shot", "linear")),
            "6 yes · 6 no",
            "tries zero-shot and linear; keeps the best",
        ),
    ],
)
def test_a_plan_in_the_label_pages_and_the_results_words(plan, examples, heads):
    assert (describe_plan_examples(plan), describe_plan(plan)) == (examples, heads)


def test_quality_rows_say_how_each_concept_did_in_plain_words():
    plans = [p | {"tries": ["nearest-neighbour", "linear"]} if p["concept"] == "a" else p for p in _PLANS]
    rows = {(r.concept, r.space): r for r in build_quality_rows({"concepts": plans, "metrics": [_EXCLUSIVE.to_dict()]})}
    assert rows["a", "img"].summary == "Right on 5 of 6 labelled inputs it had not seen: found 2 of its 3 examples, 0 wrongly matched"
    assert rows["a", "img"].kept == "linear (the best of 2 tried)" and rows["b", "img"].kept == "nearest neighbour"
    assert rows["d", "img"].summary == "Too few examples to measure"
    assert describe_overall(_EXCLUSIVE) == "The right concept for 5 of 6 labelled inputs it had not seen."
    assert describe_overall(Evaluation("img", "leave-one-out", concepts=_EXCLUSIVE.concepts)) == ""  # independent: per concept only


@pytest.mark.parametrize(
    "choice, expected",
    [
        (None, ""),
        ({"head": "linear", "metric": "ROC AUC", "scores": {}, "margin": None}, ""),  # nothing competed
        (
            {"head": "linear", "metric": "ROC AUC", "scores": {"linear": 0.9, "prototype": 0.88, "nearest-neighbour": 0.7}, "margin": 0.02},
            "beat prototype by 0.02 ROC AUC",
        ),
        (
            {"head": "nearest-neighbour", "metric": "ROC AUC", "scores": {"nearest-neighbour": 0.8, "linear": 0.803}, "margin": -0.003},
            "the default; linear only 0.003 ROC AUC better",
        ),
        (
            {"head": "linear", "metric": "log-likelihood", "scores": {"linear": -0.5, "tip-adapter": -0.5}, "margin": 0.0},
            "the default; tied with example cache on log-likelihood",
        ),
        (
            {
                "head": "prototype",
                "metric": "ROC AUC",
                "scores": {"prototype": 0.9, "prototype+unlabelled": 0.95, "linear": None},
                "margin": 0.1,
            },
            "",
        ),  # its only rival is itself, refined: nothing else was measured
    ],
)
def test_describe_choice(choice, expected):
    assert describe_choice(choice) == expected


@pytest.mark.parametrize(
    "evaluation, rows, columns, counts, expectation",
    [
        # exclusive: c was neither measured nor counted, and nothing landed in "(none)"
        (_EXCLUSIVE, ["a", "b"], ["a", "b"], [2, 1, 0, 3], does_not_raise()),
        (
            Evaluation(**{**_EXCLUSIVE.__dict__, "confusion": [[2, 0, 0, 1], [0, 3, 0, 0], [0, 0, 0, 0]]}),
            ["a", "b"],
            ["a", "b", NONE_LABEL],
            [2, 0, 1, 0, 3, 0],
            does_not_raise(),
        ),
        # independent: per concept, found / wrongly matched / missed / rightly left out
        (Evaluation(**{**_EXCLUSIVE.__dict__, "exclusive": False}), ["a", "b"], list(OUTCOMES), [2, 0, 1, 3, 3, 1, 0, 2], does_not_raise()),
        (Evaluation("img", "too few examples to measure"), None, None, None, does_not_raise()),
        (Evaluation(**{**_EXCLUSIVE.__dict__, "confusion": [[1, 2]]}), None, None, None, pytest.raises(ValueError, match="does not match")),
    ],
)
def test_build_confusion_chart(evaluation, rows, columns, counts, expectation):
    with expectation:
        chart = build_confusion_chart(evaluation)
        if rows is None:
            assert chart is None
            return
        assert (chart.rows, chart.columns) == (rows, columns)
        assert [(c.row, c.column) for c in chart.cells] == [(r, c) for r in rows for c in columns]
        assert [c.count for c in chart.cells] == counts
        right = {"found", "rightly left out"}
        assert all(c.correct == (c.row == c.column or c.column in right) for c in chart.cells)
        # A mistake nobody made is drawn neutral, not in the mistakes' orange.
        assert [c.shade for c in chart.cells] == ["right" if c.correct else "mistake" if c.count else "empty" for c in chart.cells]
        assert "empty" in {c.shade for c in chart.cells} or all(c.count or c.correct for c in chart.cells)


def test_read_evaluations_round_trips_what_training_stored(colours):
    project, result = colours
    report = project.store.list_versions()[-1][4]
    assert read_evaluations(report) == result.evaluations == get_evaluations(project)
    assert read_evaluations({}) == []
    (row,) = [r for r in build_quality_rows(report) if r.concept == "red"]
    assert row.f1 == 1.0 and row.threshold == result.evaluations[0].concept("red").threshold


def test_quality_rows_of_a_version_trained_without_cross_validation(colours):

    project, _ = colours
    train(project, HeadConfig(evaluate=False))
    rows = build_quality_rows(project.store.list_versions()[-1][4])
    assert rows and all(r.note == "not measured: trained without cross-validation" and r.f1 is None for r in rows)


# -- a face check's figures per person ------------------------------------------------------------

# Five held-out faces: alice's two, bob's two, and carol's one (not measured: a single face).
_FACES_SCORES = {
    "ids": [1, 2, 3, 4, 5],
    "names": ["alice", "bob", "carol"],
    "labels": [[1, -1, -1], [1, -1, -1], [-1, 1, -1], [-1, 1, -1], [-1, -1, 1]],
    "probabilities": [[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.5, 0.45, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]],
}
_FACES_EVALUATION = Evaluation(
    "faces",
    "leave-one-out",
    folds=5,
    inputs=5,
    exclusive=True,
    concepts=[_measured("alice", 1, 1, 1, 2), _measured("bob", 1, 0, 1, 3)],  # training's thresholds: 0.4 each
)
_FACES_PLANS = [{"concept": n, "space": "faces", "head": "prototype", "positives": 2, "negatives": 3} for n in ("alice", "bob")]


@pytest.mark.parametrize(
    "scores, in_force, expected, expectation",
    [
        # at 0.4: alice lets in bob's face 3 at 0.5 (1 of 3 others) and turns away her own 0.3 (1 of 2);
        # bob keeps both his (0.45, 0.8) and lets in alice's face 2 at 0.6 (1 of 3)
        (_FACES_SCORES, {}, [("alice", 0.4, 1, 3, 1, 2), ("bob", 0.4, 1, 3, 0, 2)], does_not_raise()),
        # a saved threshold is the one in force: bob at 0.7 lets in no one and turns away his 0.45
        (_FACES_SCORES, {"bob": 0.7}, [("alice", 0.4, 1, 3, 1, 2), ("bob", 0.7, 0, 3, 1, 2)], does_not_raise()),
        # face 3 was "unknown" in cross-validation: it is no one's, so alice's false accept goes and bob's own face is turned away
        (
            {**_FACES_SCORES, "unknown": [False, False, True, False, False]},
            {},
            [("alice", 0.4, 0, 3, 1, 2), ("bob", 0.4, 1, 3, 1, 2)],
            does_not_raise(),
        ),
        (
            {**_FACES_SCORES, "unknown": [True]},
            {},
            [("alice", 0.4, 1, 3, 1, 2), ("bob", 0.4, 1, 3, 0, 2)],
            does_not_raise(),
        ),  # damaged: ignored
        (None, {}, [], does_not_raise()),  # an older version kept no scores: no figures
        (_FACES_SCORES, {"bob": 1.5}, None, pytest.raises(ValueError, match="threshold")),
    ],
)
def test_build_verification_rows_by_hand(scores, in_force, expected, expectation):
    report = {"concepts": _FACES_PLANS, "metrics": [_FACES_EVALUATION.to_dict()]} | ({"scores": {"faces": scores}} if scores else {})
    with expectation:
        rows = build_verification_rows(report, in_force, 3)
        got = [(r.concept, round(r.threshold, 6), r.false_accepts, r.impostors, r.false_rejects, r.genuine) for _, r in rows]
        assert got == expected and all(space == "faces" for space, _ in rows)


@pytest.mark.parametrize("count, total, expected", [(1, 8, "12% (1 of 8)"), (0, 3, "0% (0 of 3)"), (2, 2, "100% (2 of 2)"), (0, 0, "–")])
def test_describe_rate(count, total, expected):
    assert describe_rate(count, total) == expected
