"""Tests for core.learning.calibration: Platt scaling and temperature scaling on known cases."""

from __future__ import annotations

import numpy as np
import pytest

from core.learning.calibration import fit_platt, fit_temperature

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
