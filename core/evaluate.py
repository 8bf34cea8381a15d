"""Evaluation of a model version: on held-out data, and from what training measured.

``evaluate_inputs`` scores labelled inputs the version was not trained on (nothing is
stored) and returns the same ``Evaluation`` as training's cross-validation. The other
functions read a version's report: its cross-validated metrics, precision and recall at any
threshold from the stored out-of-fold scores (for a threshold slider), and the inputs
cross-validation got wrong at that threshold (for relabelling them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from core.errors import ConceptError, InputError, ModelVersionError
from core.ingestion import EmbeddedInput, embed_inputs
from core.inputs import RawInput, VideoConfig
from core.learning.heads import DEFAULT_THRESHOLD
from core.learning.metrics import ConceptMetrics, Evaluation, VerificationRates, binary_metrics, evaluate_probabilities, verification_rates
from core.learning.models import Model, load_model, resolve_version, thresholds_for
from core.names import make_name_key
from core.storage.inputs import InputRecord
from core.storage.projects import Project

log = logging.getLogger(__name__)

HELD_OUT = "held-out"
_BATCH = 32


@dataclass(frozen=True)
class HeldOutResult:
    """What ``evaluate_inputs`` measured, per space, and the inputs it could not use."""

    version: int
    evaluations: list[Evaluation]
    inputs: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[InputError] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "inputs": self.inputs,
            "evaluations": [e.to_dict() for e in self.evaluations],
            "skipped": [{"input": name, "reason": reason} for name, reason in self.skipped],
            "failed": [{"input": e.name, "error": e.reason} for e in self.failed],
        }


def evaluate_inputs(
    project: Project,
    items: Iterable[RawInput | InputError],
    version: int | None = None,
    video: VideoConfig = VideoConfig(),
) -> HeldOutResult:
    """Score labelled inputs with a model version and measure it; nothing is stored.

    Each input's concept comes from ``RawInput.concept`` (its folder with
    ``labels_from_folders``, or a CSV label column); it counts as a positive for that concept
    and a negative for every other concept of the version.

    Raises:
        ModelVersionError: no trained model, or no such version.
        ConceptError: no input carries a concept of this version.
    """
    model = load_model(project, version)
    by_name = {make_name_key(name): cid for cid, name in model.concept_names.items()}
    embedder = project.embedder()
    skipped: list[tuple[str, str]] = []
    failed: list[InputError] = []
    rows: dict[str, tuple[list[np.ndarray], list[int]]] = {}
    batch: list[RawInput] = []

    def flush() -> None:
        for result in embed_inputs(embedder, batch, video):
            if isinstance(result, InputError):
                failed.append(result)
                continue
            failed.extend(result.refused)
            for part in result.parts:  # each face of a photo, as ingest labels them
                _collect(part, by_name, rows, skipped)
        batch.clear()

    for item in items:
        if isinstance(item, InputError):
            failed.append(item)
            continue
        if not item.concept:
            skipped.append((item.name, "no concept given (use --labels-from-folders or --label-column)"))
            continue
        batch.append(item)
        if len(batch) >= _BATCH:
            flush()
    flush()
    if not rows:
        raise ConceptError(f"none of these inputs is labelled with a concept of model version {model.version}")
    evaluations = [_evaluate_space(project, model, space, vectors, concepts) for space, (vectors, concepts) in sorted(rows.items())]
    inputs = sum(len(c) for _, c in rows.values())
    log.info("evaluated version %d of %s on %d inputs", model.version, project.name, inputs)
    return HeldOutResult(model.version, evaluations, inputs, skipped, failed)


def _collect(result: EmbeddedInput, by_name: dict[str, int], rows: dict, skipped: list) -> None:
    concept = make_name_key(result.raw.concept or "")
    if concept not in by_name:
        skipped.append((result.raw.name, f"'{result.raw.concept}' is not a concept of this model version"))
        return
    vectors, concepts = rows.setdefault(result.space, ([], []))
    vectors.append(result.vector)
    concepts.append(by_name[concept])


def _evaluate_space(project: Project, model: Model, space: str, vectors: list[np.ndarray], concepts: list[int]) -> Evaluation:
    heads = model.spaces.get(space)
    if heads is None:
        return Evaluation(space, HELD_OUT, inputs=len(concepts), exclusive=model.exclusive, note="the model has no heads for these inputs")
    x = np.stack(vectors).astype(np.float32)
    column = {int(cid): j for j, cid in enumerate(heads.concept_ids)}
    labels = np.full((len(x), len(column)), -1, np.int8)
    for i, cid in enumerate(concepts):
        if cid in column:
            labels[i, column[cid]] = 1
    names = [model.concept_names.get(int(cid), str(cid)) for cid in heads.concept_ids]
    unknown, _ = heads.unknown(x)
    return evaluate_probabilities(
        space, names, labels, heads.score(x), thresholds_for(project, model, space), model.exclusive, HELD_OUT, unknown=unknown
    )


def _report(project: Project, version: int | None) -> tuple[int, dict]:
    """(version number, its report): the active version by default, read alone.

    A threshold slider reads the report on every move: loading the model (its examples can
    weigh a hundred megabytes) or every version's report (each with its out-of-fold scores)
    just to find this one would make each move slow.
    """
    number = resolve_version(project, version)
    return number, project.store.get_version(number)[4]


def get_evaluations(project: Project, version: int | None = None) -> list[Evaluation]:
    """The cross-validated evaluation training stored for a version (the active one by default), per space."""
    _, report = _report(project, version)
    return [Evaluation.from_dict(e) for e in report.get("metrics", [])]


def _scores(number: int, report: dict, space: str, concept: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input ids, labelled positive, out-of-fold probability) of one concept, from a version's report."""
    ids, y, p, _ = read_held_out_scores(number, report, space, concept)
    return ids, y, p


def read_held_out_scores(number: int, report: dict, space: str, concept: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(input ids, labelled positive, out-of-fold probability, called "unknown") of one concept, from version ``number``'s report.

    Versions that did not keep which held-out inputs were unknown give all False.

    Raises:
        ModelVersionError: the report kept no scores for the space. ConceptError: none for the concept.
    """
    stored = report.get("scores", {}).get(space)
    if not stored:
        raise ModelVersionError(f"model version {number} kept no cross-validated scores for {space}")
    names = [make_name_key(n) for n in stored["names"]]
    if make_name_key(concept) not in names:
        raise ConceptError(f"model version {number} has no measured concept '{concept}' in {space}")
    j = names.index(make_name_key(concept))
    ids = np.asarray(stored["ids"], np.int64)
    labels = np.asarray(stored["labels"], np.int64).reshape(len(ids), -1)[:, j]
    probabilities = np.array([np.nan if row[j] is None else row[j] for row in stored["probabilities"]], np.float64)
    keep = (labels != 0) & ~np.isnan(probabilities)
    flags = stored.get("unknown") or []
    unknown = np.asarray(flags, bool) if len(flags) == len(ids) else np.zeros(len(ids), bool)
    return ids[keep], labels[keep] > 0, probabilities[keep], unknown[keep]


def _taken_for(report: dict, space: str, concept: str, input_ids: np.ndarray) -> dict[int, str]:
    """Per input id: the concept other than ``concept`` it scored highest on in cross-validation, where that passed its threshold."""
    stored = report.get("scores", {}).get(space) or {}
    names, wanted = list(stored.get("names", [])), {int(i) for i in input_ids}
    thresholds = report.get("thresholds", {}).get(space, {})
    taken = {}
    for input_id, row in zip(stored.get("ids", []), stored.get("probabilities", [])):
        if int(input_id) not in wanted:
            continue
        others = [(v, n) for n, v in zip(names, row) if v is not None and make_name_key(n) != make_name_key(concept)]
        passing = [(v, n) for v, n in others if v >= float(thresholds.get(n, DEFAULT_THRESHOLD))]
        if passing:
            taken[int(input_id)] = max(passing)[1]
    return taken


def metrics_at_threshold(project: Project, space: str, concept: str, threshold: float, version: int | None = None) -> ConceptMetrics:
    """Cross-validated precision, recall and F1 of a concept if its threshold were ``threshold``.

    Raises:
        ValueError: threshold outside [0, 1]. ModelVersionError / ConceptError: nothing stored for it.
    """
    _, y, p = _scores(*_report(project, version), space, concept)
    return binary_metrics(concept, y, p, threshold)


def verification_at_threshold(
    project: Project, space: str, concept: str, threshold: float, version: int | None = None
) -> VerificationRates:
    """Cross-validated false-accept and false-reject rates of a concept (a person) if its threshold were ``threshold``.

    From the out-of-fold scores training stored: others' held-out inputs that would pass, and this
    concept's that would not (an input training's cut-off called "unknown" never passes).

    Raises:
        ValueError: threshold outside [0, 1]. ModelVersionError / ConceptError: nothing stored for it.
    """
    _, y, p, unknown = read_held_out_scores(*_report(project, version), space, concept)
    return verification_rates(concept, y, p, threshold, unknown)


def _split(y: np.ndarray, p: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of (false positives, false negatives) at ``threshold``, worst first."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], not {threshold}")
    false_pos = np.flatnonzero(~y & (p >= threshold))
    false_neg = np.flatnonzero(y & (p < threshold))
    return false_pos[np.argsort(-p[false_pos], kind="stable")], false_neg[np.argsort(p[false_neg], kind="stable")]


def misclassified(project: Project, space: str, concept: str, threshold: float, version: int | None = None) -> tuple[list[int], list[int]]:
    """(false positives, false negatives) of a concept in cross-validation at ``threshold``: input ids, worst first."""
    ids, y, p = _scores(*_report(project, version), space, concept)
    false_pos, false_neg = _split(y, p, threshold)
    return [int(ids[i]) for i in false_pos], [int(ids[i]) for i in false_neg]


FALSE_POSITIVE, FALSE_NEGATIVE = "false positive", "false negative"


@dataclass(frozen=True)
class Mistake:
    """A labelled input cross-validation got wrong for a concept, with the probability it was given."""

    record: InputRecord
    kind: str  # FALSE_POSITIVE or FALSE_NEGATIVE
    score: float
    instead: str | None = None  # a miss: the other concept the model took it for (it passed that one's threshold), if any


@dataclass(frozen=True)
class Mistakes:
    """A concept's mistakes at a threshold: the first few of each kind, and how many there are.

    Attributes:
        false_positives: inputs labelled "not" the concept that scored at or above the threshold.
        false_negatives: inputs labelled as the concept that scored below it.
        total_false_positives, total_false_negatives: all of them, beyond the ones listed.
        metrics: precision, recall, F1 and counts at the same threshold, from the same scores.
        note: why none can be listed (an imported version's inputs live in another project).
    """

    false_positives: list[Mistake]
    false_negatives: list[Mistake]
    total_false_positives: int
    total_false_negatives: int
    metrics: ConceptMetrics
    note: str = ""
    rates: VerificationRates | None = None  # false accepts and rejects at the same threshold, from the same scores


def list_mistakes(project: Project, space: str, concept: str, threshold: float, version: int | None = None, limit: int = 8) -> Mistakes:
    """A concept's false positives and false negatives in cross-validation at ``threshold``, worst first.

    At most ``limit`` of each kind are listed with their stored input; inputs deleted since
    training are left out. An imported version's scores refer to the inputs of the project it
    was trained in, so none are listed and ``note`` says why.

    Raises:
        ValueError: threshold outside [0, 1] or a negative limit.
        ModelVersionError / ConceptError: nothing stored for this concept.
    """
    if limit < 0:
        raise ValueError(f"limit must not be negative, not {limit}")
    number, report = _report(project, version)
    ids, y, p, unknown = read_held_out_scores(number, report, space, concept)
    false_pos, false_neg = _split(y, p, threshold)
    # The page shows these figures beside the mistakes: one read of the report serves both.
    metrics = binary_metrics(concept, y, p, threshold)
    rates = verification_rates(concept, y, p, threshold, unknown)
    if "imported" in report:
        note = f"model version {number} was imported: the inputs it was measured on belong to another project"
        return Mistakes([], [], len(false_pos), len(false_neg), metrics, note, rates)

    taken_for = _taken_for(report, space, concept, ids[false_neg])

    def listed(rows: np.ndarray, kind: str) -> list[Mistake]:
        found = []
        for i in rows:
            if len(found) >= limit:
                break
            record = project.store.get_input(int(ids[i]))
            if record is not None:
                found.append(Mistake(record, kind, float(p[i]), taken_for.get(int(ids[i])) if kind == FALSE_NEGATIVE else None))
        return found

    return Mistakes(
        listed(false_pos, FALSE_POSITIVE), listed(false_neg, FALSE_NEGATIVE), len(false_pos), len(false_neg), metrics, "", rates
    )
