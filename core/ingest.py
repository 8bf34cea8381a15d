"""Ingest: read inputs, embed the new ones, store them with their labels.

Streams in small batches, so memory stays flat however many files come in, and
each batch is committed on its own: a crash loses at most the batch in flight.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

import numpy as np

from .embedders import Embedder
from .errors import ConceptError, InputError
from .media import RawInput, VideoConfig, decode_image, sample_frames
from .projects import Project
from .store import NewInput, validate_concept_name

log = logging.getLogger(__name__)

BATCH_SIZE = 32


@dataclass(frozen=True)
class EmbeddedInput:
    """A decoded, embedded input: what both ingest and prediction work from."""

    raw: RawInput
    space: str
    vector: np.ndarray
    info: dict = field(default_factory=dict)
    frame_times: list[float] = field(default_factory=list)
    frame_vectors: np.ndarray | None = None


@dataclass
class IngestReport:
    """What an ingest did: ids of new inputs, how many were already stored, labels, failures."""

    added: list[int] = field(default_factory=list)
    already_stored: list[int] = field(default_factory=list)
    labelled: int = 0
    failed: list[InputError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def seen(self) -> int:
        return len(self.added) + len(self.already_stored) + len(self.failed)


IngestProgress = Callable[[IngestReport, str], None]


def embed_inputs(embedder: Embedder, raws: list[RawInput], video: VideoConfig = VideoConfig()) -> list[EmbeddedInput | InputError]:
    """Decode and embed a batch; each result is in the same position as its input.

    Images and texts are embedded in one call each; a video's frames in one call,
    its own vector being the normalised mean of its frames.
    """
    results: list[EmbeddedInput | InputError | None] = [None] * len(raws)
    images, image_slots, texts, text_slots = [], [], [], []
    min_side = embedder.image_size
    for slot, raw in enumerate(raws):
        try:
            if raw.kind == "image":
                image = decode_image(raw.data, raw.name, min_side=min_side)
                images.append(image)
                width, height = image.info.get("original_size", image.size)
                image_slots.append((slot, {"width": width, "height": height}))
            elif raw.kind == "text":
                texts.append(raw.text or "")
                text_slots.append(slot)
            else:
                results[slot] = _embed_video(embedder, raw, video, min_side)
        except InputError as e:
            results[slot] = e
    if images:
        vectors = embedder.embed_images(images)
        for (slot, info), vector in zip(image_slots, vectors):
            results[slot] = EmbeddedInput(raws[slot], embedder.image_space, vector, info)
    if texts:
        vectors = embedder.embed_texts(texts)
        for slot, text, vector in zip(text_slots, texts, vectors):
            results[slot] = EmbeddedInput(raws[slot], embedder.text_space, vector, {"chars": len(text)})
    return results  # type: ignore[return-value]


def _embed_video(embedder: Embedder, raw: RawInput, video: VideoConfig, min_side: int | None) -> EmbeddedInput:
    frames = sample_frames(raw.data, raw.name, video, suffix=raw.suffix, min_side=min_side)
    vectors = embedder.embed_images(frames.images)
    mean = vectors.mean(axis=0)
    mean /= np.linalg.norm(mean) or 1.0
    info = {"duration": frames.duration, "width": frames.width, "height": frames.height, "frames": len(frames.times)}
    return EmbeddedInput(raw, embedder.image_space, mean.astype(np.float32), info, list(frames.times), vectors)


def ingest(
    project: Project,
    items: Iterable[RawInput | InputError],
    concept: str | None = None,
    negative: bool = False,
    video: VideoConfig = VideoConfig(),
    progress: IngestProgress | None = None,
) -> IngestReport:
    """Add inputs to a project: new bytes are embedded and stored, known bytes only get labels.

    Args:
        project: where to store.
        items: from ``media.read_inputs`` / ``read_texts``; InputErrors are recorded as failures.
        concept: label every input positive (or negative, with ``negative``) for this concept;
            otherwise each input's own ``concept`` (folder name, label column) is used.
        video: frame sampling for videos.
        progress: called after each batch with the report so far and a message.

    Returns:
        The report; failures never stop the batch and never touch what is stored.
    """
    started = time.perf_counter()
    report = IngestReport()
    store = project.store
    embedder = project.embedder()
    value = -1 if negative else 1
    forced = validate_concept_name(concept) if concept else None
    for batch in _batches(items, BATCH_SIZE):
        raws = []
        for item in batch:
            if not isinstance(item, InputError) and item.concept and not forced:
                try:
                    validate_concept_name(item.concept)
                except ConceptError as e:
                    item = InputError(item.name, str(e))
            if isinstance(item, InputError):
                report.failed.append(item)
                log.warning("%s", item)
            else:
                raws.append(item)
        # The same bytes twice in one batch are one input.
        unique = list({raw.sha256: raw for raw in raws}.values())
        known = store.find_input_ids(raw.sha256 for raw in unique)
        fresh = [raw for raw in unique if raw.sha256 not in known]
        new_items, ok_shas = [], set(known)
        for result in embed_inputs(embedder, fresh, video):
            if isinstance(result, InputError):
                report.failed.append(result)
                log.warning("%s", result)
                continue
            new_items.append(_to_new_input(result))
            ok_shas.add(result.raw.sha256)
        labels = _labels_for(store, raws, ok_shas, forced, value)
        ids = store.add_inputs(new_items, labels)
        report.added += [ids[item.sha256] for item in new_items]
        report.already_stored += [known[raw.sha256] for raw in unique if raw.sha256 in known]
        report.labelled += sum(len(pairs) for pairs in labels.values())
        if progress:
            progress(report, f"{report.seen} inputs read")
    report.seconds = time.perf_counter() - started
    log.info(
        "ingested into %s: %d added, %d already stored, %d failed",
        project.name,
        len(report.added),
        len(report.already_stored),
        len(report.failed),
    )
    return report


def _labels_for(store, raws: list[RawInput], ok_shas: set[str], forced: str | None, value: int) -> dict[str, list[tuple[int, int]]]:
    wanted = [(raw.sha256, forced or raw.concept) for raw in raws if raw.sha256 in ok_shas and (forced or raw.concept)]
    if not wanted:
        return {}
    ids = store.ensure_concepts({name for _, name in wanted})
    labels: dict[str, list[tuple[int, int]]] = {}
    for sha, name in wanted:
        labels.setdefault(sha, []).append((ids[validate_concept_name(name)], value if forced else 1))
    return labels


def _to_new_input(e: EmbeddedInput) -> NewInput:
    return NewInput(
        sha256=e.raw.sha256,
        kind=e.raw.kind,
        name=e.raw.name,
        suffix=e.raw.suffix,
        data=e.raw.data,
        space=e.space,
        vector=e.vector,
        text=e.raw.text,
        info=e.info,
        frame_times=e.frame_times,
        frame_vectors=e.frame_vectors,
    )


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
