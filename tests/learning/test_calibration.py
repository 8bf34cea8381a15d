"""Tests for core.learning.calibration: Platt scaling and temperature scaling on known cases."""

from __future__ import annotations

import numpy as np
import pytest

from core.learning.calibration import UnknownCutoff, fit_platt, fit_temperature, fit_unknown_cutoff

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


# -- the "unknown" cut-off -----------------------------------------------------------------

_RAMP = np.arange(1, 101) / 100.0  # 0.01, 0.02, ..., 1.00


@pytest.mark.parametrize(
    "similarities, keep_rate, slack, cutoff, held_out, kept",
    [
        pytest.param(_RAMP[:18], 0.95, 0.02, -0.01, 18, 18, id="too-few-for-95%: the lowest less the slack"),
        pytest.param(_RAMP[:19], 0.95, 0.02, 0.01, 19, 19, id="19-is-enough: the lowest itself"),
        pytest.param(_RAMP[:39], 0.95, 0.02, 0.02, 39, 38, id="39: the second lowest"),
        pytest.param(_RAMP, 0.95, 0.02, 0.05, 100, 96, id="100: the fifth lowest"),
        pytest.param(_RAMP, 0.80, 0.02, 0.20, 100, 81, id="a lower rate cuts higher"),
        pytest.param(_RAMP[:9], 0.80, 0.0, 0.02, 9, 8, id="80%-needs-only-4-values"),
        pytest.param(np.r_[_RAMP[:19], np.nan, np.inf], 0.95, 0.02, 0.01, 19, 19, id="non-finite-ignored"),
        pytest.param(np.r_[[0.5] * 30], 0.95, 0.02, 0.5, 30, 30, id="ties-all-pass"),
        pytest.param(np.zeros(0), 0.95, 0.02, float("-inf"), 0, 0, id="nothing-held-out: never unknown"),
    ],
)
def test_unknown_cutoff_keeps_the_stated_share_of_held_out_inputs(similarities, keep_rate, slack, cutoff, held_out, kept):
    rule = fit_unknown_cutoff(similarities, keep_rate, slack)
    assert rule == UnknownCutoff(pytest.approx(cutoff), held_out, kept)


@pytest.mark.parametrize(
    "keep_rate, slack, message",
    [
        (0.0, 0.02, "keep_rate"),
        (1.0, 0.02, "keep_rate"),
        (1.5, 0.02, "keep_rate"),
        (float("nan"), 0.02, "keep_rate"),
        (0.95, -0.1, "slack"),
        (0.95, float("nan"), "slack"),
    ],
)
def test_unknown_cutoff_refuses_a_rate_or_slack_that_means_nothing(keep_rate, slack, message):
    with pytest.raises(ValueError, match=message):
        fit_unknown_cutoff(_RAMP, keep_rate, slack)


@pytest.mark.parametrize("n", [19, 40, 200])
def test_new_inputs_like_the_held_out_ones_pass_at_the_stated_rate(n):
    # Exchangeable draws: over many trials, the share of new inputs called unknown is k / (n + 1), at most 5 %
    # (less 0.4 points for the Monte Carlo error of 2,000 trials), and not far below: the rate is neither missed nor wasted.
    rng = np.random.default_rng(n)
    missed = []
    for _ in range(2000):
        rule = fit_unknown_cutoff(rng.normal(size=n), 0.95, 0.0)
        missed.append((rng.normal(size=50) < rule.cutoff).mean())
    assert 0.035 < np.mean(missed) <= 0.054
