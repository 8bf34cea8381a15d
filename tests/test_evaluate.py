"""Evaluation: metrics against hand-computed cases, leak-free folds, head selection, thresholds, held-out runs."""

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
from core.learning.calibration import fit_platt, fit_temperature
from core.learning.candidates import REFINED, SpaceData, default_heads, parameters_of
from core.learning.choice import choose_heads, combine_ensemble
from core.learning.folds import group_rows, make_folds
from core.learning.heads import ENSEMBLE, LINEAR, NEAREST, PROTOTYPE, TIP_ADAPTER, HeadConfig
from core.learning.metrics import (
    NONE_LABEL,
    ConceptMetrics,
    Evaluation,
    accuracy,
    best_threshold,
    binary_metrics,
    confusion_matrix,
    evaluate_probabilities,
    precision_recall_f1,
    roc_auc,
)
from core.learning.selection import SelectionConfig, fit_space
from core.prediction import predict
from core.storage.projects import create_project
from core.views.reports import OUTCOMES, build_confusion_chart, build_quality_rows, describe_choice, read_evaluations

from .photos import save_photo_folders, solid_image

# -- metrics -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "y, s, t, expected, expectation",
    [
        # predicted [1, 0, 1, 0]: one of each outcome; 3 of 4 positive/negative pairs ranked right
        ([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1], 0.5, (1, 1, 1, 1, 0.5, 0.5, 0.5, 0.75), does_not_raise()),
        # ties count half in ROC AUC; a score equal to the threshold passes
        ([1, 0], [0.5, 0.5], 0.5, (1, 1, 0, 0, 0.5, 1.0, 2 / 3, 0.5), does_not_raise()),
        # threshold 0: everything passes
        ([1, 0, 0], [0.2, 0.1, 0.0], 0.0, (1, 2, 0, 0, 1 / 3, 1.0, 0.5, 1.0), does_not_raise()),
        # threshold 1: only a score of exactly 1 passes
        ([1, 0], [1.0, 0.3], 1.0, (1, 0, 0, 1, 1.0, 1.0, 1.0, 1.0), does_not_raise()),
        ([1, 0], [0.99, 0.3], 1.0, (0, 0, 1, 1, None, 0.0, 0.0, 1.0), does_not_raise()),
        # no positives: recall and ROC AUC cannot be measured
        ([0, 0], [0.2, 0.7], 0.5, (0, 1, 0, 1, 0.0, None, 0.0, None), does_not_raise()),
        ([0, 0], [0.1, 0.2], 0.5, (0, 0, 0, 2, None, None, None, None), does_not_raise()),
        ([True, False], [0.8, 0.1], 0.5, (1, 0, 0, 1, 1.0, 1.0, 1.0, 1.0), does_not_raise()),
        ([1, 0, 1], [0.5, 0.5], 0.5, None, pytest.raises(ValueError, match="equal length")),
        ([1, 0], [0.5, float("nan")], 0.5, None, pytest.raises(ValueError, match="finite")),
        ([1, 2], [0.5, 0.4], 0.5, None, pytest.raises(ValueError, match="0/1")),
        ([1, 0], [0.5, 0.4], 1.5, None, pytest.raises(ValueError, match="threshold")),
        ([[1, 0]], [[0.5, 0.4]], 0.5, None, pytest.raises(ValueError, match="1-d")),
    ],
)
def test_binary_metrics_by_hand(y, s, t, expected, expectation):
    with expectation:
        m = binary_metrics("c", y, s, t)
        got = (m.tp, m.fp, m.fn, m.tn, m.precision, m.recall, m.f1, m.roc_auc)
        assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    "t, p, n, expected, expectation",
    [
        ([0, 0, 1, 2], [0, 1, 1, 0], 3, [[1, 1, 0], [0, 1, 0], [1, 0, 0]], does_not_raise()),
        ([], [], 2, [[0, 0], [0, 0]], does_not_raise()),
        ([0, 3], [0, 0], 3, None, pytest.raises(ValueError, match="class indices")),
        ([0, -1], [0, 0], 3, None, pytest.raises(ValueError, match="class indices")),
        ([0, 1], [0], 3, None, pytest.raises(ValueError, match="equal length")),
    ],
)
def test_confusion_matrix_by_hand(t, p, n, expected, expectation):
    with expectation:
        assert confusion_matrix(t, p, n).tolist() == expected


@pytest.mark.parametrize(
    "y, s, expected",
    [
        ([1, 1, 0, 0], [0.9, 0.8, 0.3, 0.2], 0.55),  # halfway between the classes
        ([1, 0, 1, 0], [0.9, 0.7, 0.6, 0.1], 0.35),  # recall 1 with one false positive beats precision 1 with recall 1/2
        ([1, 1], [0.9, 0.2], 0.5),  # no negatives: F1 says nothing
        ([0, 0], [0.9, 0.2], 0.5),
    ],
)
def test_best_threshold_maximises_f1(y, s, expected):
    assert best_threshold(y, s) == pytest.approx(expected)


def test_roc_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    s = np.round(rng.random(200) + 0.3 * y, 1)  # rounded: many ties
    pairs = [(a > b) + 0.5 * (a == b) for a in s[y] for b in s[~y]]
    assert roc_auc(y, s) == pytest.approx(np.mean(pairs))
    assert accuracy([0, 1, 1], [0, 1, 0]) == pytest.approx(2 / 3) and accuracy([], []) is None


def test_evaluation_counts_unknown_inputs_as_matching_nothing():
    labels = np.array([[1, -1], [-1, 1], [1, -1]])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    e = evaluate_probabilities("s", ["a", "b"], labels, probabilities, np.array([0.5, 0.5]), True, "held-out", unknown=[False, False, True])
    assert e.accuracy == pytest.approx(2 / 3)
    assert e.confusion == [[1, 0, 1], [0, 1, 0]] and e.labels == ["a", "b", "(none)"]
    assert e.concept("a").fn == 1 and e.concept("a").tp == 1
    assert type(e).from_dict(json.loads(json.dumps(e.to_dict()))) == e


# -- calibration ---------------------------------------------------------------------------


def test_platt_is_finite_on_separable_scores_and_ignores_the_logit_scale():
    logits = np.array([20.0, 19.0, 21.0, -6.0, -7.0, -6.5])
    labels = np.array([1, 1, 1, 0, 0, 0], bool)
    a, b = fit_platt(logits, labels)
    p = 1 / (1 + np.exp(-(a * logits + b)))
    assert np.isfinite([a, b]).all() and (p[labels] > 0.7).all() and (p[labels] < 1).all() and (p[~labels] < 0.3).all()
    a2, b2 = fit_platt(logits * 10 + 3, labels)
    np.testing.assert_allclose(1 / (1 + np.exp(-(a2 * (logits * 10 + 3) + b2))), p, atol=1e-6)
    assert fit_platt(logits, np.ones(6, bool)) == (1.0, 0.0)
    assert fit_platt(-logits, labels)[0] == 0.0  # ranked backwards: flat, never inverted


def test_temperature_undoes_a_scaled_softmax():
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 3, 300)
    logits = 2.0 * np.eye(3)[classes] + rng.normal(size=(300, 3))
    assert fit_temperature(10 * logits, classes) == pytest.approx(10 * fit_temperature(logits, classes), rel=0.05)


# -- folds never leak ----------------------------------------------------------------------


def test_folds_keep_groups_together_and_test_every_row_once():
    groups = np.array([1, 1, 2, 3, 3, 3, 4, 5, 6, 7, 8, 9])
    strata = np.array([0, 0, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1])
    folds = make_folds(groups, strata, 3)
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(len(groups)))
    for train_rows, test_rows in folds:
        assert not set(groups[train_rows]) & set(groups[test_rows])


def test_identical_embeddings_share_a_group_even_under_different_ids():
    vectors = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], np.float32)
    groups = group_rows(np.array([10, 11, 12, 11]), vectors)
    assert groups[0] == groups[2] and groups[1] == groups[3] and groups[0] != groups[1]


def test_cross_validation_cannot_memorise_duplicates():
    """Random labels, each input stored twice (two ids, same bytes' embedding): no head can beat chance honestly."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = rng.integers(0, 2, 60)
    vectors, classes = np.concatenate([x, x]), np.concatenate([y, y])
    labels = np.where(np.eye(2, dtype=bool)[classes], 1, -1).astype(np.int8)
    data = _space_data(vectors, labels, exclusive=True)
    fit = fit_space(data)
    assert fit.evaluation.method == "5-fold cross-validation"
    assert fit.evaluation.accuracy < 0.7  # 1-NN over leaked duplicates would score 1.0


# -- head selection ------------------------------------------------------------------------


# choose_heads as fit_space calls it, with the default selection's margins.
CHOICE = {"margin": SelectionConfig().margin, "challenger_standard_errors": SelectionConfig().challenger_standard_errors}


def _space_data(vectors, labels, exclusive, unlabelled=None) -> SpaceData:
    c = labels.shape[1]
    return SpaceData(
        space="s",
        names=[f"c{j}" for j in range(c)],
        concept_ids=np.arange(c),
        exclusive=exclusive,
        ids=np.arange(len(vectors), dtype=np.int64),
        vectors=vectors.astype(np.float32),
        labels=labels,
        unlabelled=np.zeros((0, vectors.shape[1]), np.float32) if unlabelled is None else unlabelled,
        defaults=default_heads((labels > 0).sum(0), (labels < 0).sum(0), exclusive, False, HeadConfig().min_linear_positives),
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"labels": np.zeros((3, 2), np.int8)}, "labels"),
        ({"defaults": [PROTOTYPE]}, "labels"),
        ({"vectors": np.zeros((2, 4), np.float32)}, "vectors"),
        ({"unlabelled": np.zeros((2, 5), np.float32)}, "unlabelled"),
    ],
)
def test_space_data_checks_its_shapes(change, message):
    data = _space_data(np.eye(4, dtype=np.float32), np.array([[1, -1], [-1, 1], [1, -1], [-1, 1]], np.int8), exclusive=False)
    with pytest.raises(ValueError, match=message):
        SpaceData(**{**data.__dict__, **change})


def _two_mode_classes(n: int, seed: int = 0):
    """Class 0 lives around +u and -u, class 1 around +v and -v: every class mean is ~0, so only local heads work."""
    rng = np.random.default_rng(seed)
    u, v = np.eye(24)[0], np.eye(24)[1]
    modes = np.stack([u, -u, v, -v])
    which = np.arange(n) % 4
    x = modes[which] + 0.15 * rng.normal(size=(n, 24))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), which // 2


def test_selection_picks_a_local_head_when_class_means_say_nothing():
    x, y = _two_mode_classes(80)
    labels = np.where(np.eye(2, dtype=bool)[y], 1, -1).astype(np.int8)
    fit = fit_space(_space_data(x, labels, exclusive=True))
    choice = fit.choices[0]
    assert choice.head in (NEAREST, TIP_ADAPTER, ENSEMBLE), choice  # the ensemble holds the nearest-neighbour head
    # mean log-likelihood of the true class: log(1/2) = -0.69 is a coin toss, 0 is certainty
    assert choice.metric == "log-likelihood" and choice.scores[PROTOTYPE] < -0.6 and choice.scores[LINEAR] < -0.6
    assert choice.scores[choice.head] > -0.2 and fit.evaluation.accuracy > 0.95
    test_x, test_y = _two_mode_classes(40, seed=1)
    assert (np.argmax(fit.heads.score(test_x), axis=1) == test_y).mean() > 0.95


def test_selection_keeps_the_default_head_on_a_tie_and_needs_a_margin_to_switch():
    labels = np.array([[1, -1]] * 4 + [[-1, 1]] * 4, np.int8)
    data = _space_data(np.eye(8, dtype=np.float32), labels, exclusive=False)
    perfect = np.where(labels > 0, 1.0, -1.0)
    noisy = perfect.copy()
    noisy[0] = -noisy[0]
    oof = {PROTOTYPE: perfect, LINEAR: perfect, NEAREST: noisy}
    choices, _ = choose_heads(data, labels, oof, [NEAREST, PROTOTYPE, LINEAR], **CHOICE)
    assert [c.head for c in choices] == [PROTOTYPE, PROTOTYPE]  # the default for 4 positives
    oof[LINEAR] = perfect
    oof[PROTOTYPE] = noisy
    choices, _ = choose_heads(data, labels, oof, [NEAREST, PROTOTYPE, LINEAR], **CHOICE)
    assert [c.head for c in choices] == [LINEAR, LINEAR] and choices[0].margin > 0


def _right_or_wrong(wrong_rows: list[int], n: int = 20) -> np.ndarray:
    """Exclusive logits for rows alternating between two concepts: margin 1 for the true one, -1 on ``wrong_rows``."""
    truth = np.arange(n) % 2
    sign = np.ones(n)
    sign[wrong_rows] = -1
    logits = np.zeros((n, 2))
    logits[np.arange(n), truth] = sign / 2
    logits[np.arange(n), 1 - truth] = -sign / 2
    return logits


@pytest.mark.parametrize(
    "challenger_wrong, standard_errors, winner",
    [
        ([0, 1, 2, 3], 0.5, LINEAR),  # a tie: the default stays
        ([0, 1], 0.5, NEAREST),  # right on two more inputs, wrong on none that the default gets
        ([3, 4, 5], 0.5, LINEAR),  # three won, two lost: a lead of one input is noise
        ([3, 4, 5], 0.0, NEAREST),  # ...that the margin alone would follow
        ([0, 1, 2, 3, 4, 5], 0.5, LINEAR),  # worse
    ],
)
def test_an_exclusive_challenger_must_lead_by_more_than_its_noise(challenger_wrong, standard_errors, winner):
    labels = np.where(np.eye(2, dtype=bool)[np.arange(20) % 2], 1, -1).astype(np.int8)
    data = _space_data(np.eye(20, dtype=np.float32), labels, exclusive=True)
    oof = {LINEAR: _right_or_wrong([0, 1, 2, 3]), NEAREST: _right_or_wrong(challenger_wrong)}
    choices, _ = choose_heads(data, labels, oof, [NEAREST, LINEAR], **{**CHOICE, "challenger_standard_errors": standard_errors})
    assert data.defaults[0] == LINEAR and [c.head for c in choices] == [winner, winner]


def test_the_ensemble_wins_where_linear_and_nearest_neighbour_each_know_half_the_inputs():
    labels = np.where(np.eye(2, dtype=bool)[np.arange(20) % 2], 1, -1).astype(np.int8)
    data = _space_data(np.eye(20, dtype=np.float32), labels, exclusive=True)
    half = (np.arange(20) < 10)[:, None]
    unsure = _right_or_wrong([]) * 0.05
    # Each head is sure (and right on all but one input) on its half, and barely leans right on the other.
    oof = {LINEAR: np.where(half, _right_or_wrong([0]) * 4, unsure), NEAREST: np.where(half, unsure, _right_or_wrong([10]) * 4)}
    name, logits = combine_ensemble(oof[LINEAR], oof[NEAREST], labels)
    a, b = parameters_of(name)
    assert name.startswith(ENSEMBLE) and a > 0 and b > 0
    np.testing.assert_allclose(logits, a * oof[LINEAR] + b * oof[NEAREST])
    oof[name] = logits
    choices, _ = choose_heads(data, labels, oof, [NEAREST, LINEAR, name], **CHOICE)
    assert [c.head for c in choices] == [ENSEMBLE, ENSEMBLE] and choices[0].candidate == name and choices[0].margin > 0


@pytest.mark.parametrize("kinds, ensemble", [((), True), ((LINEAR,), False), ((LINEAR, NEAREST, ENSEMBLE), True)])
def test_fit_space_scores_the_ensemble_in_exclusive_spaces_unless_kinds_leave_it_out(kinds, ensemble):
    x, y = _two_mode_classes(40)
    labels = np.where(np.eye(2, dtype=bool)[y], 1, -1).astype(np.int8)
    fit = fit_space(_space_data(x, labels, exclusive=True), config=SelectionConfig(kinds=kinds))
    assert (ENSEMBLE in fit.choices[0].scores) == ensemble


@pytest.mark.parametrize(
    "per_concept, config, refined",
    [
        ((8, 8), SelectionConfig(), True),
        ((40, 8), SelectionConfig(), True),  # the small concept can still gain
        ((40, 40), SelectionConfig(), False),  # every concept has enough examples of its own
        ((8, 8), SelectionConfig(refine_max_rows=10), False),  # too many rows to propagate cheaply
    ],
)
def test_refined_prototypes_compete_while_some_concept_has_few_examples(per_concept, config, refined):
    x, y = _two_mode_classes(200)
    rows = np.concatenate([np.flatnonzero(y == j)[:n] for j, n in enumerate(per_concept)])
    labels = np.where(np.eye(2, dtype=bool)[y[rows]], 1, -1).astype(np.int8)
    unlabelled = np.delete(x, rows, axis=0)
    fit = fit_space(_space_data(x[rows], labels, exclusive=True, unlabelled=unlabelled), config=config)
    assert (REFINED in fit.choices[0].scores) == refined


def test_one_example_each_is_too_few_to_measure_but_still_predicts():
    x, y = _two_mode_classes(4)
    labels = np.where(np.eye(2, dtype=bool)[y[[0, 2]]], 1, -1).astype(np.int8)
    unlabelled = _two_mode_classes(40, seed=2)[0]
    fit = fit_space(_space_data(x[[0, 2]], labels, exclusive=True, unlabelled=unlabelled))
    assert fit.evaluation.method == "too few examples to measure" and not fit.evaluation.measured
    assert fit.choices[0].candidate == REFINED and (fit.heads.thresholds == 0.5).all()
    assert np.isfinite(fit.heads.unknown_cutoff)


def test_training_a_few_thousand_inputs_cross_validates_a_sample():
    # How long this takes is measured in bench/, not here.
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 384))
    y = np.arange(3000) % 10
    x = centres[y] + 2.0 * rng.normal(size=(3000, 384))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    labels = np.where(np.eye(10, dtype=bool)[y], 1, -1).astype(np.int8)
    fit = fit_space(_space_data(x, labels, exclusive=False))
    assert "sample of 2000 of 3000" in fit.evaluation.note and fit.evaluation.macro_f1 > 0.8


# -- thresholds and unknown inputs in a project ---------------------------------------------

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


@pytest.fixture
def colours(tmp_path):
    for concept, colour in COLOURS.items():
        folder = tmp_path / "in" / concept
        folder.mkdir(parents=True)
        for i in range(6):
            solid_image(colour, seed=i + 100 * len(concept)).save(folder / f"{i}.png")
    project = create_project("colours", "tiny")
    ingest(project, read_inputs([tmp_path / "in"], ReadConfig(labels_from_folders=True)))
    return project, train(project)


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
    assert result.unknown and "far from every labelled example" in result.unknown_reason
    assert result.matches == [] and not any(c.passes for c in result.concepts)
    known = _query(project, tmp_path, solid_image(COLOURS["green"], seed=4242))
    assert not known.unknown and known.matches == ["green"]
    assert known.to_dict()["unknown"] is False and "unknown_reason" not in known.to_dict()


# -- mistakes to relabel -----------------------------------------------------------------------


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
            "the default; tied with tip adapter on log-likelihood",
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


def test_read_evaluations_round_trips_what_training_stored(colours):
    project, result = colours
    report = project.store.list_versions()[-1][4]
    assert read_evaluations(report) == result.evaluations == get_evaluations(project)
    assert read_evaluations({}) == []
    (row,) = [r for r in build_quality_rows(report) if r.concept == "red"]
    assert row.f1 == 1.0 and row.threshold == result.evaluations[0].concept("red").threshold


def test_quality_rows_of_a_version_trained_without_cross_validation(colours):
    from core.learning.heads import HeadConfig

    project, _ = colours
    train(project, HeadConfig(evaluate=False))
    rows = build_quality_rows(project.store.list_versions()[-1][4])
    assert rows and all(r.note == "not measured: trained without cross-validation" and r.f1 is None for r in rows)


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

    assert run(["--json", "evaluate", "photos", str(tmp_path / "test"), "--labels-from-folders"]) == 0
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
