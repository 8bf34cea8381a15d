"""Training: turn a project's labels into a new model version.

Each concept gets the best head its data allows, per embedding space (see
``heads.py``). A version is written to its own file first and registered in the
database after, so a process killed mid-training leaves no half-made version.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import ModelVersionError, TrainingError
from .heads import (
    LINEAR,
    NEAREST,
    NEAREST_K,
    NO_HEAD,
    ZERO_SHOT,
    HeadConfig,
    ProgressCallback,
    SpaceHeads,
    estimate_reference,
    fit_linear,
)
from .projects import Project

log = logging.getLogger(__name__)

MODEL_FORMAT = 1
MAX_MEMORY = 50_000
BACKGROUND_SAMPLE = 512
_BACKGROUND_PROMPTS = ["a photo.", "an image.", "a picture of something.", "some text."]


@dataclass(frozen=True)
class ConceptPlan:
    """What training will do (or did) for one concept in one space, and the counts behind it."""

    concept: str
    concept_id: int
    space: str
    head: str
    positives: int
    negatives: int
    hint: str = ""


@dataclass(frozen=True)
class TrainResult:
    """A trained model version and what each concept got."""

    version: int
    seconds: float
    concepts: list[ConceptPlan]


@dataclass
class Model:
    """A loaded model version: per-space heads plus the names it was trained with."""

    version: int
    embedder: str
    exclusive: bool
    concept_names: dict[int, str]
    spaces: dict[str, SpaceHeads]


def _labelled_matrix(project: Project, space: str, concept_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(input ids (m,) sorted, labels (m, C) of +1/-1/0) for the inputs labelled in ``space``."""
    column = {cid: j for j, cid in enumerate(concept_ids)}
    annotations = project.store.load_annotations()
    spaces = project.store.embedding_spaces(sorted({a[0] for a in annotations}))
    rows = sorted({i for i, _, _ in annotations if spaces.get(i) == space})
    position = {i: r for r, i in enumerate(rows)}
    labels = np.zeros((len(rows), len(concept_ids)), dtype=np.int8)
    for input_id, cid, value in annotations:
        if input_id in position and cid in column:
            labels[position[input_id], column[cid]] = value
    return np.array(rows, dtype=np.int64), labels


def _with_implicit_negatives(labels: np.ndarray) -> np.ndarray:
    """An input positive for another concept and unlabelled for this one counts as its negative."""
    positive_elsewhere = (labels > 0).any(axis=1, keepdims=True)
    return np.where((labels == 0) & positive_elsewhere, -1, labels).astype(np.int8)


def _plan_space(
    project: Project, space: str, zero_shot: bool, concepts: list[tuple[int, str]], labels: np.ndarray, config: HeadConfig
) -> list[ConceptPlan]:
    full = _with_implicit_negatives(labels)
    n_pos = (full > 0).sum(axis=0)
    n_neg = (full < 0).sum(axis=0)
    trained = n_pos > 0
    exclusive_linear = project.exclusive and trained.sum() >= 2 and (n_pos[trained] >= config.min_linear_positives).all()
    plans = []
    for j, (cid, name) in enumerate(concepts):
        pos, neg = int(n_pos[j]), int(n_neg[j])
        need = config.min_linear_positives - pos
        if pos == 0:
            head = ZERO_SHOT if zero_shot and not exclusive_linear else NO_HEAD
            hint = "no examples yet: add positives to train it" if head == NO_HEAD else "works from its name; add examples to improve it"
        elif project.exclusive:
            head = LINEAR if exclusive_linear else NEAREST
            hint = "" if head == LINEAR else ("add more examples" if need <= 0 else f"add {need} more examples for a linear head")
        elif pos < config.min_linear_positives or neg == 0:
            head = NEAREST
            hint = f"add {need} more examples for a linear head" if need > 0 else "add negatives (or another concept) for a linear head"
        else:
            head, hint = LINEAR, ""
        plans.append(ConceptPlan(name, cid, space, head, pos, neg, hint))
    return plans


def _training_spaces(project: Project) -> tuple[list[str], bool]:
    embedder = project.embedder()
    spaces = [embedder.image_space] if embedder.zero_shot else [embedder.image_space, embedder.text_space]
    return spaces, embedder.zero_shot


def plan_training(project: Project, config: HeadConfig = HeadConfig()) -> list[ConceptPlan]:
    """Per concept and space: counts and the head training would give it (nothing is trained)."""
    concepts = project.store.list_concepts()
    spaces, zero_shot = _training_spaces(project)
    plans = []
    for space in spaces:
        _, labels = _labelled_matrix(project, space, [c for c, _ in concepts])
        plans += _plan_space(project, space, zero_shot, concepts, labels, config)
    return plans


def train(project: Project, config: HeadConfig = HeadConfig(), progress: ProgressCallback | None = None) -> TrainResult:
    """Train a new model version from the project's labels and make it the active one.

    Raises:
        TrainingError: no concepts, or nothing any head could be built from.
    """
    started = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    concepts = project.store.list_concepts()
    if not concepts:
        raise TrainingError(f"project '{project.name}' has no concepts yet: create one and label a few inputs")
    spaces, zero_shot = _training_spaces(project)
    embedder = project.embedder()
    arrays: dict[str, np.ndarray] = {}
    plans: list[ConceptPlan] = []
    for s, space in enumerate(spaces):
        report(s / len(spaces), f"preparing {space}")
        ids, labels = _labelled_matrix(project, space, [c for c, _ in concepts])
        space_plans = _plan_space(project, space, zero_shot, concepts, labels, config)
        plans += space_plans
        if all(p.head == NO_HEAD for p in space_plans):
            continue
        heads = _fit_space(project, space, concepts, ids, labels, space_plans, config, embedder if zero_shot else None, report)
        arrays.update({f"{space}/{k}": v for k, v in _head_arrays(heads).items()})
    if not arrays:
        raise TrainingError(f"project '{project.name}' has no labelled examples yet: label a few inputs for a concept")
    seconds = time.perf_counter() - started
    manifest = {
        "format": MODEL_FORMAT,
        "embedder": project.embedder_spec,
        "exclusive": project.exclusive,
        "spaces": [s for s in spaces if f"{s}/concept_ids" in arrays],
        "concepts": {str(c): n for c, n in concepts},
        "kinds": {s: [p.head for p in plans if p.space == s] for s in spaces},
    }
    file = _save_version_file(project.root, manifest, arrays)
    version = project.store.add_version(file, seconds, {"concepts": [asdict(p) for p in plans], "config": asdict(config)})
    report(1.0, f"version {version} trained")
    log.info("trained version %d of %s in %.2fs", version, project.name, seconds)
    return TrainResult(version, seconds, plans)


def _fit_space(project, space, concepts, ids, labels, plans, config, embedder, report) -> SpaceHeads:
    _, vectors = project.store.load_embeddings(space, ids)
    if len(ids) > MAX_MEMORY:
        keep = np.sort(np.random.default_rng(config.seed).choice(len(ids), MAX_MEMORY, replace=False))
        ids, labels, vectors = ids[keep], labels[keep], vectors[keep]
    full = _with_implicit_negatives(labels)
    kinds = [p.head for p in plans]
    n, dim = len(concepts), vectors.shape[1] if len(vectors) else project.embedder().dims[space]
    weights, bias = np.zeros((n, dim), np.float32), np.zeros(n, np.float32)
    linear = [j for j, k in enumerate(kinds) if k == LINEAR]
    if linear and project.exclusive:
        rows = (full[:, linear] > 0).sum(axis=1) == 1
        targets = np.argmax(full[rows][:, linear] > 0, axis=1)
        w, b = fit_linear(vectors[rows], targets, exclusive=True, config=config, progress=report)
        weights[linear], bias[linear] = w, b
    elif linear:
        w, b = fit_linear(vectors, full[:, linear], exclusive=False, config=config, progress=report)
        weights[linear], bias[linear] = w, b

    reference = np.zeros(n, np.float32)
    for j, kind in enumerate(kinds):
        if kind == NEAREST and not (full[:, j] < 0).any():
            reference[j] = estimate_reference(vectors[full[:, j] > 0], _background(project, space, ids), NEAREST_K)

    if embedder is not None:
        names = [name for _, name in concepts]
        zero_shot = embedder.build_zero_shot_vectors(names)
        background = embedder.embed_texts(_BACKGROUND_PROMPTS).mean(axis=0)
        background /= np.linalg.norm(background) or 1.0
        zero_shot_weight = 1.0 / (1.0 + (full > 0).sum(axis=0))
    else:
        zero_shot, background, zero_shot_weight = np.zeros((0, 0), np.float32), np.zeros(0, np.float32), np.zeros(n)
    return SpaceHeads(
        concept_ids=np.array([c for c, _ in concepts], np.int64),
        kinds=kinds,
        exclusive=project.exclusive,
        weights=weights,
        bias=bias,
        memory=vectors.astype(np.float32),
        memory_ids=ids,
        memory_labels=full,
        reference=reference,
        zero_shot=zero_shot.astype(np.float32),
        zero_shot_background=background.astype(np.float32),
        zero_shot_weight=zero_shot_weight.astype(np.float32),
    )


def _background(project: Project, space: str, labelled_ids: np.ndarray) -> np.ndarray:
    """A sample of unlabelled inputs in ``space``: what "not this concept" usually looks like."""
    ids, vectors = project.store.load_embeddings(space)
    unlabelled = ~np.isin(ids, labelled_ids)
    vectors = vectors[unlabelled] if len(ids) else vectors
    if len(vectors) > BACKGROUND_SAMPLE:
        vectors = vectors[np.random.default_rng(0).choice(len(vectors), BACKGROUND_SAMPLE, replace=False)]
    return vectors


_ARRAY_FIELDS = (
    "concept_ids",
    "weights",
    "bias",
    "memory",
    "memory_ids",
    "memory_labels",
    "reference",
    "zero_shot",
    "zero_shot_background",
    "zero_shot_weight",
)


def _head_arrays(heads: SpaceHeads) -> dict[str, np.ndarray]:
    return {name: getattr(heads, name) for name in _ARRAY_FIELDS}


def _save_version_file(root: Path, manifest: dict, arrays: dict[str, np.ndarray]) -> str:
    folder = root / "versions"
    folder.mkdir(exist_ok=True)
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.npz"
    tmp = folder / f".tmp-{name}"
    payload = {"manifest": np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8), **arrays}
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        tmp.rename(folder / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return name


def load_model(project: Project, version: int | None = None) -> Model:
    """Load a model version (the active one by default) without pickle.

    Raises:
        ModelVersionError: no such version, or its file is missing or from another embedder.
    """
    versions = {v[0]: v for v in project.store.list_versions()}
    if version is None:
        active = project.store.get_meta("active_version")
        version = int(active) if active else (max(versions) if versions else None)
    if version is None:
        raise ModelVersionError(f"project '{project.name}' has no trained model yet: train one first")
    if version not in versions:
        raise ModelVersionError(f"project '{project.name}' has no model version {version}")
    path = project.root / "versions" / versions[version][2]
    try:
        with np.load(path, allow_pickle=False) as data:
            manifest = json.loads(bytes(data["manifest"]).decode())
            arrays = {k: data[k] for k in data.files if k != "manifest"}
    except (OSError, ValueError, KeyError) as e:
        raise ModelVersionError(f"model version {version} of '{project.name}' cannot be read: {e}") from e
    if manifest.get("embedder") != project.embedder_spec:
        raise ModelVersionError(
            f"model version {version} was trained with embedder {manifest.get('embedder')}, not {project.embedder_spec}"
        )
    spaces = {}
    for space in manifest["spaces"]:
        fields = {name: arrays[f"{space}/{name}"] for name in _ARRAY_FIELDS}
        spaces[space] = SpaceHeads(kinds=list(manifest["kinds"][space]), exclusive=bool(manifest["exclusive"]), **fields)
    names = {int(k): v for k, v in manifest["concepts"].items()}
    return Model(version, manifest["embedder"], bool(manifest["exclusive"]), names, spaces)


def set_active_version(project: Project, version: int) -> None:
    """Make ``version`` the one predictions use."""
    if version not in {v[0] for v in project.store.list_versions()}:
        raise ModelVersionError(f"project '{project.name}' has no model version {version}")
    project.store.set_meta("active_version", str(version))
