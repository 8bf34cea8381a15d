"""Model versions on disk: the file a training run writes (a ``.npz`` of arrays and a JSON manifest, never
pickle), loading a version back as a ``Model``, which version is active, and thresholds set by hand.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.access import Action, require
from core.disk import as_storage_error
from core.errors import ConceptError, ModelVersionError
from core.learning.heads import SpaceHeads
from core.storage.projects import Project

MODEL_FORMAT = 2
_ORIGINS_KEY = "threshold_origins:v{}"
_THRESHOLDS_KEY = "thresholds:v{}"


@dataclass
class Model:
    """A loaded model version: per-space heads plus the names it was trained with."""

    version: int
    embedder: str
    exclusive: bool
    concept_names: dict[int, str]
    spaces: dict[str, SpaceHeads]


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
    "center",
    "feature_power",
    "prototypes",
    "negative_prototypes",
    "tip",
    "calibration",
    "thresholds",
    "unknown_cutoff",
    "unknown_held_out",
    "unknown_kept",
)
# Fields added in or after format 2: an older file lacks them and gets SpaceHeads' defaults (a file
# without unknown_held_out and unknown_kept still has its cut-off, only not what it was measured on).
_OPTIONAL_FIELDS = frozenset(_ARRAY_FIELDS[10:])
_SCALAR_FIELDS = frozenset({"feature_power", "unknown_cutoff", "unknown_held_out", "unknown_kept"})


def make_head_arrays(heads: SpaceHeads) -> dict[str, np.ndarray]:
    """The arrays a version file stores for one space's heads, by field name."""
    return {name: np.asarray(getattr(heads, name)) for name in _ARRAY_FIELDS}


def save_version_file(root: Path, manifest: dict, arrays: dict[str, np.ndarray]) -> str:
    """Write a new version file under ``root/versions`` atomically (fsynced, then renamed) and return its name."""
    folder = root / "versions"
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.npz"
    tmp = folder / f".tmp-{name}"
    payload = {"manifest": np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8), **arrays}
    try:
        folder.mkdir(exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        tmp.rename(folder / name)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        # A full or read-only disk is the person's to fix: say so in one sentence, as ingest does.
        raise (as_storage_error(e, folder) or e) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return name


def resolve_version(project: Project, version: int | None = None) -> int:
    """The number of a stored model version: ``version`` itself, or the active one (else the newest).

    Raises:
        ModelVersionError: no trained model yet, or no such version.
    """
    numbers = [v[0] for v in project.store.list_versions(report_keys=())]
    if version is None:
        active = project.store.get_meta("active_version")
        version = int(active) if active else (max(numbers) if numbers else None)
    if version is None:
        raise ModelVersionError(f"project '{project.name}' has no trained model yet: train one first")
    if version not in numbers:
        raise ModelVersionError(f"project '{project.name}' has no model version {version}")
    return version


def load_model(project: Project, version: int | None = None) -> Model:
    """Load a model version (the active one by default) without pickle.

    Raises:
        ModelVersionError: no such version, or its file is missing or from another embedder.
    """
    version = resolve_version(project, version)
    path = project.root / "versions" / project.store.get_version(version)[2]
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
        fields = {}
        for name in _ARRAY_FIELDS:
            key = f"{space}/{name}"
            if key not in arrays and name in _OPTIONAL_FIELDS:
                continue
            fields[name] = float(arrays[key]) if name in _SCALAR_FIELDS else arrays[key]
        try:
            spaces[space] = SpaceHeads(kinds=list(manifest["kinds"][space]), exclusive=bool(manifest["exclusive"]), **fields)
        except (KeyError, ValueError, TypeError) as e:
            raise ModelVersionError(f"model version {version} of '{project.name}' is damaged: {e}") from e
    names = {int(k): v for k, v in manifest["concepts"].items()}
    return Model(version, manifest["embedder"], bool(manifest["exclusive"]), names, spaces)


def set_active_version(project: Project, version: int) -> None:
    """Make ``version`` the one predictions use."""
    require(project, Action.ACTIVATE_VERSION)
    project.store.set_meta("active_version", str(resolve_version(project, version)))


def set_threshold(project: Project, version: int, concept: str, value: float) -> None:
    """Set the probability at or above which ``concept`` matches in model ``version``.

    The version file is never rewritten: the override is kept beside it and applied whenever
    the version predicts or is evaluated.

    Raises:
        ValueError: ``value`` is not within [0, 1].
        ModelVersionError: no such version. ConceptError: no such concept in that version.
    """
    require(project, Action.SET_THRESHOLD)
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"a threshold must lie between 0 and 1, not {value}")
    model = load_model(project, version)
    concept_id = project.store.concept_id(concept)
    if concept_id is None or concept_id not in model.concept_names:
        raise ConceptError(f"model version {version} has no concept '{concept}'")
    overrides = get_threshold_overrides(project, version)
    overrides[concept_id] = value
    origins = get_threshold_origins(project, version)
    origins[concept_id] = version  # set here, by hand
    _write_overrides(project, version, overrides, origins)


def reset_threshold(project: Project, version: int, concept: str) -> None:
    """Go back to the threshold training chose for ``concept`` in ``version`` (and stop carrying a hand-set one forward)."""
    require(project, Action.SET_THRESHOLD)
    concept_id = project.store.concept_id(concept)
    overrides, origins = get_threshold_overrides(project, version), get_threshold_origins(project, version)
    if concept_id in overrides:
        del overrides[concept_id]
        origins.pop(concept_id, None)
        _write_overrides(project, version, overrides, origins)


def get_threshold_overrides(project: Project, version: int) -> dict[int, float]:
    """Thresholds set by hand on ``version``: concept id -> threshold."""
    raw = project.store.get_meta(_THRESHOLDS_KEY.format(version))
    return {int(k): float(v) for k, v in json.loads(raw).items()} if raw else {}


def get_threshold_origins(project: Project, version: int) -> dict[int, int]:
    """For each threshold set by hand in force on ``version``: the version it was set on (itself, or an earlier one)."""
    raw = project.store.get_meta(_ORIGINS_KEY.format(version))
    origins = {int(k): int(v) for k, v in json.loads(raw).items()} if raw else {}
    return {cid: origins.get(cid, version) for cid in get_threshold_overrides(project, version)}


def carry_threshold_overrides(project: Project, source: int | None, target: int, concept_ids: Iterable[int]) -> dict[int, float]:
    """The thresholds a person set by hand on ``source``, carried to ``target`` for its concepts (``concept_ids``).

    A training run must not drop a threshold someone chose on purpose: the new version starts with it,
    and ``get_threshold_origins`` says where it came from. Returns what was carried.
    """
    if source is None or source == target:
        return {}
    concepts = set(concept_ids)
    origins = get_threshold_origins(project, source)
    carried = {cid: t for cid, t in get_threshold_overrides(project, source).items() if cid in concepts}
    if carried:
        _write_overrides(project, target, carried, {cid: origins[cid] for cid in carried})
    return carried


def _write_overrides(project: Project, version: int, overrides: dict[int, float], origins: dict[int, int]) -> None:
    project.store.set_meta(_THRESHOLDS_KEY.format(version), json.dumps({str(k): v for k, v in overrides.items()}))
    project.store.set_meta(_ORIGINS_KEY.format(version), json.dumps({str(k): v for k, v in origins.items()}))


def thresholds_for(project: Project, model: Model, space: str) -> np.ndarray:
    """The thresholds in force for a space's concepts: the trained ones, with any set by hand."""
    heads = model.spaces[space]
    overrides = get_threshold_overrides(project, model.version)
    return np.array([overrides.get(int(cid), float(t)) for cid, t in zip(heads.concept_ids, heads.thresholds)], np.float32)
