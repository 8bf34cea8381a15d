"""Classification metrics, computed by hand on numpy arrays (no scikit-learn at run time).

Conventions: a metric that cannot be computed from the data (precision when nothing was
predicted positive, ROC AUC with only one class present) is ``None``, never a made-up 0 or 1,
so a page can say "not measurable" instead of showing a number that means nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class ConceptMetrics:
    """One concept's scores against its labels at one threshold, and the counts behind them."""

    concept: str
    threshold: float
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float | None
    recall: float | None
    f1: float | None
    roc_auc: float | None

    def __post_init__(self) -> None:
        if min(self.tp, self.fp, self.fn, self.tn) < 0:
            raise ValueError("counts must not be negative")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], not {self.threshold}")

    @property
    def positives(self) -> int:
        return self.tp + self.fn

    @property
    def negatives(self) -> int:
        return self.fp + self.tn

    def to_dict(self) -> dict:
        return {**asdict(self), "positives": self.positives, "negatives": self.negatives}

    @classmethod
    def from_dict(cls, data: dict) -> ConceptMetrics:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def _check_binary(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise ValueError(f"labels and scores must be 1-d and of equal length, not {y.shape} and {s.shape}")
    if y.dtype != bool and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be booleans or 0/1")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y.astype(bool), s


def count_outcomes(y_true, scores, threshold: float) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) when ``score >= threshold`` means "predicted positive"."""
    y, s = _check_binary(y_true, scores)
    if not 0.0 <= threshold <= 1.0 or not np.isfinite(threshold):
        raise ValueError(f"threshold must be in [0, 1], not {threshold}")
    predicted = s >= threshold
    return int((predicted & y).sum()), int((predicted & ~y).sum()), int((~predicted & y).sum()), int((~predicted & ~y).sum())


def precision_recall_f1(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    """Precision, recall and F1 from counts; ``None`` where the denominator is zero."""
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None
    return precision, recall, f1


def roc_auc(y_true, scores) -> float | None:
    """Area under the ROC curve: the chance a random positive outscores a random negative (ties count half).

    Returns None when the labels hold only one class.
    """
    y, s = _check_binary(y_true, scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing their mean rank (Mann-Whitney U needs this)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Runs of equal values: each gets the mean of the first and last rank it spans.
    starts = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]])
    run = np.cumsum(starts) - 1
    bounds = np.append(np.flatnonzero(starts), len(values))
    ranks = np.empty(len(values))
    ranks[order] = (bounds[run] + 1 + bounds[run + 1]) / 2
    return ranks


def best_threshold(y_true, scores) -> float:
    """The threshold in [0, 1] that maximises F1 on these scores.

    Candidates lie halfway between consecutive distinct scores, so the threshold generalises
    no worse to either side; among equal F1s the one nearest ``DEFAULT_THRESHOLD`` wins.
    Without positives or without negatives F1 says nothing: ``DEFAULT_THRESHOLD``.
    """
    y, s = _check_binary(y_true, scores)
    if y.all() or not y.any():
        return DEFAULT_THRESHOLD
    s = np.clip(s, 0.0, 1.0)
    distinct = np.unique(s)
    candidates = np.concatenate([[distinct[0] / 2], (distinct[:-1] + distinct[1:]) / 2, [(distinct[-1] + 1) / 2]])
    # Counts at every candidate at once: a candidate passes the scores above it.
    order = np.sort(s[y])
    negatives = np.sort(s[~y])
    tp = len(order) - np.searchsorted(order, candidates, side="left")
    fp = len(negatives) - np.searchsorted(negatives, candidates, side="left")
    fn = len(order) - tp
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    best_f1 = np.round(f1, 12).max()
    tied = candidates[np.round(f1, 12) == best_f1]
    return float(tied[np.argmin(np.abs(tied - DEFAULT_THRESHOLD))])


def binary_metrics(concept: str, y_true, scores, threshold: float) -> ConceptMetrics:
    """Precision, recall, F1 and ROC AUC of one concept's probabilities at ``threshold``.

    Raises:
        ValueError: mismatched or non-finite arrays, labels other than 0/1, threshold outside [0, 1].
    """
    tp, fp, fn, tn = count_outcomes(y_true, scores, threshold)
    precision, recall, f1 = precision_recall_f1(tp, fp, fn)
    return ConceptMetrics(concept, float(threshold), tp, fp, fn, tn, precision, recall, f1, roc_auc(y_true, scores))


def confusion_matrix(true_classes, predicted_classes, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts: row = true class, column = predicted class.

    Raises:
        ValueError: mismatched lengths or a class index outside [0, n_classes).
    """
    t = np.asarray(true_classes, dtype=np.int64)
    p = np.asarray(predicted_classes, dtype=np.int64)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError("true and predicted classes must be 1-d and of equal length")
    if n_classes < 1 or (len(t) and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= n_classes)):
        raise ValueError(f"class indices must lie in [0, {n_classes})")
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (t, p), 1)
    return matrix


def accuracy(true_classes, predicted_classes) -> float | None:
    """Fraction predicted right; None for no inputs."""
    t, p = np.asarray(true_classes), np.asarray(predicted_classes)
    if t.shape != p.shape:
        raise ValueError("true and predicted classes must have equal length")
    return float((t == p).mean()) if len(t) else None


def balanced_accuracy(true_classes, predicted_classes) -> float | None:
    """Mean recall over the classes present: a rare class counts as much as a common one."""
    t, p = np.asarray(true_classes), np.asarray(predicted_classes)
    if t.shape != p.shape:
        raise ValueError("true and predicted classes must have equal length")
    classes = np.unique(t)
    return float(np.mean([(p[t == c] == c).mean() for c in classes])) if len(classes) else None


def macro_f1(metrics: list[ConceptMetrics]) -> float | None:
    """Mean F1 over the concepts where F1 is defined."""
    values = [m.f1 for m in metrics if m.f1 is not None]
    return float(np.mean(values)) if values else None


def exclusive_passes(probabilities, thresholds) -> np.ndarray:
    """(n, C) which concepts match when concepts are exclusive: at most one per input, the most probable, if it reaches its threshold.

    Args:
        probabilities: (n, C) softmax probabilities; NaN for a concept without a head (never matches).
        thresholds: (C,) per-concept thresholds.
    """
    p = np.atleast_2d(np.asarray(probabilities, dtype=np.float64))
    filled = np.nan_to_num(p, nan=-1.0)
    passes = np.zeros(p.shape, bool)
    if p.size == 0:
        return passes
    best = np.argmax(filled, axis=1)
    rows = np.arange(len(p))
    passes[rows, best] = filled[rows, best] >= np.asarray(thresholds, dtype=np.float64)[best]
    return passes


NONE_LABEL = "(none)"


@dataclass(frozen=True)
class Evaluation:
    """How well one space's heads did, on cross-validation or held-out data.

    Attributes:
        space: the embedding space.
        method: ``"5-fold cross-validation"``, ``"leave-one-out"``, ``"held-out"`` or
            ``"too few examples to measure"`` (then nothing else is filled in).
        folds: number of folds (0 for held-out or unmeasured).
        inputs: labelled inputs the numbers come from.
        exclusive: accuracy applies (one concept per input) rather than macro F1.
        concepts: per concept, metrics at its threshold (exclusive concepts: an input counts for the
            most probable concept only, as prediction matches it).
        accuracy: exclusive concepts: share of inputs whose best concept is the labelled one.
        macro_f1: mean F1 over the concepts.
        labels, confusion: row = labelled concept, column = predicted concept; the last
            column, ``(none)``, counts inputs no concept matched. Only inputs with exactly one
            positive concept are counted.
        note: what a person should know about these numbers (capped rows, too few examples).
    """

    space: str
    method: str
    folds: int = 0
    inputs: int = 0
    exclusive: bool = False
    concepts: list[ConceptMetrics] = field(default_factory=list)
    accuracy: float | None = None
    macro_f1: float | None = None
    labels: list[str] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    note: str = ""

    @property
    def measured(self) -> bool:
        return bool(self.concepts)

    def concept(self, name: str) -> ConceptMetrics | None:
        return next((m for m in self.concepts if m.concept == name), None)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["concepts"] = [m.to_dict() for m in self.concepts]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Evaluation:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["concepts"] = [ConceptMetrics.from_dict(m) for m in data.get("concepts", [])]
        return cls(**fields)


def evaluate_probabilities(
    space: str,
    names: list[str],
    labels: np.ndarray,
    probabilities: np.ndarray,
    thresholds: np.ndarray,
    exclusive: bool,
    method: str,
    folds: int = 0,
    unknown: np.ndarray | None = None,
    note: str = "",
) -> Evaluation:
    """Every number of an ``Evaluation`` from labels and probabilities.

    Args:
        names: (C,) concept names.
        labels: (n, C) +1 / -1 / 0 (0: says nothing about that concept; left out of its metrics).
        probabilities: (n, C) in [0, 1]; NaN for a concept without a head (left out).
        thresholds: (C,) per-concept thresholds.
        unknown: (n,) inputs reported as "unknown": they match no concept, whatever their scores.
    """
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n, c = labels.shape
    if probabilities.shape != (n, c) or len(names) != c or np.shape(thresholds) != (c,):
        raise ValueError("names, labels, probabilities and thresholds must agree in shape")
    scored = ~np.isnan(probabilities).all(axis=0) if n else np.zeros(c, bool)
    unknown = np.zeros(n, bool) if unknown is None else np.asarray(unknown, bool)
    if exclusive:
        passes = exclusive_passes(probabilities, thresholds) & ~unknown[:, None]
    else:
        passes = (np.nan_to_num(probabilities, nan=-1.0) >= np.asarray(thresholds)[None, :]) & ~unknown[:, None]
    metrics = []
    for j in np.flatnonzero(scored):
        rows = (labels[:, j] != 0) & ~np.isnan(probabilities[:, j])
        if not rows.any():
            continue
        y, p = labels[rows, j] > 0, probabilities[rows, j]
        tp, fp, fn, tn = int((passes[rows, j] & y).sum()), int((passes[rows, j] & ~y).sum()), int((~passes[rows, j] & y).sum()), 0
        tn = int(rows.sum()) - tp - fp - fn
        precision, recall, f1 = precision_recall_f1(tp, fp, fn)
        metrics.append(ConceptMetrics(names[j], float(thresholds[j]), tp, fp, fn, tn, precision, recall, f1, roc_auc(y, p)))
    single = (labels > 0).sum(axis=1) == 1
    truth = np.argmax(labels[single] > 0, axis=1)
    masked = np.where(scored[None, :], np.nan_to_num(probabilities[single], nan=-1.0), -np.inf)
    if exclusive:
        predicted = np.argmax(masked, axis=1) if len(masked) else np.zeros(0, np.int64)
        predicted = np.where(unknown[single], c, predicted)
    else:
        candidates = np.where(passes[single], masked, -np.inf)
        predicted = np.where(passes[single].any(axis=1), np.argmax(candidates, axis=1) if len(candidates) else 0, c)
    matrix = confusion_matrix(truth, predicted, c + 1)[:c] if len(truth) else np.zeros((c, c + 1), np.int64)
    return Evaluation(
        space=space,
        method=method,
        folds=folds,
        inputs=int((labels != 0).any(axis=1).sum()),
        exclusive=exclusive,
        concepts=metrics,
        accuracy=accuracy(truth, predicted) if exclusive else None,
        macro_f1=macro_f1(metrics),
        labels=[*names, NONE_LABEL],
        confusion=matrix.tolist(),
        note=note,
    )


@dataclass(frozen=True)
class VerificationRates:
    """A verification figure of one concept (a person) at one threshold: false accepts and false rejects.

    Attributes:
        false_accepts, impostors: others' held-out inputs that passed this concept's threshold, of all others'.
        false_rejects, genuine: this concept's held-out inputs that did not pass (or were "unknown"), of all of them.
        far, frr: the two shares; ``None`` when there is nothing to count them on.
    """

    concept: str
    threshold: float
    false_accepts: int
    impostors: int
    false_rejects: int
    genuine: int

    def __post_init__(self) -> None:
        if not 0 <= self.false_accepts <= self.impostors or not 0 <= self.false_rejects <= self.genuine:
            raise ValueError("counts must lie between 0 and their totals")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], not {self.threshold}")

    @property
    def far(self) -> float | None:
        return self.false_accepts / self.impostors if self.impostors else None

    @property
    def frr(self) -> float | None:
        return self.false_rejects / self.genuine if self.genuine else None


def verification_rates(concept: str, y_true, scores, threshold: float, unknown=None) -> VerificationRates:
    """False-accept and false-reject rates of a concept at ``threshold``, from held-out scores.

    An input is accepted when its score is at or above the threshold and it was not "unknown"
    (less similar to every labelled input than the cut-off): an unknown impostor is no false accept,
    an unknown genuine input is a false reject.

    Args:
        y_true: (n,) whether each held-out input is this concept's (False: someone else's).
        scores: (n,) its probability for this concept.
        unknown: (n,) whether it was called unknown; None: none was.

    Raises:
        ValueError: mismatched or non-binary inputs, or a threshold outside [0, 1].
    """
    y, s = _check_binary(y_true, scores)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], not {threshold}")
    unknown = np.zeros(len(y), bool) if unknown is None else np.asarray(unknown, bool)
    if unknown.shape != y.shape:
        raise ValueError(f"unknown must have one flag per input: {unknown.shape} for {y.shape}")
    accepted = (s >= threshold) & ~unknown
    return VerificationRates(
        concept, float(threshold), int((accepted & ~y).sum()), int((~y).sum()), int((~accepted & y).sum()), int(y.sum())
    )
