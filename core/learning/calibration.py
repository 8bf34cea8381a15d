"""Calibration: turn a head's raw logits into probabilities that mean what they say.

Both fits run on cross-validated logits (scores of inputs the head did not see):

- ``fit_platt`` (independent concepts): ``p = sigmoid(a * logit + b)``, Platt (1999) with his
  smoothed targets so a handful of examples cannot produce probabilities of exactly 0 or 1;
- ``fit_temperature`` (exclusive concepts): ``p = softmax(logits / T)``, one temperature for all
  classes (Guo et al., 2017), which keeps the ranking of classes and only fixes confidence;
- ``fit_unknown_cutoff``: the similarity to the nearest labelled example below which an input is
  "unknown", set so that a stated share of held-out labelled inputs stays above it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IDENTITY = (1.0, 0.0)
_MAX_SLOPE = 1e3
_RIDGE = 1e-3  # keeps the slope finite on perfectly separated scores


def fit_platt(logits, labels, iterations: int = 100) -> tuple[float, float]:
    """Fit ``(a, b)`` for ``sigmoid(a * logit + b)`` by Newton's method on the log-loss.

    Args:
        logits: (n,) raw head outputs.
        labels: (n,) booleans.

    Returns:
        (a, b); the identity ``(1, 0)`` when one class is missing. ``a`` is never negative: a
        head that ranks backwards gets a flat probability (its base rate), not an inverted one.

    Raises:
        ValueError: mismatched lengths or non-finite logits.
    """
    s = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError("logits and labels must be 1-d and of equal length")
    if not np.isfinite(s).all():
        raise ValueError("logits must be finite")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return IDENTITY
    target = np.where(y, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    # Fit on standardised logits: Newton is well conditioned there whatever the head's scale.
    mean, spread = float(s.mean()), float(s.std()) or 1.0
    u = (s - mean) / spread
    x = np.stack([u, np.ones_like(u)], axis=1)
    ridge = np.diag([_RIDGE, 0.0])
    theta = np.array([0.0, float(np.log((n_pos + 1) / (n_neg + 1)))])

    def loss(t: np.ndarray) -> float:
        return _log_loss(x @ t, target) + 0.5 * _RIDGE * t[0] ** 2

    for _ in range(iterations):
        p = _sigmoid(x @ theta)
        gradient = x.T @ (p - target) + ridge @ theta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + ridge + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        current, scale = loss(theta), 1.0
        while scale > 1e-6 and loss(theta - scale * step) > current:
            scale /= 2
        if scale <= 1e-6:
            break
        theta = theta - scale * step
        if np.abs(scale * step).max() < 1e-9:
            break
    a, b = theta[0] / spread, theta[1] - theta[0] * mean / spread
    if a < 0:
        return 0.0, float(np.log((n_pos + 1) / (n_neg + 1)))
    return float(min(a, _MAX_SLOPE)), float(b)


def fit_temperature(logits, classes) -> float:
    """The temperature T minimising the log-loss of ``softmax(logits / T)`` for the true classes.

    Args:
        logits: (n, C) raw head outputs.
        classes: (n,) index of each row's true class.

    Returns:
        T > 0; 1.0 for no rows.
    """
    z = np.asarray(logits, dtype=np.float64)
    c = np.asarray(classes, dtype=np.int64)
    if z.ndim != 2 or c.shape != (len(z),):
        raise ValueError("logits must be (n, C) and classes (n,)")
    if len(z) == 0:
        return 1.0
    if not np.isfinite(z).all():
        raise ValueError("logits must be finite")

    def loss(log_t: float) -> float:
        scaled = z / np.exp(log_t)
        scaled -= scaled.max(axis=1, keepdims=True)
        return float((np.log(np.exp(scaled).sum(axis=1)) - scaled[np.arange(len(z)), c]).mean())

    # The loss is unimodal in log T: a coarse grid, then golden-section search around the best point.
    grid = np.linspace(-6, 6, 49)
    best = grid[int(np.argmin([loss(t) for t in grid]))]
    lo, hi = best - 0.25, best + 0.25
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        m1, m2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if loss(m1) < loss(m2):
            hi = m2
        else:
            lo = m1
    return float(np.exp((lo + hi) / 2))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def _log_loss(z: np.ndarray, target: np.ndarray) -> float:
    # log(1 + e^z) - t z, written to stay finite for large |z|
    return float((np.logaddexp(0, z) - target * z).sum())


@dataclass(frozen=True)
class UnknownCutoff:
    """Where "unknown" starts, and what it was measured on.

    Attributes:
        cutoff: an input less similar than this to every labelled example is unknown; ``-inf``: never.
        held_out: how many held-out labelled inputs the cut-off was set on (0: not measured).
        kept: how many of them are at or above it.
    """

    cutoff: float
    held_out: int
    kept: int


def fit_unknown_cutoff(similarities, keep_rate: float, slack: float) -> UnknownCutoff:
    """The cut-off that keeps at least ``keep_rate`` of new inputs like the held-out ones.

    ``similarities`` are, for each held-out labelled input, its similarity to the nearest
    labelled input it was held out from. The cut-off is their k-th smallest value with
    ``k = floor((1 - keep_rate) * (n + 1))``: a new input exchangeable with the n held-out ones
    falls below it with probability at most ``k / (n + 1)`` (split-conformal prediction, Vovk
    et al. 2005), so at most ``1 - keep_rate`` of them are called unknown. While n is too small
    for any k (n + 1 < 1 / (1 - keep_rate): 19 at 95 %), no order statistic promises the rate:
    the cut-off is then the smallest value less ``slack``, so every held-out input passes with
    room to spare, rather than one over-fitted to a handful of values.

    Raises:
        ValueError: ``keep_rate`` outside (0, 1) or a negative ``slack``.
    """
    if not 0.0 < keep_rate < 1.0:
        raise ValueError(f"keep_rate must lie strictly between 0 and 1, not {keep_rate}")
    if not slack >= 0.0:
        raise ValueError(f"slack must be 0 or more, not {slack}")
    values = np.sort(np.asarray(similarities, dtype=np.float64).ravel())
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return UnknownCutoff(float("-inf"), 0, 0)
    # The small epsilon keeps floor() from losing a rank to rounding (0.05 * 20 = 0.9999...).
    k = int(np.floor((1.0 - keep_rate) * (n + 1) + 1e-9))
    cutoff = float(values[0] - slack) if k < 1 else float(values[k - 1])
    return UnknownCutoff(cutoff, n, int((values >= cutoff).sum()))
