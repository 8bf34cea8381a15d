"""The wide benchmark's own arithmetic (bench/quality.py): figures, intervals, verdicts. Nothing is downloaded or embedded."""

from __future__ import annotations

import numpy as np
import pytest

from bench.quality import BASELINES, bootstrap_interval, compare, figures, summarise, t_interval


def test_figures_on_an_imbalanced_test_set():
    truth = np.array([0] * 8 + [1] * 2)
    predicted = np.array([0] * 7 + [1] + [1, 0])
    f = figures(truth, predicted, 2)
    assert f["accuracy"] == pytest.approx(0.8)
    assert f["balanced accuracy"] == pytest.approx((7 / 8 + 1 / 2) / 2)
    # class 1 is the rarer: tp 1, predicted 2, true 2
    assert f["rare-class F1"] == pytest.approx(2 * 1 / 4)
    assert f["macro F1"] == pytest.approx((2 * 7 / 16 + 0.5) / 2)


def test_figures_ignore_a_class_absent_from_the_test_set_for_recall():
    f = figures(np.array([0, 0, 1]), np.array([0, 0, 2]), 3)
    assert f["balanced accuracy"] == pytest.approx(0.5)
    assert f["rare-class F1"] == 0.0  # class 1: present once, never predicted


def test_t_interval_matches_the_textbook():
    mean, low, high = t_interval([1.0, 2.0, 3.0, 4.0])
    # sd = 1.29099, t(0.975, 3) = 3.18245
    assert mean == 2.5
    assert high - mean == pytest.approx(3.18245 * 1.29099 / 2, rel=1e-4)
    assert mean - low == pytest.approx(high - mean)
    assert t_interval([0.7] * 5) == (0.7, 0.7, 0.7)
    assert t_interval([0.3]) == (0.3, 0.3, 0.3)


def test_bootstrap_interval_brackets_the_value():
    correct = (np.arange(200) % 4 != 0).astype(float)  # 75 % right
    value, low, high = bootstrap_interval(correct, lambda rows: correct[rows].mean())
    assert value == 0.75
    assert low < 0.75 < high
    assert 0.05 < high - low < 0.2  # about 2 * 1.96 * sqrt(.75 * .25 / 200) = 0.12


def _cell(conceptlab, **baselines):
    cell = {m: (0.5, 0.45, 0.55) for m in BASELINES}
    cell.update({m.replace("_", " "): v for m, v in baselines.items()})
    cell["conceptlab"] = conceptlab
    return cell


def test_compare_uses_the_best_baseline_and_its_interval():
    cell = _cell((0.78, 0.7, 0.86), **{"1-NN": (0.8, 0.79, 0.81)})
    v = compare(cell, paired=(-0.02, -0.05, 0.01))
    assert v["best baseline"] == "1-NN"
    assert v["margin"] == pytest.approx(-0.02)
    assert v["margin vs LogisticRegression()"] == pytest.approx(0.28)
    assert v["below"] and not v["paired below"]
    inside = compare(_cell((0.795, 0.7, 0.86), **{"1-NN": (0.8, 0.79, 0.81)}), paired=(-0.005, -0.01, -0.001))
    assert not inside["below"] and inside["paired below"]


def test_summarise_counts_and_finds_the_worst_cell():
    verdicts = {
        "a k=1": compare(_cell((0.6, 0.55, 0.65)), (0.1, 0.05, 0.15)),
        "a k=8": compare(_cell((0.3, 0.25, 0.35)), (-0.2, -0.25, -0.15)),
        "b k=1": compare(_cell((0.5, 0.45, 0.55)), (0.0, -0.05, 0.05)),
    }
    s = summarise(verdicts)
    assert s["cells"] == 3
    assert s["mean margin"] == pytest.approx((0.1 - 0.2 + 0.0) / 3)
    assert s["worst cell"] == "a k=8" and s["worst margin"] == pytest.approx(-0.2)
    assert s["below"] == 1 and s["paired below"] == 1
