"""Tests for core.learning.metrics: every figure against cases computed by hand, bad input refused."""

from __future__ import annotations

import json
from contextlib import nullcontext as does_not_raise

import numpy as np
import pytest

from core.learning.metrics import (
    accuracy,
    best_threshold,
    binary_metrics,
    confusion_matrix,
    evaluate_probabilities,
    exclusive_passes,
    roc_auc,
    verification_rates,
)

# -- metrics -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "y, s, t, unknown, expected, expectation",
    [
        # Alice's 3 held-out faces [0.9, 0.6, 0.3]: one below 0.5 is turned away; others' 4 faces: 0.7 is let in.
        ([1, 1, 1, 0, 0, 0, 0], [0.9, 0.6, 0.3, 0.7, 0.2, 0.1, 0.4], 0.5, None, (1, 4, 1, 3, 0.25, 1 / 3), does_not_raise()),
        # a higher threshold trades the false accept for one more false reject
        ([1, 1, 1, 0, 0, 0, 0], [0.9, 0.6, 0.3, 0.7, 0.2, 0.1, 0.4], 0.8, None, (0, 4, 2, 3, 0.0, 2 / 3), does_not_raise()),
        # an "unknown" face passes no one: the stranger at 0.7 is no false accept, Alice's unknown 0.9 is a false reject
        (
            [1, 1, 1, 0, 0, 0, 0],
            [0.9, 0.6, 0.3, 0.7, 0.2, 0.1, 0.4],
            0.5,
            [1, 0, 0, 1, 0, 0, 0],
            (0, 4, 2, 3, 0.0, 2 / 3),
            does_not_raise(),
        ),
        ([1, 0], [0.5, 0.5], 0.5, None, (1, 1, 0, 1, 1.0, 0.0), does_not_raise()),  # a score at the threshold passes
        ([1, 1], [0.2, 0.9], 0.5, None, (0, 0, 1, 2, None, 0.5), does_not_raise()),  # no one else's faces: no false-accept rate
        ([0], [0.9], 0.5, None, (1, 1, 0, 0, 1.0, None), does_not_raise()),
        ([1, 0], [0.5, 0.4], 1.5, None, None, pytest.raises(ValueError, match="threshold")),
        ([1, 0], [0.5, 0.4], float("nan"), None, None, pytest.raises(ValueError, match="threshold")),
        ([1, 0], [0.5], 0.5, None, None, pytest.raises(ValueError, match="equal length")),
        ([1, 0], [0.5, float("nan")], 0.5, None, None, pytest.raises(ValueError, match="finite")),
        ([1, 3], [0.5, 0.4], 0.5, None, None, pytest.raises(ValueError, match="0/1")),
        ([1, 0], [0.5, 0.4], 0.5, [True], None, pytest.raises(ValueError, match="one flag per input")),
    ],
)
def test_verification_rates_by_hand(y, s, t, unknown, expected, expectation):
    with expectation:
        r = verification_rates("alice", y, s, t, unknown)
        assert (r.false_accepts, r.impostors, r.false_rejects, r.genuine, r.far, r.frr) == pytest.approx(expected)


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


@pytest.mark.parametrize(
    "probabilities, thresholds, expected",
    [
        pytest.param([[0.6, 0.4]], [0.5, 0.3], [[True, False]], id="both reach their thresholds: only the most probable matches"),
        pytest.param([[0.6, 0.4]], [0.7, 0.3], [[False, False]], id="the most probable misses its threshold: nothing matches"),
        pytest.param([[0.2, 0.5, 0.3]], [0.1, 0.5, 0.1], [[False, True, False]], id="at the threshold it matches"),
        pytest.param([[np.nan, 0.7, 0.3]], [0.0, 0.5, 0.5], [[False, True, False]], id="a concept without a head never matches"),
    ],
)
def test_exclusive_concepts_match_at_most_one_and_respect_its_threshold(probabilities, thresholds, expected):
    assert exclusive_passes(np.array(probabilities), np.array(thresholds)).tolist() == expected


def test_exclusive_evaluation_counts_an_input_for_its_most_probable_concept_only():
    labels = np.array([[1, -1], [-1, 1]], np.int8)
    probabilities = np.array([[0.6, 0.4], [0.4, 0.6]])
    evaluation = evaluate_probabilities("s", ["a", "b"], labels, probabilities, np.array([0.3, 0.3]), True, "held-out")
    # Independent thresholds at 0.3 would pass both concepts on both inputs: a false positive each.
    assert [(m.tp, m.fp) for m in evaluation.concepts] == [(1, 0), (1, 0)]
