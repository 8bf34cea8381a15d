"""Ingest: read inputs, embed the new ones, store them with their labels.

Streams in small batches, so memory stays flat however many files come in, and
each batch is committed on its own: a crash loses at most the batch in flight.

With an embedder of faces (``faces``) each face found is its own input: a photo becomes one
``EmbeddedInput`` whose ``faces`` are what is stored (``team.jpg#face1``, ``team.jpg#face2``, each with
its box), a video one per face of each sampled frame (``clip.mp4@2.5s#face1``). A face's key is the
photo's hash with its box (``face_key``), so ingesting the photo again finds its faces and adds none.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import islice

import numpy as np
from PIL import Image

from core.access import Action, require
from core.embedding import Embedder, splits_into_faces
from core.errors import ConceptError, InputError
from core.inputs import RawInput, VideoConfig, decode_image, open_video
from core.storage.concepts import validate_concept_name
from core.storage.inputs import NewInput
from core.storage.projects import Project

log = logging.getLogger(__name__)

BATCH_SIZE = 32
# A video's frames are embedded this many at a time while ffmpeg decodes the next ones; the
# first batch is small so the model starts while ffmpeg is still decoding.
VIDEO_BATCH_SIZE = 32
VIDEO_FIRST_BATCH = 8
# A face smaller than this (the shorter side of its box, in the photo's pixels) is refused: the
# face ResNet was trained on faces of about 150 px, and below this its vectors stop telling people apart.
MIN_FACE_PX = 40


@dataclass(frozen=True)
class EmbeddedInput:
    """A decoded, embedded input: what both ingest and prediction work from."""

    raw: RawInput
    space: str
    vector: np.ndarray
    info: dict = field(default_factory=dict)
    frame_times: list[float] = field(default_factory=list)
    frame_vectors: np.ndarray | None = None
    # An embedder of faces: each face found, as an input of its own (the input itself is not stored),
    # and the faces refused (too small), each as its own error.
    faces: tuple[EmbeddedInput, ...] = ()
    refused: tuple[InputError, ...] = ()

    @property
    def parts(self) -> tuple[EmbeddedInput, ...]:
        """What is stored or predicted for this input: its faces, or else itself."""
        return self.faces or (self,)


@dataclass
class IngestReport:
    """What an ingest did: ids of new inputs, how many were already stored, labels, failures."""

    added: list[int] = field(default_factory=list)
    already_stored: list[int] = field(default_factory=list)
    labelled: int = 0
    failed: list[InputError] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what went in but not as the person may have meant

    @property
    def seen(self) -> int:
        return len(self.added) + len(self.already_stored) + len(self.failed)


def note_missing_folder_labels(report: IngestReport, labels_from_folders: bool) -> IngestReport:
    """Add a note to ``report`` when folder names were to be concepts but no input was in a folder: nothing got a label."""
    if labels_from_folders and report.labelled == 0 and (report.added or report.already_stored):
        report.notes.append(
            "no input was in a subfolder, so none got a concept from a folder name: "
            "put each concept's files in a folder named after it (cats/a.jpg, dogs/b.jpg)"
        )
    return report


IngestProgress = Callable[[IngestReport, str], None]


@dataclass(frozen=True)
class DecodedInput:
    """An input ready for the model: its decoded image (or None for texts and not-yet-read videos)."""

    raw: RawInput
    image: Image.Image | None = None
    info: dict = field(default_factory=dict)
    prepared: object = None  # the image after ``Embedder.prepare_images``, when that ran ahead of the model


def decode_inputs(raws: list[RawInput], min_side: int | None) -> list[DecodedInput | InputError]:
    """Decode the images of a batch (videos are decoded when embedded, one at a time, to bound memory)."""
    decoded: list[DecodedInput | InputError] = []
    for raw in raws:
        if raw.kind != "image":
            decoded.append(DecodedInput(raw))
            continue
        try:
            image = decode_image(raw.data, raw.name, min_side=min_side)
        except InputError as e:
            decoded.append(e)
            continue
        width, height = image.info.get("original_size", image.size)
        decoded.append(DecodedInput(raw, image, {"width": width, "height": height}))
    return decoded


def prepare_decoded(embedder: Embedder, batch: list[DecodedInput | InputError]) -> list[DecodedInput | InputError]:
    """Run the embedder's per-image preparation on a decoded batch now, so ``embed_decoded`` runs only the model.

    A server calls this in each request's own thread: the resizing of many requests' photos runs side by
    side, while one thread feeds the model batches of what is ready.
    """
    slots = [slot for slot, item in enumerate(batch) if isinstance(item, DecodedInput) and item.image is not None]
    prepared = embedder.prepare_images([batch[slot].image for slot in slots])
    out = list(batch)
    for slot, ready in zip(slots, prepared, strict=True):
        out[slot] = replace(batch[slot], image=None, prepared=ready)  # the pixels are not needed any more
    return out


def embed_decoded(
    embedder: Embedder, batch: list[DecodedInput | InputError], video: VideoConfig = VideoConfig()
) -> list[EmbeddedInput | InputError]:
    """Embed a decoded batch; each result is in the same position as its input.

    Images and texts are embedded in one call each; a video's frames in one call,
    its own vector being the normalised mean of its frames.
    """
    results: list[EmbeddedInput | InputError] = list(batch)  # errors stay where they are
    if embedder.finds_faces:
        return _embed_faces_of(embedder, batch, video)
    images = [(slot, item) for slot, item in enumerate(batch) if isinstance(item, DecodedInput) and item.raw.kind == "image"]
    ready = [(slot, item) for slot, item in images if item.prepared is not None]
    images = [(slot, item) for slot, item in images if item.prepared is None]
    if ready:
        vectors = embedder.embed_prepared_images([item.prepared for _, item in ready])
        for (slot, item), vector in zip(ready, vectors):
            results[slot] = EmbeddedInput(item.raw, embedder.image_space, vector, item.info)
    texts = [(slot, item) for slot, item in enumerate(batch) if isinstance(item, DecodedInput) and item.raw.kind == "text"]
    if images:
        vectors = embedder.embed_images([item.image for _, item in images])
        for (slot, item), vector in zip(images, vectors):
            results[slot] = EmbeddedInput(item.raw, embedder.image_space, vector, item.info)
    if texts:
        vectors = embedder.embed_texts([item.raw.text or "" for _, item in texts])
        for (slot, item), vector in zip(texts, vectors):
            results[slot] = EmbeddedInput(item.raw, embedder.text_space, vector, {"chars": len(item.raw.text or "")})
    for slot, item in enumerate(batch):
        if isinstance(item, DecodedInput) and item.raw.kind == "video":
            try:
                results[slot] = _embed_video(embedder, item.raw, video, embedder.image_size)
            except InputError as e:
                results[slot] = e
    return results


def _embed_faces_of(embedder: Embedder, batch: list[DecodedInput | InputError], video: VideoConfig) -> list[EmbeddedInput | InputError]:
    """``embed_decoded`` for an embedder of faces: every face of every photo and video frame, embedded in one call."""
    results: list[EmbeddedInput | InputError] = list(batch)
    found: dict[int, tuple[list[tuple[RawInput, dict, object]], list[InputError], dict]] = {}
    for slot, item in enumerate(batch):
        if not isinstance(item, DecodedInput):
            continue
        raw = item.raw
        try:
            if raw.kind == "text":
                raise InputError(raw.name, f"embedder '{embedder.spec}' has no text space: it finds faces in photos and videos, not texts")
            if raw.kind == "image":
                image = item.image if item.image is not None else item.prepared
                faces, refused = _keep_faces(raw, embedder.find_faces(image), image.size, item.info)
                info = dict(item.info)
            else:
                faces, refused, info = _find_video_faces(embedder, raw, video)
        except InputError as e:
            results[slot] = e
            continue
        if not faces:
            results[slot] = _no_usable_face(raw, refused, info)
            continue
        found[slot] = (faces, refused, info)
    everything = [face for faces, _, _ in found.values() for _, _, face in faces]
    vectors = iter(embedder.embed_faces(everything) if everything else ())
    for slot, (faces, refused, info) in found.items():
        parts = tuple(EmbeddedInput(face_raw, embedder.image_space, next(vectors), face_info) for face_raw, face_info, _ in faces)
        largest = max(parts, key=lambda part: part.info["face"]["size"])
        info = {**info, "faces": len(parts)}
        results[slot] = EmbeddedInput(batch[slot].raw, embedder.image_space, largest.vector, info, faces=parts, refused=tuple(refused))
    return results


def face_key(source_sha256: str, box: tuple[int, int, int, int], time_s: float | None = None) -> str:
    """The stored key of a face: the file's hash, the frame's time for a video, and the box (same photo, same faces)."""
    at = "" if time_s is None else f"@{time_s:.3f}"
    return hashlib.sha256(f"{source_sha256}{at}#face:{','.join(map(str, box))}".encode()).hexdigest()


def _keep_faces(
    raw: RawInput, faces: list, size: tuple[int, int], info: dict, frame: tuple[float, bytes, str] | None = None
) -> tuple[list[tuple[RawInput, dict, object]], list[InputError]]:
    """The usable faces found in one image of ``size`` as (raw, info, face) to store, and the faces refused (too small).

    ``frame``, for a video frame: (time, the frame as a JPEG, that JPEG's hash), which is then the faces' original.
    """
    width, height = size
    scale = info.get("width", width) / width  # the box in the file's own pixels (after a reduced decode)
    base = raw.stored_name or raw.name
    time_s = None if frame is None else frame[0]
    at = "" if frame is None else f"@{frame[0]:.1f}s"
    kept, refused = [], []
    for number, face in enumerate(faces, start=1):
        box = tuple(round(v * scale) for v in face.box)
        side = min(box[2] - box[0], box[3] - box[1])
        suffix = f"{at}#face{number}"
        if side < MIN_FACE_PX:
            refused.append(InputError(f"{raw.name}{suffix}", f"face too small to trust: {side} px, at least {MIN_FACE_PX} px"))
            continue
        key = face_key(raw.sha256, box, time_s)
        face_info = {
            "face": {"box": list(box), "size": side, "number": number, "of": len(faces)},
            "source": base,
            "source_sha256": raw.sha256,
            "width": info.get("width", width),
            "height": info.get("height", height),
        }
        if frame is None:
            face_raw = replace(raw, name=f"{raw.name}{suffix}", stored_name=f"{base}{suffix}", sha256=key)
            face_info["blob_sha256"] = raw.sha256
        else:
            face_info["time"] = round(frame[0], 3)
            face_info["blob_sha256"] = frame[2]
            names = {"name": f"{raw.name}{suffix}", "stored_name": f"{base}{suffix}"}
            face_raw = replace(raw, **names, sha256=key, kind="image", data=frame[1], suffix=".jpg")
        kept.append((face_raw, face_info, face))
    return kept, refused


def _find_video_faces(embedder: Embedder, raw: RawInput, video: VideoConfig) -> tuple[list, list[InputError], dict]:
    """The faces of every sampled frame of a video, each frame's time in its faces' names and info."""
    seen: list[tuple[int, tuple[int, int], list, bytes]] = []  # (frame number, size, faces, the frame as a JPEG)
    count = 0
    with open_video(raw.data, raw.name, video, suffix=raw.suffix, min_side=None) as stream:
        for images in stream.batches(VIDEO_BATCH_SIZE, first=VIDEO_FIRST_BATCH):
            for image in images:
                found = embedder.find_faces(image)
                if found:  # only a frame with faces is kept, and as a JPEG, not as pixels
                    jpeg = io.BytesIO()
                    image.save(jpeg, format="JPEG", quality=92)
                    seen.append((count, image.size, found, jpeg.getvalue()))
                count += 1
    times = stream.times  # complete once every frame is read
    faces: list = []
    refused: list[InputError] = []
    for number, size, found, data in seen:
        frame = (float(times[number]), data, hashlib.sha256(data).hexdigest())
        kept, small = _keep_faces(raw, found, size, {}, frame)
        faces += kept
        refused += small
    info = {"duration": stream.duration, "width": stream.width, "height": stream.height, "frames": count}
    return faces, refused, info


def _no_usable_face(raw: RawInput, refused: list[InputError], info: dict) -> InputError:
    """The one error of an input without a face to keep: none found, or every one too small."""
    where = " in any sampled frame" if raw.kind == "video" else ""
    if not refused:
        return InputError(raw.name, f"no face found{where}")
    first = refused[0].reason
    more = f" (and {len(refused) - 1} more too small)" if len(refused) > 1 else ""
    return InputError(raw.name, f"{first}{more}")


def embed_inputs(embedder: Embedder, raws: list[RawInput], video: VideoConfig = VideoConfig()) -> list[EmbeddedInput | InputError]:
    """Decode and embed a batch; each result is in the same position as its input."""
    return embed_decoded(embedder, decode_inputs(raws, embedder.image_size), video)


def _embed_video(embedder: Embedder, raw: RawInput, video: VideoConfig, min_side: int | None) -> EmbeddedInput:
    """Embed a video's sampled frames batch by batch as ffmpeg delivers them; its vector is their normalised mean."""
    with open_video(raw.data, raw.name, video, suffix=raw.suffix, min_side=min_side) as stream:
        vectors = np.concatenate([embedder.embed_images(images) for images in stream.batches(VIDEO_BATCH_SIZE, first=VIDEO_FIRST_BATCH)])
    mean = vectors.mean(axis=0)
    mean /= np.linalg.norm(mean) or 1.0
    info = {"duration": stream.duration, "width": stream.width, "height": stream.height, "frames": len(stream.times)}
    return EmbeddedInput(raw, embedder.image_space, mean.astype(np.float32), info, list(stream.times), vectors)


@dataclass
class _Prepared:
    """One batch after the reading stage: failures, inputs to label, and new inputs decoded."""

    failed: list[InputError]
    raws: list[RawInput]
    known: dict[str, int]
    fresh: list[DecodedInput | InputError]


def _prepare(
    batch: list[RawInput | InputError], store, forced: str | None, min_side: Callable[[], int | None], faces: bool = False
) -> _Prepared:
    failed, raws = [], []
    for item in batch:
        if not isinstance(item, InputError) and item.concept and not forced:
            try:
                validate_concept_name(item.concept)
            except ConceptError as e:
                item = InputError(item.name, str(e))
        if isinstance(item, InputError):
            failed.append(item)
        else:
            raws.append(item)
    # The same bytes twice in one batch are one input.
    unique = list({raw.sha256: raw for raw in raws}.values())
    known = store.find_input_ids(raw.sha256 for raw in unique)
    if faces:
        # A photo stored as its faces: known by its faces, which are what gets labelled and reported.
        stored_faces = store.find_faces_of(raw.sha256 for raw in unique if raw.sha256 not in known)
        known.update({key: input_id for found in stored_faces.values() for key, input_id in found})
        new_raws = [raw for raw in unique if raw.sha256 not in known and raw.sha256 not in stored_faces]
        raws = [replace(raw, sha256=key) for raw in raws for key, _ in stored_faces.get(raw.sha256, ())] + [
            raw for raw in raws if raw.sha256 not in stored_faces
        ]
    else:
        new_raws = [raw for raw in unique if raw.sha256 not in known]
    # min_side comes from the embedder: asked for only when something is new, so known bytes load no model.
    fresh = decode_inputs(new_raws, min_side()) if new_raws else []
    return _Prepared(failed, raws, known, fresh)


def _read_ahead(batches: Iterator[list], prepare: Callable[[list], _Prepared]) -> Iterator[_Prepared]:
    """Read and decode the next batch in a worker thread while the caller embeds this one.

    PIL decodes and SQLite reads without holding the GIL, so this overlaps with the model.
    """

    def next_prepared() -> _Prepared | None:
        batch = next(batches, None)
        return None if batch is None else prepare(batch)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="conceptlab-read") as pool:
        future = pool.submit(next_prepared)
        while (prepared := future.result()) is not None:
            future = pool.submit(next_prepared)
            yield prepared


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
    require(project, Action.UPLOAD)
    started = time.perf_counter()
    report = IngestReport()
    store = project.store
    value = -1 if negative else 1
    forced = validate_concept_name(concept) if concept else None
    # Inputs stored by an earlier batch of this run: the reading stage runs a batch ahead,
    # so it cannot have seen them in the store yet.
    stored_now: dict[str, int] = {}
    faces = splits_into_faces(project.embedder_spec)
    prepare = partial(_prepare, store=store, forced=forced, min_side=lambda: project.embedder().image_size, faces=faces)
    for prepared in _read_ahead(_batches(items, BATCH_SIZE), prepare):
        for failure in prepared.failed:
            log.warning("%s", failure)
        report.failed += prepared.failed
        known = {**prepared.known, **{r.sha256: stored_now[r.sha256] for r in prepared.raws if r.sha256 in stored_now}}
        fresh = [d for d in prepared.fresh if isinstance(d, InputError) or d.raw.sha256 not in known]
        new_items, ok_shas, face_raws = [], set(known), []
        for result in embed_decoded(project.embedder(), fresh, video) if fresh else ():
            if isinstance(result, InputError):
                report.failed.append(result)
                log.warning("%s", result)
                continue
            for refused in result.refused:  # a face too small: its own line, the photo's other faces go in
                report.failed.append(refused)
                log.warning("%s", refused)
            for part in result.parts:
                new_items.append(_to_new_input(part))
                ok_shas.add(part.raw.sha256)
            face_raws += [face.raw for face in result.faces]  # labelled as the photo they are in
        labels = _labels_for(store, prepared.raws + face_raws, ok_shas, forced, value)
        stored = store.add_inputs(new_items, labels)
        stored_now.update({item.sha256: stored.ids[item.sha256] for item in new_items})
        report.added += [stored.ids[item.sha256] for item in new_items if item.sha256 in stored.inserted]
        # Known before this batch, or stored by a parallel ingest between our check and our commit.
        report.already_stored += list(
            dict.fromkeys(
                [known[r.sha256] for r in prepared.raws if r.sha256 in known]
                + [stored.ids[item.sha256] for item in new_items if item.sha256 not in stored.inserted]
            )
        )
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
        name=e.raw.stored_name or e.raw.name,
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
