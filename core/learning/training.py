"""Training: turn a project's labels into a new model version.

Per embedding space, every concept's head is chosen by cross-validation among the kinds of
``heads.py`` (``selection.py``), calibrated and given a threshold; the cross-validated
``Evaluation`` goes into the version's report. A version is written to its own file first
(``models.py``) and registered in the database after, so a process killed mid-training leaves no
half-made version.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from core.access import Action, require
from core.errors import TrainingError
from core.learning.candidates import SpaceData, default_heads
from core.learning.choice import HeadChoice
from core.learning.heads import (
    LINEAR,
    NO_HEAD,
    HeadConfig,
    ProgressCallback,
)
from core.learning.metrics import Evaluation
from core.learning.models import MODEL_FORMAT, carry_threshold_overrides, make_head_arrays, save_version_file
from core.learning.selection import SelectionConfig, SpaceFit, fit_space, plan_comparisons
from core.storage.projects import Project

log = logging.getLogger(__name__)

MAX_MEMORY = 50_000
BACKGROUND_SAMPLE = 2000
# Out-of-fold scores kept in the report (for a threshold slider): at most this many inputs per space.
REPORT_SCORES = 2000
_BACKGROUND_PROMPTS = ["a photo.", "an image.", "a picture of something.", "some text."]


@dataclass(frozen=True)
class ConceptPlan:
    """What training will do (or did) for one concept in one space, and the counts behind it.

    Attributes:
        head: the head it gets when nothing is compared (before training), the head it kept (after).
        positives: inputs labelled as the concept ("yes").
        negatives: inputs it learns "no" from: those labelled "not" the concept and, unlabelled
            for it, those labelled as another concept.
        labelled_negatives: of those, the ones labelled "not" the concept ("no").
        tries: the head kinds training compares for it and keeps the best of (empty: it gets ``head``).
    """

    concept: str
    concept_id: int
    space: str
    head: str
    positives: int
    negatives: int
    hint: str = ""
    labelled_negatives: int = 0
    tries: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainResult:
    """A trained model version and what each concept got.

    Attributes:
        concepts: per concept and space, the head it got and the counts behind it.
        evaluations: per space, how the chosen heads did in cross-validation.
        choices: per concept and space, which head won cross-validation and by how much.
    """

    version: int
    seconds: float
    concepts: list[ConceptPlan]
    evaluations: list[Evaluation] = field(default_factory=list)
    choices: list[HeadChoice] = field(default_factory=list)

    def evaluation(self, space: str) -> Evaluation | None:
        return next((e for e in self.evaluations if e.space == space), None)


def _labelled_matrix(
    project: Project, space: str, concept_ids: list[int], space_ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(input ids (m,) sorted, labels (m, C) of +1/-1/0) for the inputs labelled in ``space``.

    ``space_ids``: the ids of every input in ``space`` when the caller has them (saves a query).
    """
    annotations = np.array(project.store.load_annotations(), dtype=np.int64).reshape(-1, 3)
    annotated = np.unique(annotations[:, 0])
    if space_ids is None:
        spaces = project.store.embedding_spaces(annotated.tolist())
        space_ids = np.array([i for i, s in spaces.items() if s == space], dtype=np.int64)
    rows = annotated[np.isin(annotated, space_ids)]
    order = np.argsort(concept_ids)
    sorted_concepts = np.asarray(concept_ids, dtype=np.int64)[order]
    labels = np.zeros((len(rows), len(concept_ids)), dtype=np.int8)
    if len(rows) and len(sorted_concepts):
        r = np.searchsorted(rows, annotations[:, 0]).clip(max=len(rows) - 1)
        c = np.searchsorted(sorted_concepts, annotations[:, 1]).clip(max=len(sorted_concepts) - 1)
        keep = (rows[r] == annotations[:, 0]) & (sorted_concepts[c] == annotations[:, 1])
        labels[r[keep], order[c[keep]]] = annotations[keep, 2]
    return rows, labels


def _with_implicit_negatives(labels: np.ndarray) -> np.ndarray:
    """An input positive for another concept and unlabelled for this one counts as its negative."""
    positive_elsewhere = (labels > 0).any(axis=1, keepdims=True)
    return np.where((labels == 0) & positive_elsewhere, -1, labels).astype(np.int8)


def _plan_space(
    project: Project,
    space: str,
    zero_shot: bool,
    concepts: list[tuple[int, str]],
    labels: np.ndarray,
    config: HeadConfig,
    selection: SelectionConfig = SelectionConfig(),
) -> list[ConceptPlan]:
    full = _with_implicit_negatives(labels)
    n_pos = (full > 0).sum(axis=0)
    n_neg = (full < 0).sum(axis=0)
    said_no = (labels < 0).sum(axis=0)
    heads = default_heads(n_pos, n_neg, project.exclusive, zero_shot, config.min_linear_positives)
    tries = plan_comparisons(full, project.exclusive, zero_shot, config, selection)
    plans = []
    for j, (cid, name) in enumerate(concepts):
        pos, neg, head = int(n_pos[j]), int(n_neg[j]), heads[j]
        need = config.min_linear_positives - pos
        if pos == 0:
            hint = "no examples yet: add positives to train it" if head == NO_HEAD else "works from its name; add examples to improve it"
        elif head == LINEAR:
            hint = ""
        elif need > 0:
            hint = f"add {need} more examples for a linear head"
        else:
            hint = "add more examples" if project.exclusive else "add negatives (or another concept) for a linear head"
        plans.append(ConceptPlan(name, cid, space, head, pos, neg, hint, int(said_no[j]), tries[j]))
    return plans


def _training_spaces(project: Project) -> tuple[list[str], bool]:
    """The spaces to train and whether they are zero-shot, from the spec alone: no model loads for it."""
    image_space, text_space = project.spaces
    zero_shot = image_space == text_space
    return ([image_space] if zero_shot else [image_space, text_space]), zero_shot


def plan_training(project: Project, config: HeadConfig = HeadConfig(), selection: SelectionConfig = SelectionConfig()) -> list[ConceptPlan]:
    """Per concept and space: counts, the heads training will compare and the one it gets untried (nothing is trained)."""
    concepts = project.store.list_concepts()
    spaces, zero_shot = _training_spaces(project)
    plans = []
    for space in spaces:
        _, labels = _labelled_matrix(project, space, [c for c, _ in concepts])
        if len(labels) or zero_shot:  # a space nobody labelled anything in has nothing to say
            plans += _plan_space(project, space, zero_shot, concepts, labels, config, selection)
    return plans


def train(
    project: Project,
    config: HeadConfig = HeadConfig(),
    progress: ProgressCallback | None = None,
    selection: SelectionConfig = SelectionConfig(),
) -> TrainResult:
    """Train a new model version from the project's labels and make it the active one.

    Each space's heads are chosen, calibrated and thresholded by cross-validation (capped at
    ``selection.max_rows`` labelled inputs per space, so a few thousand train in seconds).

    Raises:
        TrainingError: no concepts, or nothing any head could be built from.
    """
    require(project, Action.TRAIN)
    started = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    concepts = project.store.list_concepts()
    if not concepts:
        raise TrainingError(f"project '{project.name}' has no concepts yet: create one and label a few inputs")
    spaces, zero_shot = _training_spaces(project)
    # Only zero-shot heads need the model (its text tower embeds the concept names); the rest train on stored vectors.
    embedder = project.embedder() if zero_shot else None
    arrays: dict[str, np.ndarray] = {}
    plans: list[ConceptPlan] = []
    fits: dict[str, SpaceFit] = {}
    for s, space in enumerate(spaces):
        # Every input of the space at once: the labelled ones train, a sample of the rest is the background.
        space_ids, space_vectors = project.store.load_embeddings(space)
        ids, labels = _labelled_matrix(project, space, [c for c, _ in concepts], space_ids)
        space_plans = _plan_space(project, space, zero_shot, concepts, labels, config, selection)
        if all(p.head == NO_HEAD for p in space_plans):
            # Listed only where something is labelled: a photo project's text space stays out of the result.
            plans += space_plans if len(ids) else []
            continue

        def space_progress(fraction: float, message: str, s: int = s, space: str = space) -> None:
            report((s + fraction) / len(spaces), f"{space}: {message}")

        stored = (space_ids, space_vectors)
        data = _space_data(project, space, concepts, ids, labels, space_plans, config, embedder, stored)
        fit = fit_space(data, config, selection, space_progress)
        fits[space] = fit
        plans += [replace(p, head=kind) for p, kind in zip(space_plans, fit.heads.kinds)]
        arrays.update({f"{space}/{k}": v for k, v in make_head_arrays(fit.heads).items()})
    if not arrays:
        raise TrainingError(f"project '{project.name}' has no labelled examples yet: label a few inputs for a concept")
    seconds = time.perf_counter() - started
    manifest = {
        "format": MODEL_FORMAT,
        "embedder": project.embedder_spec,
        "exclusive": project.exclusive,
        "spaces": [s for s in spaces if f"{s}/concept_ids" in arrays],
        "concepts": {str(c): n for c, n in concepts},
        "kinds": {s: [p.head for p in plans if p.space == s] for s in spaces if f"{s}/concept_ids" in arrays},
    }
    file = save_version_file(project.root, manifest, arrays)
    evaluations = [fit.evaluation for fit in fits.values()]
    choices = [c for fit in fits.values() for c in fit.choices]
    previous = project.store.get_meta("active_version")
    version = project.store.add_version(file, seconds, _report(plans, config, selection, fits))
    carried = carry_threshold_overrides(project, int(previous) if previous else None, version, (c for c, _ in concepts))
    if carried:
        log.info("version %d keeps %d threshold(s) set by hand on version %s", version, len(carried), previous)
    report(1.0, f"saved as version {version}")
    log.info("trained version %d of %s in %.2fs", version, project.name, seconds)
    return TrainResult(version, seconds, plans, evaluations, choices)


def _report(plans: list[ConceptPlan], config: HeadConfig, selection: SelectionConfig, fits: dict[str, SpaceFit]) -> dict:
    """The version's report (JSON): plans, cross-validated metrics, head choices, thresholds, out-of-fold scores."""
    scores = {}
    for space, fit in fits.items():
        keep = slice(0, REPORT_SCORES)
        scores[space] = {
            "ids": fit.oof_ids[keep].tolist(),
            "labels": fit.oof_labels[keep].tolist(),
            "probabilities": _rounded(fit.oof_probabilities[keep]),
            "names": fit.evaluation.labels[:-1] if fit.evaluation.labels else [],
        }
    return {
        "concepts": [asdict(p) for p in plans],
        "config": asdict(config),
        "selection": asdict(selection),
        "metrics": [fit.evaluation.to_dict() for fit in fits.values()],
        "choices": {space: [c.to_dict() for c in fit.choices] for space, fit in fits.items()},
        "thresholds": {space: _thresholds_by_name(fit) for space, fit in fits.items()},
        "scores": scores,
    }


def _rounded(values: np.ndarray) -> list[list[float | None]]:
    """Rows of values to 5 decimals for JSON, NaN as None."""
    rounded = np.round(np.asarray(values, dtype=np.float64), 5).astype(object)
    rounded[np.isnan(np.asarray(values, dtype=np.float64))] = None
    return rounded.tolist()


def _thresholds_by_name(fit: SpaceFit) -> dict[str, float]:
    names = [c.concept for c in fit.choices]
    return {n: round(float(t), 6) for n, t, kind in zip(names, fit.heads.thresholds, fit.heads.kinds) if kind != NO_HEAD}


def _space_data(project, space, concepts, ids, labels, plans, config, embedder, stored) -> SpaceData:
    space_ids, space_vectors = stored
    labelled = np.isin(space_ids, ids)
    vectors = space_vectors[labelled]
    if len(ids) > MAX_MEMORY:
        keep = np.sort(np.random.default_rng(config.seed).choice(len(ids), MAX_MEMORY, replace=False))
        ids, labels, vectors = ids[keep], labels[keep], vectors[keep]
    if len(vectors):
        dim = vectors.shape[1]
    elif embedder is not None:
        dim = embedder.dims[space]
    else:  # a space with no labelled vector trains only zero-shot heads, which need the embedder
        raise TrainingError(f"space {space} of '{project.name}' has no labelled inputs to train on")
    unlabelled = _background(space_vectors[~labelled] if len(space_ids) else space_vectors)
    if unlabelled.size == 0:
        unlabelled = np.zeros((0, dim), np.float32)
    zero_shot, background = np.zeros((0, 0), np.float32), np.zeros(0, np.float32)
    if embedder is not None:
        zero_shot = embedder.build_zero_shot_vectors([name for _, name in concepts]).astype(np.float32)
        background = embedder.embed_texts(_BACKGROUND_PROMPTS).mean(axis=0)
        background = (background / (np.linalg.norm(background) or 1.0)).astype(np.float32)
    return SpaceData(
        space=space,
        names=[name for _, name in concepts],
        concept_ids=np.array([c for c, _ in concepts], np.int64),
        exclusive=project.exclusive,
        ids=ids,
        vectors=vectors.astype(np.float32, copy=False).reshape(len(ids), dim),
        labels=_with_implicit_negatives(labels),
        unlabelled=unlabelled.astype(np.float32, copy=False),
        defaults=[p.head for p in plans],
        zero_shot=zero_shot,
        zero_shot_background=background,
    )


def _background(unlabelled: np.ndarray) -> np.ndarray:
    """A sample of the space's unlabelled inputs: what "not this concept" usually looks like."""
    if len(unlabelled) > BACKGROUND_SAMPLE:
        unlabelled = unlabelled[np.sort(np.random.default_rng(0).choice(len(unlabelled), BACKGROUND_SAMPLE, replace=False))]
    return unlabelled
