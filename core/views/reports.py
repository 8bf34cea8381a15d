"""A version's report shaped for people: per-concept quality rows and confusion-chart cells.

Training stores its cross-validated ``Evaluation`` per space, the head choices and the
thresholds as JSON in the version's report (``training._report``). The functions here turn that
JSON into rows a page can show as they are, so the page holds no branches of its own: which
concepts were measured, which head won and by how much, and which counts go in which cell.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConceptlabError
from core.evaluate import read_held_out_scores
from core.learning.heads import ENSEMBLE, LINEAR, NEAREST, NO_HEAD, PROTOTYPE, TIP_ADAPTER, ZERO_SHOT
from core.learning.metrics import NONE_LABEL, Evaluation, VerificationRates, verification_rates
from core.learning.selection import NOT_EVALUATED, TOO_FEW
from core.learning.training import ConceptPlan

# What each outcome of an independent concept is called on the page, in chart order.
OUTCOMES = ("found", "wrongly matched", "missed", "rightly left out")
_NOT_MEASURED = "not measured: train again to measure it"
_NOT_CROSS_VALIDATED = "not measured: trained without cross-validation"
# One name per head kind, the same in what training will do, what it kept and what Try says.
HEAD_WORDS = {
    ZERO_SHOT: "zero-shot",
    NEAREST: "nearest neighbour",
    PROTOTYPE: "prototype",
    LINEAR: "linear",
    TIP_ADAPTER: "example cache",
    ENSEMBLE: "linear and nearest neighbour",
    NO_HEAD: "not trained yet",
}


def name_head(kind: str | None) -> str:
    """A head kind as people read it (``nearest-neighbour``: "nearest neighbour")."""
    return HEAD_WORDS.get(kind or "", (kind or "").replace("-", " "))


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def describe_plan(plan: ConceptPlan) -> str:
    """What training will do for a concept, in the head names its result uses: "tries nearest neighbour, ...; keeps the best"."""
    if plan.tries:
        return f"tries {_join([name_head(k) for k in plan.tries])}; keeps the best"
    return name_head(plan.head)


def count_examples(yes: int, no: int, others: int = 0) -> str:
    """Examples in the Label page's words, "15 yes · 3 no", and the inputs of other concepts that also teach "no"."""
    words = f"{yes} yes · {no} no"
    return words + (f" · {others} of other concepts" if others else "")


def describe_plan_examples(plan: ConceptPlan) -> str:
    """A plan's examples as ``count_examples`` says them; "no" is what was labelled "not" the concept."""
    return count_examples(plan.positives, plan.labelled_negatives, plan.negatives - plan.labelled_negatives)


@dataclass(frozen=True)
class QualityRow:
    """How one concept did in one space's cross-validation, and why it got its head.

    Attributes:
        head: the head kind training chose (``heads.LINEAR``, ...).
        chosen: why, in words ("beat prototype by 0.012 ROC AUC"); empty when nothing competed.
        precision, recall, f1, roc_auc: cross-validated at ``threshold``; None when not measurable.
        examples, negatives: the labelled inputs behind the numbers.
        note: empty when measured, else why not ("too few examples to measure").
        right, judged: of the labelled inputs it was tried on (each by a model trained without it),
            how many it got right at ``threshold``; 0 when not measured.
        found, wrongly_matched: its examples it found; inputs not labelled as it that it matched.
        tried: the head kinds training compared for it (empty: it got its head untried).
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
    right: int = 0
    judged: int = 0
    found: int = 0
    wrongly_matched: int = 0
    tried: tuple[str, ...] = ()

    @property
    def measured(self) -> bool:
        return not self.note

    @property
    def kept(self) -> str:
        """The head it kept, as ``describe_plan`` named it before training: "linear", or "linear (the best of 5 tried)"."""
        return name_head(self.head) + (f" (the best of {len(self.tried)} tried)" if len(self.tried) > 1 else "")

    @property
    def summary(self) -> str:
        """How it did, in plain words: "right on 7 of 8 labelled inputs it had not seen: found 4 of its 4 examples, 1 wrongly matched"."""
        if not self.measured:
            return self.note[:1].upper() + self.note[1:]
        return (
            f"Right on {self.right} of {self.judged} labelled inputs it had not seen: "
            f"found {self.found} of its {self.examples} examples, {self.wrongly_matched} wrongly matched"
        )


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
    best = max(others, key=lambda k: others[k])
    runner_up = " with ".join([name_head(best.split("+")[0]), *best.split("+")[1:]])  # prototype+unlabelled: "prototype with unlabelled"
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
                right=metrics.tp + metrics.tn if metrics else 0,
                judged=metrics.tp + metrics.fp + metrics.fn + metrics.tn if metrics else 0,
                found=metrics.tp if metrics else 0,
                wrongly_matched=metrics.fp if metrics else 0,
                tried=tuple(plan.get("tries") or ()),
            )
        )
    return rows


def build_verification_rows(
    report: dict, in_force: dict[str, float] | None = None, version: int = 0
) -> list[tuple[str, VerificationRates]]:
    """(space, false-accept and false-reject rates) per measured concept, at the threshold in force.

    For a project of faces, each concept is a person: its false-accept rate is the share of others'
    held-out faces that pass its threshold, its false-reject rate the share of its own that do not,
    from the out-of-fold scores training stored (see ``core.learning.metrics.verification_rates``).

    Args:
        in_force: concept name -> threshold in force where one was saved; training's otherwise.

    Raises:
        ValueError: the report is damaged.
    """
    in_force = in_force or {}
    rows = []
    for row in build_quality_rows(report):
        if not row.measured or row.threshold is None:
            continue
        try:
            _, y, p, unknown = read_held_out_scores(version, report, row.space, row.concept)
        except ConceptlabError:  # an older version kept no scores: no rates to show
            continue
        threshold = float(in_force.get(row.concept, row.threshold))
        rows.append((row.space, verification_rates(row.concept, y, p, threshold, unknown)))
    return rows


def describe_rate(count: int, total: int) -> str:
    """A rate with what it was counted on: "12% (1 of 8)"; "–" when there is nothing to count."""
    return f"{count / total:.0%} ({count} of {total})" if total else "–"


def describe_overall(evaluation: Evaluation) -> str:
    """One space's result in plain words (exclusive concepts: how many inputs got their concept); empty otherwise."""
    if not evaluation.measured or not evaluation.exclusive or not evaluation.confusion:
        return ""
    right = sum(row[i] for i, row in enumerate(evaluation.confusion) if i < len(row))
    judged = sum(map(sum, evaluation.confusion))
    return f"The right concept for {right} of {judged} labelled inputs it had not seen."


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
