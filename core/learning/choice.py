"""Compare the candidate heads' out-of-fold scores and pick each concept's winner.

Independent concepts are compared by ROC AUC per concept; an exclusive space by the mean
log-likelihood of each input's true concept after temperature scaling (a proper score, far less
noisy than accuracy on a handful of held-out inputs). The default head wins unless a challenger
beats it clearly. Arrays in, choices out: ``selection.py`` produces the scores and uses the winners.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from core.learning.calibration import fit_temperature
from core.learning.candidates import REFINED, SpaceData, kind_of
from core.learning.heads import ENSEMBLE, PROTOTYPE, TIP_ADAPTER
from core.learning.metrics import roc_auc


@dataclass(frozen=True)
class HeadChoice:
    """Which head a concept got, and the cross-validated score of every kind that competed."""

    concept: str
    head: str
    candidate: str
    metric: str
    scores: dict[str, float | None]
    margin: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def _roc_auc_of(logits: np.ndarray, labels: np.ndarray, column: int) -> float | None:
    rows = labels[:, column] != 0
    if np.isnan(logits[rows, column]).all():
        return None
    return roc_auc(labels[rows, column] > 0, np.nan_to_num(logits[rows, column], nan=-1e9))


def combine_ensemble(linear: np.ndarray, nearest: np.ndarray, labels: np.ndarray) -> tuple[str, np.ndarray] | None:
    """(name, out-of-fold logits) of the ensemble: each head's logits over its fitted temperature.

    Summed, they are the log of the product of the two calibrated distributions (up to a
    constant per input), so neither head's logit scale decides how much it counts.
    """
    (z_linear, truth), (z_nearest, _) = _single_concept_rows(linear, labels), _single_concept_rows(nearest, labels)
    if not len(truth):
        return None
    # Rounded as the name shows them: the scores measured are those of the head that is saved.
    a, b = (float(f"{1.0 / fit_temperature(z, truth):.4g}") for z in (z_linear, z_nearest))
    return f"{ENSEMBLE}(linear={a:.4g},nearest={b:.4g})", a * linear + b * nearest


def _single_concept_rows(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits, true concept) of the inputs labelled with exactly one concept; a missing head's NaN as -1e3."""
    single = (labels > 0).sum(axis=1) == 1
    return np.nan_to_num(logits[single], nan=-1e3), np.argmax(labels[single] > 0, axis=1)


def _log_likelihoods(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per input with one concept: the log-probability of its concept after temperature scaling.

    Their mean is a proper score, far less noisy than accuracy on a handful of held-out inputs
    (and it is what calibration will optimise).
    """
    z, truth = _single_concept_rows(logits, labels)
    if not len(z):
        return np.zeros(0)
    t = fit_temperature(z, truth)
    scaled = z / t - (z / t).max(axis=1, keepdims=True)
    return scaled[np.arange(len(z)), truth] - np.log(np.exp(scaled).sum(axis=1))


def _standard_error(a: np.ndarray, b: np.ndarray) -> float:
    """Standard error of the mean paired difference of two heads' per-input scores."""
    return float(np.std(a - b, ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0


def choose_heads(
    data: SpaceData, labels: np.ndarray, oof: dict[str, np.ndarray], candidates: list[str], margin: float, challenger_standard_errors: float
) -> tuple[list[HeadChoice], dict[int, tuple[str, np.ndarray]]]:
    """Winner per concept (independent) or per space (exclusive) from the candidates' out-of-fold logits.

    The default wins ties: a challenger must beat it by ``margin`` and, where per-input scores exist, by
    ``challenger_standard_errors`` standard errors of its lead. Returns every concept's choice, and the
    winner's name and out-of-fold logits per column that had one.
    """
    c = labels.shape[1]
    trained = (labels > 0).any(axis=0)
    choices, chosen = [], {}
    groups = [list(np.flatnonzero(trained))] if data.exclusive else [[j] for j in np.flatnonzero(trained)]
    for columns in groups:
        default = data.defaults[columns[0]]
        if data.exclusive:
            per_input = {name: _log_likelihoods(oof[name], labels) for name in candidates}
            scores = {name: float(v.mean()) if len(v) else None for name, v in per_input.items()}
        else:
            per_input, scores = {}, {name: _roc_auc_of(oof[name], labels, columns[0]) for name in candidates}
        valid = {name: s for name, s in scores.items() if s is not None and not np.isnan(s)}
        if not valid:
            winner = choose_default_candidate(default, data)
        else:
            # The default candidate first (refined prototypes where the project has unlabelled
            # inputs), then its kind, then the rest in order.
            first = choose_default_candidate(default, data)
            order = sorted(valid, key=lambda name: (name != first, kind_of(name) != default, candidates.index(name)))
            winner = order[0]
            for name in order[1:]:
                # A challenger must win by the margin and, where per-input scores exist, by part of
                # the standard error of its lead: among a dozen candidates on a few held-out
                # inputs, one beats the default by luck alone.
                noise = _standard_error(per_input[name], per_input[winner]) if per_input else 0.0
                if valid[name] > valid[winner] + margin + challenger_standard_errors * noise:
                    winner = name
        by_kind: dict[str, float | None] = {}
        for name, value in scores.items():
            kind = REFINED if name == REFINED else kind_of(name)
            if value is not None and (by_kind.get(kind) is None or value > by_kind[kind]):
                by_kind[kind] = round(float(value), 4)
            by_kind.setdefault(kind, None)
        others = [v for name, v in valid.items() if kind_of(name) != kind_of(winner)]
        lead = round(float(valid[winner] - max(others)), 4) if winner in valid and others else None
        metric = "log-likelihood" if data.exclusive else "ROC AUC"
        for j in columns:
            chosen[j] = winner
            choices.append(HeadChoice(data.names[j], kind_of(winner), winner, metric, by_kind, lead))
    for j in range(c):
        if j not in chosen:
            choices.append(HeadChoice(data.names[j], data.defaults[j], data.defaults[j], "", {}, None))
    return choices, {j: (chosen[j], oof[chosen[j]]) for j in chosen if chosen[j] in oof}


def choose_default_candidate(default: str, data: SpaceData) -> str:
    """The candidate that stands for a concept's default head kind (and wins when nothing can be measured)."""
    if default == TIP_ADAPTER:
        return f"{TIP_ADAPTER}(alpha=1,beta=5.5)"  # Tip-Adapter's own defaults
    if default == PROTOTYPE and data.exclusive and len(data.unlabelled):
        return REFINED
    return default
