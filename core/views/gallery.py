"""What the labelling screens need: filtered, ordered pages of inputs, thumbnails, suggestions.

Scores of stored inputs come from their stored embeddings (nothing is re-embedded), so
filtering by prediction or ordering by uncertainty costs one matrix product per space.
"""

from __future__ import annotations

import io
import logging
import re
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Literal

import numpy as np
from PIL import Image

from core.access import Action, require
from core.access.audit import record
from core.disk import write_file_atomically
from core.errors import InputError, ModelVersionError
from core.inputs import VideoConfig, decode_image, make_thumbnail, sample_frames
from core.names import make_name_key
from core.prediction import FrameScores, get_model
from core.storage.concepts import validate_concept_name
from core.storage.inputs import InputRecord
from core.storage.projects import Project

log = logging.getLogger(__name__)

Order = Literal["newest", "oldest", "least certain"]
LabelState = Literal["all", "unlabelled", "labelled"]


@dataclass(frozen=True)
class GalleryFilter:
    """Which inputs a gallery shows, and in what order."""

    kind: str | None = None
    labels: LabelState = "all"
    positive_for: str | None = None
    negative_for: str | None = None
    predicted: str | None = None
    order: Order = "newest"


@dataclass(frozen=True)
class GalleryItem:
    """One input with its labels and, when a model exists, its top predicted concept."""

    record: InputRecord
    labels: dict[str, int]
    predicted: str | None = None
    score: float | None = None
    certainty: float | None = None


@dataclass(frozen=True)
class GalleryPage:
    items: list[GalleryItem]
    total: int
    page: int
    pages: int


@dataclass(frozen=True)
class StoredScores:
    """The active model's view of every stored input: top concept, its score, and certainty in [0, 1]."""

    version: int | None
    top: dict[int, tuple[str, float]]
    certainty: dict[int, float]
    scores: dict[int, dict[str, float]]


_scores_cache: dict[tuple, StoredScores] = {}
_scores_lock = threading.Lock()


def score_stored_inputs(project: Project, version: int | None = None, input_ids: Collection[int] | None = None) -> StoredScores:
    """Score stored inputs with a model version (the active one by default); empty without a model.

    All of them by default (kept for the next call while nothing changes), or only ``input_ids``: a
    gallery page needs 24 scores, and scoring 20,000 inputs against 20,000 labelled ones takes seconds.
    """
    try:
        model = get_model(project, version)
    except ModelVersionError:
        return StoredScores(None, {}, {}, {})
    concepts = tuple(project.store.list_concepts())
    key = (str(project.root), project.store.generation(), model.version, concepts)
    with _scores_lock:
        if key in _scores_cache:
            return _scores_cache[key]  # every input's scores serve any subset too
    current = dict(concepts)
    top, certainty, scores = {}, {}, {}
    for space, heads in model.spaces.items():
        if input_ids is not None and not input_ids:
            break
        ids, vectors = project.store.load_embeddings(space, input_ids)
        if not len(ids):
            continue
        matrix = heads.score(vectors)
        columns = [j for j, cid in enumerate(heads.concept_ids) if int(cid) in current and not np.isnan(matrix[0, j])]
        if not columns:
            continue
        names = [current[int(heads.concept_ids[j])] for j in columns]
        matrix = matrix[:, columns]
        best = matrix.argmax(axis=1)
        if model.exclusive and matrix.shape[1] > 1:
            ordered = np.sort(matrix, axis=1)
            sure = ordered[:, -1] - ordered[:, -2]  # margin between the two likeliest concepts
        else:
            sure = np.abs(2 * matrix - 1).min(axis=1)  # the concept closest to a coin flip decides
        for row, input_id in enumerate(ids.tolist()):
            top[input_id] = (names[best[row]], float(matrix[row, best[row]]))
            certainty[input_id] = float(sure[row])
            scores[input_id] = dict(zip(names, matrix[row].tolist()))
    result = StoredScores(model.version, top, certainty, scores)
    if input_ids is None:
        with _scores_lock:
            _scores_cache.clear()  # only the latest view is worth keeping
            _scores_cache[key] = result
    return result


def _filtered_ids(project: Project, flt: GalleryFilter) -> list[int]:
    sql = "SELECT id FROM inputs i WHERE 1 = 1"
    params: list = []
    if flt.kind:
        sql += " AND kind = ?"
        params.append(flt.kind)
    if flt.labels == "unlabelled":
        sql += " AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.input_id = i.id)"
    elif flt.labels == "labelled":
        sql += " AND EXISTS (SELECT 1 FROM annotations a WHERE a.input_id = i.id)"
    for name, value in ((flt.positive_for, 1), (flt.negative_for, -1)):
        if name:
            sql += (
                " AND EXISTS (SELECT 1 FROM annotations a JOIN concepts c ON c.id = a.concept_id"
                " WHERE a.input_id = i.id AND c.name = ? AND a.value = ?)"
            )
            params += [validate_concept_name(name), value]
    sql += " ORDER BY id DESC" if flt.order == "newest" else " ORDER BY id"
    return [int(r[0]) for r in project.store.query(sql, params)]


def list_gallery(project: Project, flt: GalleryFilter = GalleryFilter(), page: int = 0, page_size: int = 24) -> GalleryPage:
    """One page of inputs matching ``flt``, with labels and the active model's predictions."""
    ids = _filtered_ids(project, flt)
    by_score = bool(flt.predicted) or flt.order == "least certain"
    if by_score:
        # Filtering or ordering by the model needs the scores of every input the filter keeps.
        scores = score_stored_inputs(project, input_ids=ids)
        if flt.predicted:
            ids = [i for i in ids if scores.top.get(i, (None,))[0] == flt.predicted]
        if flt.order == "least certain" and scores.certainty:
            ids.sort(key=lambda i: scores.certainty.get(i, 2.0))
    pages = max(1, -(-len(ids) // page_size))
    page = min(max(page, 0), pages - 1)
    shown = ids[page * page_size : (page + 1) * page_size]
    if not by_score:
        scores = score_stored_inputs(project, input_ids=shown)  # only this page's
    records = project.store.get_inputs(shown)
    labels = project.store.labels_of_inputs(records)
    items = [
        GalleryItem(records[i], labels[i], *scores.top.get(i, (None, None)), scores.certainty.get(i))
        for i in shown
        if i in records  # deleted meanwhile
    ]
    return GalleryPage(items, len(ids), page, pages)


def describe_input_name(name: str) -> str:
    """An input's name as the studio shows it to visitors.

    Names start at the folder or file that was ingested (``photos/cats/a.jpg``); inputs stored before
    that kept the full local path, and show only its last folder and file (``…/cats/a.jpg``).
    """
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive:
        parts = [part for part in re.split(r"[\\/]", name) if part and not part.endswith(":")]
        return "…/" + "/".join(parts[-2:])
    return name


def label_inputs(project: Project, input_ids: list[int], concept: str, value: int | None) -> int:
    """Label inputs positive (+1) or negative (-1) for a concept, creating it if new; None removes labels.

    In a project of one concept per input a positive label replaces the input's other positive labels.

    Returns:
        How many inputs were labelled.
    """
    if value not in (1, -1, None):
        raise ValueError(f"label value must be 1, -1 or None, not {value!r}")
    require(project, Action.LABEL)
    if value is None and len(input_ids) > 1:
        record("remove labels", project, f"removed the '{concept}' label from {len(input_ids)} inputs")
    cid = project.store.ensure_concepts([concept])[validate_concept_name(concept)]
    if project.exclusive and value == 1:
        project.store.set_only_positive(input_ids, cid)
    else:
        project.store.set_labels(input_ids, cid, value)
    return len(input_ids)


def find_rival_labels(project: Project, input_ids: list[int], concept: str) -> dict[str, list[int]]:
    """Among ``input_ids``, those labelled positive for another concept: concept -> ids (to ask before relabelling)."""
    key = make_name_key(validate_concept_name(concept))
    rivals: dict[str, list[int]] = {}
    for input_id, labels in project.store.labels_of_inputs(input_ids).items():
        for other, value in labels.items():
            if value > 0 and make_name_key(other) != key:
                rivals.setdefault(other, []).append(input_id)
    return rivals


def load_thumbnail(project: Project, record: InputRecord, size: int = 256) -> bytes | None:
    """A JPEG thumbnail of an image, or a video's poster frame; None for texts or unreadable files.

    Thumbnails are cached beside the project's originals after the first request.
    """
    if record.kind == "text":
        return None
    path = project.root / "thumbs" / f"{record.sha256}-{size}.jpg"
    if path.exists():
        return path.read_bytes()
    try:
        data = project.store.read_blob(record)
        if record.kind == "image":
            image = decode_image(data, record.name, min_side=size)
            if "face" in record.info:  # a face: its part of the photo it was found in
                image = crop_face(image, record.info)
        else:
            duration = float(record.info.get("duration") or 0)
            config = VideoConfig(fps=2 / duration if duration > 1 else 1.0, max_frames=2)
            image = sample_frames(data, record.name, config, suffix=record.suffix, min_side=size).images[-1]
    except (InputError, OSError) as e:
        log.warning("no thumbnail for %s: %s", record.name, e)
        return None
    buffer = io.BytesIO()
    make_thumbnail(image, size).save(buffer, format="JPEG", quality=85)
    try:
        write_file_atomically(path, buffer.getvalue())
    except OSError as e:  # a read-only disk only costs the cache
        log.warning("could not cache thumbnail %s: %s", path, e)
    return buffer.getvalue()


def crop_face(image, info: dict):
    """The part of a photo around a stored face's box (half its size again on each side), in the decoded image's scale."""
    scale = image.width / (info.get("width") or image.width)
    left, top, right, bottom = (v * scale for v in info["face"]["box"])
    margin = (right - left) / 2
    box = (max(0, left - margin), max(0, top - margin), min(image.width, right + margin), min(image.height, bottom + margin))
    return image.crop(tuple(round(v) for v in box))


def preview_text(record: InputRecord, lines: int = 3, width: int = 200) -> str:
    """The first lines of a text input, shortened for a gallery card."""
    text = record.text or ""
    head = "\n".join(text.splitlines()[:lines])
    return head if len(head) <= width else head[: width - 1].rstrip() + "…"


def count_labels(project: Project) -> dict[str, tuple[int, int]]:
    """Per concept, in the project's order: how many inputs are labelled positive and negative for it."""
    concepts = project.store.list_concepts()
    counts = {cid: [0, 0] for cid, _ in concepts}
    for _, cid, value in project.store.load_annotations():
        if cid in counts:
            counts[cid][0 if value > 0 else 1] += 1
    return {name: (counts[cid][0], counts[cid][1]) for cid, name in concepts}


@dataclass(frozen=True)
class Moment:
    """A moment of a video where a concept scored high, with the frame shown then."""

    time: float
    score: float
    image: Image.Image


def pick_top_moments(times: list[float], scores: list[float], n: int = 3, min_gap_s: float = 2.0) -> list[tuple[float, float]]:
    """The ``n`` best (time, score) pairs, best first, at least ``min_gap_s`` apart.

    Neighbouring frames of one scene score alike; the gap makes the moments show different scenes.
    """
    chosen: list[tuple[float, float]] = []
    for i in sorted(range(len(times)), key=lambda i: (-scores[i], times[i])):
        if len(chosen) >= n:
            break
        if all(abs(times[i] - t) >= min_gap_s for t, _ in chosen):
            chosen.append((float(times[i]), float(scores[i])))
    return chosen


def load_video_moments(
    data: bytes, name: str, suffix: str, frames: FrameScores, concept: str, n: int = 3, video: VideoConfig = VideoConfig(), size: int = 320
) -> list[Moment]:
    """The frames of a video at the moments a concept scored highest (from a prediction's frame scores).

    The video is sampled again with the same settings as the prediction, so frames and scores line up.

    Raises:
        InputError: the video cannot be decoded.
    """
    scores = frames.scores.get(concept)
    if not scores:
        return []
    picked = pick_top_moments(frames.times, scores, n)
    sampled = sample_frames(data, name, video, suffix=suffix, min_side=size)
    moments = []
    for t, score in picked:
        nearest = min(range(len(sampled.times)), key=lambda i: abs(sampled.times[i] - t))
        moments.append(Moment(t, score, make_thumbnail(sampled.images[nearest], size)))
    return moments
