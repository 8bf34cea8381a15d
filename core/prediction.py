"""Prediction and similarity search with a trained model version."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from core.errors import InputError
from core.ingestion import EmbeddedInput, embed_inputs
from core.inputs import RawInput, VideoConfig
from core.learning.heads import SpaceHeads
from core.learning.metrics import exclusive_passes
from core.learning.models import Model, load_model, thresholds_for
from core.storage.index import load_index
from core.storage.inputs import InputRecord
from core.storage.projects import Project

log = logging.getLogger(__name__)

_models: dict[tuple[str, int | None, int], Model] = {}
_models_lock = threading.Lock()


@dataclass(frozen=True)
class ConceptScore:
    """One concept's calibrated probability, the head behind it, its threshold and whether it matches."""

    concept: str
    score: float
    head: str
    threshold: float = 0.5
    passes: bool = False


@dataclass(frozen=True)
class Neighbour:
    """A stored labelled input close to the one predicted: why the model decided so."""

    input_id: int
    name: str
    similarity: float
    labels: dict[str, int]


@dataclass(frozen=True)
class FrameScores:
    """Per-frame scores of a video: ``scores[concept][i]`` at ``times[i]`` seconds."""

    times: list[float]
    scores: dict[str, list[float]]


@dataclass(frozen=True)
class Prediction:
    """Concepts with scores for one input, best first, and the head behind each score."""

    input: str
    kind: str
    concepts: list[ConceptScore]
    version: int
    neighbours: list[Neighbour] = field(default_factory=list)
    frames: FrameScores | None = None
    unknown: bool = False
    unknown_reason: str = ""
    # A face (embedder ``faces``): its box in the photo (left, top, right, bottom), its number, and a video frame's time.
    face: dict | None = None

    @property
    def head(self) -> str | None:
        return self.concepts[0].head if self.concepts else None

    @property
    def matches(self) -> list[str]:
        """The concepts that pass their threshold (none for an unknown input), best first."""
        return [c.concept for c in self.concepts if c.passes]

    def to_dict(self) -> dict:
        data = {"input": self.input, "kind": self.kind, "version": self.version, "head": self.head}
        data["concepts"] = [asdict(c) for c in self.concepts]
        data["matches"] = self.matches
        data["unknown"] = self.unknown
        if self.unknown:
            data["unknown_reason"] = self.unknown_reason
        data["neighbours"] = [asdict(n) for n in self.neighbours]
        if self.frames is not None:
            data["frames"] = asdict(self.frames)
        if self.face is not None:
            data["face"] = self.face
        return data


def get_model(project: Project, version: int | None = None) -> Model:
    """The model version (active by default), loaded once per process and shared."""
    active = project.store.get_meta("active_version")
    key = (str(project.root), version, int(active) if active else -1)
    with _models_lock:
        if key not in _models:
            _models[key] = load_model(project, version)
        return _models[key]


def _score_vectors(model: Model, current: dict[int, str], space: str, vectors: np.ndarray) -> tuple[list[str], np.ndarray, list[str]]:
    """(concept names, scores (n, C), head kinds) for vectors of one space; deleted concepts left out."""
    heads = model.spaces.get(space)
    if heads is None:
        return [], np.zeros((len(vectors), 0)), []
    scores = heads.score(vectors)
    keep = [j for j, cid in enumerate(heads.concept_ids) if int(cid) in current and not np.isnan(scores[0, j])]
    names = [current[int(heads.concept_ids[j])] for j in keep]
    return names, scores[:, keep], [heads.kinds[j] for j in keep]


@dataclass
class _Context:
    """What every prediction of one batch shares: read once, not once per input (each is a SQLite query)."""

    project: Project
    model: Model
    current: dict[int, str]  # concept id -> name, deleted concepts absent
    thresholds: dict[str, np.ndarray] = field(default_factory=dict)  # space -> thresholds in force

    @classmethod
    def read(cls, project: Project, version: int | None) -> _Context:
        return cls(project, get_model(project, version), dict(project.store.list_concepts()))

    def thresholds_of(self, space: str) -> np.ndarray:
        if space not in self.thresholds:
            self.thresholds[space] = thresholds_for(self.project, self.model, space)
        return self.thresholds[space]


def predict_embedded(project: Project, item: EmbeddedInput, version: int | None = None, explain: int = 3) -> Prediction:
    """Score one embedded input with a model version."""
    return _predict_one(_Context.read(project, version), item, explain)


def _predict_one(context: _Context, item: EmbeddedInput, explain: int) -> Prediction:
    model = context.model
    names, scores, kinds = _score_vectors(model, context.current, item.space, item.vector[None, :])
    thresholds, unknown, reason = _decide(context, item.space, item.vector, names, item.raw.kind)
    # Exclusive concepts: one match at most, the most probable concept, and only if it reaches its threshold.
    if model.exclusive and len(names):
        passes = exclusive_passes(scores, np.asarray(thresholds))[0]
    else:
        passes = scores[0] >= np.asarray(thresholds, dtype=np.float64)
    concepts = sorted(
        (
            ConceptScore(n, round(float(s), 6), k, round(float(t), 6), bool(ok) and not unknown)
            for n, s, k, t, ok in zip(names, scores[0], kinds, thresholds, passes)
        ),
        key=lambda c: (-c.score, c.concept),
    )
    frames = None
    if item.frame_vectors is not None and len(item.frame_vectors):
        names_f, frame_scores, _ = _score_vectors(model, context.current, item.space, item.frame_vectors)
        frames = FrameScores(list(item.frame_times), {n: [round(float(v), 6) for v in frame_scores[:, j]] for j, n in enumerate(names_f)})
    neighbours = _explain(context.project, model, item.space, item.vector, explain) if explain else []
    face = item.info.get("face")
    if face is not None:
        face = {**face, **({"time": item.info["time"]} if "time" in item.info else {})}
    return Prediction(item.raw.name, item.raw.kind, concepts, model.version, neighbours, frames, unknown, reason, face)


def _decide(context: _Context, space: str, vector: np.ndarray, names: list[str], kind: str) -> tuple[list[float], bool, str]:
    """(threshold per named concept, is the input unknown, why) for one input."""
    heads = context.model.spaces.get(space)
    if heads is None:
        return [], False, ""
    in_force = context.thresholds_of(space)
    current = context.current
    by_name = {current[int(cid)]: float(t) for cid, t in zip(heads.concept_ids, in_force) if int(cid) in current}
    unknown, nearest = heads.unknown(vector[None, :])
    reason = describe_unknown(heads, float(nearest[0]), kind) if unknown[0] else ""
    return [by_name.get(n, 0.5) for n in names], bool(unknown[0]), reason


# What a person calls the labelled inputs an input of each kind is compared with.
_KIND_PLURALS = {"image": "photos", "text": "texts"}


def describe_unknown(heads: SpaceHeads, nearest: float, kind: str) -> str:
    """Why an input is unknown, plain words first, then the figures: its similarity and what labelled inputs reach."""
    things = _KIND_PLURALS.get(kind, "inputs")
    plain = f"this looks unlike the {things} you labelled (similarity {nearest:.2f} to the closest of them"
    if heads.unknown_held_out == 0:  # a version trained before the cut-off said what it was measured on
        return f"{plain}, below the cut-off of {heads.unknown_cutoff:.2f} that training set)"
    held_out, kept = heads.unknown_held_out, heads.unknown_kept
    share = "all" if kept == held_out else str(kept)
    return (
        f"{plain}; of the {held_out} labelled {things} training held out in turn, "
        f"{share} were at least {heads.unknown_cutoff:.2f} similar to the rest)"
    )


def _explain(project: Project, model: Model, space: str, vector: np.ndarray, k: int) -> list[Neighbour]:
    heads = model.spaces.get(space)
    if heads is None:
        return []
    scores, ids = heads.nearest_labelled(vector[None, :], k)
    wanted = [int(i) for i in ids[0] if i >= 0]
    records = project.store.get_inputs(wanted)  # two queries for all k, not two per neighbour
    labels = project.store.labels_of_inputs(records)
    return [
        Neighbour(records[i].id, records[i].name, round(float(score), 6), labels[i])
        for score, i in zip(scores[0], ids[0].tolist())
        if i in records
    ]


def predict(
    project: Project,
    items: Iterable[RawInput | InputError],
    version: int | None = None,
    video: VideoConfig = VideoConfig(),
    explain: int = 3,
) -> Iterator[Prediction | InputError]:
    """Predict concepts for inputs (nothing is stored); failures come back as InputError in place.

    With an embedder of faces, a photo gives one Prediction per face (named ``team.jpg#face2``, with
    its box in ``face``), and a face too small to trust its own InputError.

    Raises:
        ModelVersionError: the project has no trained model (or no such version).
    """
    get_model(project, version)  # fail before reading any file when there is no model
    embedder = project.embedder()
    batch: list[RawInput | InputError] = []
    for item in items:
        batch.append(item)
        if len(batch) >= 32:
            yield from _predict_batch(project, embedder, batch, version, video, explain)
            batch = []
    yield from _predict_batch(project, embedder, batch, version, video, explain)


def _predict_batch(project, embedder, batch, version, video, explain) -> Iterator[Prediction | InputError]:
    if not batch:
        return
    raws = [item for item in batch if not isinstance(item, InputError)]
    yield from predict_embedded_batch(project, batch, embed_inputs(embedder, raws, video), version, explain)


def predict_embedded_batch(
    project: Project,
    items: list[RawInput | InputError],
    embedded: list[EmbeddedInput | InputError],
    version: int | None = None,
    explain: int = 3,
) -> list[Prediction | InputError]:
    """Score a batch whose raw inputs were embedded elsewhere, reading the model and concepts once.

    Args:
        items: the batch as read, errors in place.
        embedded: one result per ``RawInput`` of ``items``, in order (what ``embed_inputs`` gives).

    Returns:
        One Prediction or InputError per item, in order; for a photo of faces one per face, then one
        InputError per face refused.
    """
    context = _Context.read(project, version)  # after embedding: a model trained meanwhile is the one used
    results = iter(embedded)
    scored: list[Prediction | InputError] = []
    for item in items:
        done = item if isinstance(item, InputError) else next(results)
        if isinstance(done, InputError):
            scored.append(done)
            continue
        scored += [_predict_one(context, part, explain) for part in done.parts]
        scored += done.refused
    return scored


@dataclass(frozen=True)
class SimilarInput:
    record: InputRecord
    similarity: float


def search_similar(project: Project, query: RawInput | int, k: int = 10, video: VideoConfig = VideoConfig()) -> list[SimilarInput]:
    """The k stored inputs most similar to a new input, or to a stored one (given by id, itself left out).

    Raises:
        InputError: the query cannot be decoded, or the input id does not exist.
    """
    store = project.store
    exclude: set[int] = set()
    if isinstance(query, int):
        record = store.get_input(query)
        if record is None:
            raise InputError(f"input {query}", "no such input in this project")
        space = store.embedding_spaces([query])[query]
        _, vectors = store.load_embeddings(space, [query])
        vector, exclude = vectors[0], {query}
    else:
        (result,) = embed_inputs(project.embedder(), [query], video)
        if isinstance(result, InputError):
            raise result
        space, vector = result.space, result.vector
    hits = load_index(store, space).search_one(vector, k, exclude)
    found = []
    for hit in hits:
        record = store.get_input(hit.input_id)
        if record is not None:
            found.append(SimilarInput(record, round(hit.score, 6)))
    return found
