"""A version's report shaped for people: per-concept quality rows and confusion-chart cells.

Training stores its cross-validated ``Evaluation`` per space, the head choices and the
thresholds as JSON in the version's report (``training._report``). The functions here turn that
JSON into rows a page can show as they are, so the page holds no branches of its own: which
concepts were measured, which head won and by how much, and which counts go in which cell.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.learning.heads import NO_HEAD
from core.learning.metrics import NONE_LABEL, Evaluation
from core.learning.selection import NOT_EVALUATED, TOO_FEW

# What each outcome of an independent concept is called on the page, in chart order.
OUTCOMES = ("found", "wrongly matched", "missed", "rightly left out")
_NOT_MEASURED = "not measured: train again to measure it"
_NOT_CROSS_VALIDATED = "not measured: trained without cross-validation"


@dataclass(frozen=True)
class QualityRow:
    """How one concept did in one space's cross-validation, and why it got its head.

    Attributes:
        head: the head kind training chose (``heads.LINEAR``, ...).
        chosen: why, in words ("beat prototype by 0.012 ROC AUC"); empty when nothing competed.
        precision, recall, f1, roc_auc: cross-validated at ``threshold``; None when not measurable.
        examples, negatives: the labelled inputs behind the numbers.
        note: empty when measured, else why not ("too few examples to measure").
    """

    concept: str
    space: str
    head: str
    chosen: str
    precision: float | None
    recall: float | None
    f1: float | None
    roc_auc: float | None
    examples: int
    negatives: int
    threshold: float | None
    note: str = ""

    @property
    def measured(self) -> bool:
        return not self.note


@dataclass(frozen=True)
class ChartCell:
    """One cell of a confusion chart: ``count`` inputs at (``row``, ``column``); ``correct`` when they were right."""

    row: str
    column: str
    count: int
    correct: bool

    @property
    def shade(self) -> str:
        """How to draw it: ``right`` (green), ``mistake`` (orange) or ``empty`` (a mistake nobody made: neutral)."""
        return "right" if self.correct else "mistake" if self.count else "empty"


@dataclass(frozen=True)
class ConfusionChart:
    """A chart's cells with its axis titles and order, for one space.

    ``rows`` and ``columns`` give the order; ``cells`` hold every (row, column) pair, zeros too.
    """

    space: str
    row_title: str
    column_title: str
    rows: list[str]
    columns: list[str]
    cells: list[ChartCell]


def read_evaluations(report: dict) -> list[Evaluation]:
    """The per-space cross-validated evaluations a report holds (none for an old or empty report).

    Raises:
        ValueError: the report's ``metrics`` field is not a list of evaluations.
    """
    metrics = report.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, dict) for m in metrics):
        raise ValueError("the report's metrics must be a list of evaluations")
    try:
        return [Evaluation.from_dict(m) for m in metrics]
    except (KeyError, TypeError) as e:
        raise ValueError(f"the report holds a damaged evaluation: {e}") from e


def describe_choice(choice: dict | None) -> str:
    """Why a head was chosen, in words, from one ``HeadChoice.to_dict()`` (empty when nothing competed)."""
    if not choice or choice.get("margin") is None or not choice.get("scores"):
        return ""
    head = choice.get("head", "")
    others = {k: v for k, v in choice["scores"].items() if v is not None and k.split("+")[0] != head}
    if not others:
        return ""
    runner_up = max(others, key=lambda k: others[k]).replace("-", " ").replace("+", " with ")
    margin, metric = float(choice["margin"]), choice.get("metric") or "score"
    if margin > 0:
        return f"beat {runner_up} by {margin:.3g} {metric}"
    if margin == 0:
        return f"the default; tied with {runner_up} on {metric}"
    return f"the default; {runner_up} only {-margin:.3g} {metric} better"


def build_quality_rows(report: dict) -> list[QualityRow]:
    """One row per trained concept and space, in the report's order, with its cross-validated figures.

    A concept whose space could not be cross-validated, or that the evaluation left out, gets
    a row with no figures and a note saying why.

    Raises:
        ValueError: the report's ``concepts`` or ``metrics`` field is damaged.
    """
    plans = report.get("concepts", [])
    if not isinstance(plans, list) or not all(isinstance(p, dict) for p in plans):
        raise ValueError("the report's concepts must be a list of plans")
    evaluations = {e.space: e for e in read_evaluations(report)}
    choices = report.get("choices", {}) if isinstance(report.get("choices"), dict) else {}
    rows = []
    for plan in plans:
        if plan.get("head", NO_HEAD) == NO_HEAD:
            continue
        name, space = str(plan.get("concept", "")), str(plan.get("space", ""))
        evaluation = evaluations.get(space)
        metrics = evaluation.concept(name) if evaluation else None
        choice = next((c for c in choices.get(space, []) if isinstance(c, dict) and c.get("concept") == name), None)
        if metrics:
            note = ""
        elif evaluation is None:  # a version trained before evaluation existed
            note = _NOT_MEASURED
        else:
            note = _NOT_CROSS_VALIDATED if evaluation.method == NOT_EVALUATED else TOO_FEW
        rows.append(
            QualityRow(
                concept=name,
                space=space,
                head=str(plan["head"]),
                chosen=describe_choice(choice),
                precision=metrics.precision if metrics else None,
                recall=metrics.recall if metrics else None,
                f1=metrics.f1 if metrics else None,
                roc_auc=metrics.roc_auc if metrics else None,
                examples=int(plan.get("positives", 0)),
                negatives=int(plan.get("negatives", 0)),
                threshold=metrics.threshold if metrics else None,
                note=note,
            )
        )
    return rows


def build_confusion_chart(evaluation: Evaluation) -> ConfusionChart | None:
    """The cells of one space's confusion chart; None when nothing was measured.

    Exclusive concepts: labelled concept (rows) against predicted concept (columns), keeping the
    concepts that were measured or counted and the "(none)" column only when inputs landed there.
    Independent concepts: per concept, how many inputs were found, wrongly matched, missed and
    rightly left out at its threshold.
    """
    if not evaluation.measured:
        return None
    if not evaluation.exclusive:
        rows = [m.concept for m in evaluation.concepts]
        right = (True, False, False, True)
        cells = [
            ChartCell(m.concept, outcome, count, ok)
            for m in evaluation.concepts
            for outcome, count, ok in zip(OUTCOMES, (m.tp, m.fp, m.fn, m.tn), right)
        ]
        return ConfusionChart(evaluation.space, "concept", "outcome", rows, list(OUTCOMES), cells)
    labels, matrix = evaluation.labels, evaluation.confusion
    if len(matrix) != len(labels) - 1 or any(len(r) != len(labels) for r in matrix):
        raise ValueError(f"the confusion matrix of {evaluation.space} does not match its {len(labels)} labels")
    measured = {m.concept for m in evaluation.concepts}
    keep_rows = [i for i, r in enumerate(matrix) if labels[i] in measured or any(r)]
    keep_columns = [
        j for j, name in enumerate(labels) if any(matrix[i][j] for i in range(len(matrix))) or (name in measured and name != NONE_LABEL)
    ]
    if not keep_rows:
        return None
    cells = [ChartCell(labels[i], labels[j], int(matrix[i][j]), i == j) for i in keep_rows for j in keep_columns]
    rows, columns = [labels[i] for i in keep_rows], [labels[j] for j in keep_columns]
    return ConfusionChart(evaluation.space, "labelled", "predicted", rows, columns, cells)
