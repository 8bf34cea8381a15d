"""Model versions out of a project and into one: ``export_model`` writes a model file, ``import_model``
registers one as a new version, after it loads and scores a query, or not at all.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
import uuid
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from core.access import Action, require
from core.access.audit import record
from core.disk import as_storage_error, write_file_atomically
from core.errors import ModelFileError, ModelVersionError
from core.exchange.model_file import (
    FILE_FORMAT,
    FILE_FORMAT_VERSION,
    FOREIGN_ID_OFFSET,
    MANIFEST_NAME,
    ExchangeLimits,
    ImportResult,
    ModelFile,
    array_digest,
    naming_errors,
    read_model_file,
)
from core.learning.models import get_threshold_overrides, load_model, set_threshold
from core.names import make_name_key
from core.storage.projects import Project

log = logging.getLogger(__name__)


def export_model(project: Project, version: int | None = None) -> bytes:
    """Pack a model version (the active one by default) into the bytes of a model file.

    Raises:
        ModelVersionError: no such version, or its file cannot be read.
    """
    require(project, Action.EXPORT)
    number = load_model(project, version).version  # resolves "active" and proves the version loads
    _, created_at, file, seconds, report = project.store.get_version(number)
    try:
        with np.load(project.root / "versions" / file, allow_pickle=False) as data:
            model = json.loads(bytes(data["manifest"]).decode())
            arrays = {name: data[name] for name in data.files if name != "manifest"}
    except (OSError, ValueError, KeyError) as e:
        raise ModelVersionError(f"model version {number} of '{project.name}' cannot be read: {e}") from e
    examples = {}
    for space in model.get("spaces", []):
        ids = arrays.get(f"{space}/memory_ids")
        if ids is not None:
            known = dict(project.store.query_in("SELECT id, sha256 FROM inputs WHERE id IN ({marks})", [int(i) for i in ids]))
            examples[space] = [known.get(int(i), "") for i in ids]
    names = model.get("concepts", {})
    # Thresholds set by hand live beside the version, by concept id: they travel by name.
    overrides = {names[str(cid)]: value for cid, value in get_threshold_overrides(project, number).items() if str(cid) in names}
    thresholds = report.get("thresholds", model.get("thresholds"))
    if isinstance(thresholds, dict) and overrides:
        thresholds = {space: {**by_name, **{n: v for n, v in overrides.items() if n in by_name}} for space, by_name in thresholds.items()}
    manifest = {
        "format": FILE_FORMAT,
        "format_version": FILE_FORMAT_VERSION,
        "embedder": model.get("embedder"),
        "exclusive": bool(model.get("exclusive")),
        "concepts": [names[k] for k in sorted(names, key=int)],
        "thresholds": thresholds,
        "threshold_overrides": overrides,
        "metrics": report.get("metrics", model.get("metrics")),
        "source": {"project": project.name, "version": number, "created_at": created_at, "seconds": seconds},
        "exported_at": time.time(),
        "model": model,
        "report": report,
        "examples": examples,
        "arrays": [],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for i, (name, array) in enumerate(sorted(arrays.items())):
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.require(array, requirements="C"), allow_pickle=False)
            entry = f"arrays/{i}.npy"
            archive.writestr(entry, npy.getvalue())
            manifest["arrays"].append(
                {"name": name, "entry": entry, "dtype": array.dtype.str, "shape": list(array.shape), "sha256": array_digest(array)}
            )
        archive.writestr(MANIFEST_NAME, json.dumps(manifest, ensure_ascii=False, indent=1))
    log.info("exported version %d of %s (%d arrays)", number, project.name, len(arrays))
    return buffer.getvalue()


def export_model_to(project: Project, path: str | os.PathLike[str], version: int | None = None) -> Path:
    """Write a model version to a model file at ``path`` (replaced whole, never half-written); return the path.

    Raises:
        ModelVersionError: no such version. StorageError: ``path`` cannot be written (disk full, read-only).
    """
    target = Path(path)
    data = export_model(project, version)
    try:
        write_file_atomically(target, data)
    except OSError as e:
        raise (as_storage_error(e, target.parent) or e) from e
    return target


# -- reading and checking -------------------------------------------------------------------


def _check_fits(project: Project, model_file: ModelFile) -> None:
    if model_file.embedder != project.embedder_spec:
        raise ModelFileError(
            f"this model was trained with embedder {model_file.embedder}, but project '{project.name}' uses "
            f"{project.embedder_spec}: embeddings of different models do not mix, so it cannot be used here"
        )
    if model_file.exclusive != project.exclusive:
        modes = {True: "mutually exclusive concepts", False: "independent concepts"}
        raise ModelFileError(f"this model has {modes[model_file.exclusive]}, but project '{project.name}' has {modes[project.exclusive]}")


def import_model(
    project: Project,
    source: bytes | str | os.PathLike[str] | BinaryIO | ModelFile,
    limits: ExchangeLimits = ExchangeLimits(),
    name: str | None = None,
) -> ImportResult:
    """Add a model file to a project as its newest (and active) model version.

    Concepts are matched by name (case-insensitively); the ones the project lacks are created. The
    file's labelled examples keep pointing at this project's inputs only where they are the very same
    inputs; otherwise predictions simply show no neighbours from them.

    Args:
        project: a project with the same embedder and label mode as the model.
        source: the model file's bytes, its path, a binary stream, or a ``ModelFile`` already read.
        limits: size limits for reading the file.
        name: what the person knows the file as, named in errors (a path names itself).

    Returns:
        The new version number and the concepts it scores, with those that were created.

    Raises:
        ModelFileError: the file is damaged or unsafe, or made for another embedder or label mode.
        StorageError: the project cannot be written.
    """
    require(project, Action.IMPORT_MODEL)
    model_file = source if isinstance(source, ModelFile) else read_model_file(source, limits, name)
    with naming_errors(source, name):
        _check_fits(project, model_file)
    store = project.store
    existing = {make_name_key(name) for _, name in store.list_concepts()}
    created = [n for n in model_file.concepts if make_name_key(n) not in existing]
    ids = store.ensure_concepts(model_file.concepts)
    target = {make_name_key(n): ids[n] for n in model_file.concepts}
    target_names = {make_name_key(n): n for n in model_file.concepts}
    source_names = {int(k): v for k, v in model_file.model["concepts"].items()}
    id_map = {old: target[make_name_key(name)] for old, name in source_names.items()}
    arrays = dict(model_file.arrays)
    for space in model_file.model["spaces"]:
        key = f"{space}/concept_ids"
        arrays[key] = np.array([id_map[int(i)] for i in arrays[key]], dtype=arrays[key].dtype)
        if f"{space}/memory_ids" in arrays:
            arrays[f"{space}/memory_ids"] = _local_example_ids(project, arrays[f"{space}/memory_ids"], model_file.examples.get(space))
    model = {**model_file.model, "concepts": {str(id_map[old]): name for old, name in source_names.items()}}
    report = _remap_report(model_file.report, target)
    report["imported"] = {"source": model_file.source, "at": time.time()}
    file = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}-imported.npz"
    path = project.root / "versions" / file
    buffer = io.BytesIO()
    np.savez(buffer, manifest=np.frombuffer(json.dumps(model).encode(), dtype=np.uint8), **arrays)
    try:
        try:
            write_file_atomically(path, buffer.getvalue())
        except OSError as e:
            raise (as_storage_error(e, path.parent) or e) from e
        seconds = model_file.source.get("seconds")
        seconds = float(seconds) if isinstance(seconds, int | float) else 0.0
        version = store.add_version(file, seconds, report, check=lambda v: _check_loads(project, v))
    except BaseException:
        path.unlink(missing_ok=True)
        _delete_unused_concepts(project, created)
        raise
    for name, value in model_file.threshold_overrides.items():
        set_threshold(project, version, target_names[make_name_key(name)], value)
    log.info("imported a model into %s as version %d", project.name, version)
    origin = model_file.source.get("project") if isinstance(model_file.source, dict) else None
    where = f", from '{origin}'" if origin else ""
    record("import model", project, f"imported version {version} ({len(model_file.concepts)} concepts{where})")
    return ImportResult(version, list(model_file.concepts), created)


def _local_example_ids(project: Project, ids: np.ndarray, hashes: list[str] | None) -> np.ndarray:
    """The example ids as this project knows them, or shifted out of the way of every real input id."""
    if hashes and all(hashes):
        found = project.store.find_input_ids(hashes)
        if len(found) == len(set(hashes)):
            local = np.array([found[h] for h in hashes], dtype=ids.dtype)
            if np.all(np.diff(local) > 0):
                return local
    ids = ids.astype(np.int64)
    return np.where(ids >= FOREIGN_ID_OFFSET, ids, ids + FOREIGN_ID_OFFSET).astype(np.int64)


def _remap_report(report: dict, target: dict[str, int]) -> dict:
    report = json.loads(json.dumps(report))
    for plan in report.get("concepts", []) if isinstance(report.get("concepts"), list) else []:
        if isinstance(plan, dict) and isinstance(plan.get("concept"), str) and make_name_key(plan["concept"]) in target:
            plan["concept_id"] = target[make_name_key(plan["concept"])]
    return report


def _check_loads(project: Project, version: int) -> None:
    """Load the version as predictions will, and score one query per space: it must work, or the import fails."""
    try:
        model = load_model(project, version)
        for heads in model.spaces.values():
            dims = [a.shape[1] for a in (heads.weights, heads.memory, heads.zero_shot) if a.ndim == 2 and a.shape[1]]
            scores = heads.score(np.full((1, dims[0] if dims else 1), 0.1, np.float32))
            if scores.shape != (1, len(heads.concept_ids)):
                raise ValueError("scores have the wrong shape")
    except ModelVersionError as e:
        raise ModelFileError(f"the model in this file does not load: {e}") from e
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError, AssertionError) as e:
        raise ModelFileError(f"the model in this file does not load ({type(e).__name__}: {e})") from e


def _delete_unused_concepts(project: Project, names: list[str]) -> None:
    """Undo the concepts an import created, unless someone labelled them meanwhile."""
    labelled = {cid for _, cid, _ in project.store.load_annotations()}
    for name in names:
        cid = project.store.concept_id(name)
        if cid is not None and cid not in labelled:
            project.store.delete_concept(name)


# -- CSV ------------------------------------------------------------------------------------
