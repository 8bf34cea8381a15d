"""The model file: its format, and reading one back with every check made before anything is stored.

A model file is one zip archive: ``manifest.json`` (the embedder, concepts, thresholds, metrics, the
version's own manifest and training report, and a description of every array) plus one numpy ``.npy``
entry per array, the layout of an ``.npz``. Nothing in it is ever unpickled. Arrays are carried through
by name, whatever fields training writes, so a newer version file keeps all of its arrays.

Reading one checks everything before anything is stored: zip safety (entry names, count, sizes,
compression ratio, overlapping entries), the manifest's schema, every array's dtype, shape, size and
checksum, and finally the imported version loads with ``models.load_model`` and scores a query, or it
is not registered at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from core.embedding.specs import describe_dims, describe_spaces
from core.errors import ConceptError, ModelFileError
from core.inputs.archives import describe_zip_bomb
from core.learning.heads import HEAD_KINDS
from core.learning.models import MODEL_FORMAT
from core.names import make_name_key
from core.storage.concepts import validate_concept_name

FILE_FORMAT = "conceptlab-model"
FILE_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
# Example ids that mean nothing in this project (a model from elsewhere): far above any real input id,
# and shifted rather than replaced so they stay sorted, as nearest-neighbour scoring needs.
FOREIGN_ID_OFFSET = 1 << 62
_ARRAY_ENTRY = re.compile(r"^arrays/(\d{1,6})\.npy$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Only plain numbers: never object arrays (pickle), never big-endian surprises.
_DTYPES = frozenset(f"<{k}{n}" for k, ns in (("f", (2, 4, 8)), ("i", (1, 2, 4, 8)), ("u", (2, 4, 8))) for n in ns) | {"|u1", "|i1", "|b1"}
# Arrays of one space holding embedding-sized rows: they must agree on the embedding size.
_VECTOR_ARRAYS = ("weights", "memory", "zero_shot")


@dataclass(frozen=True)
class ExchangeLimits:
    """What a model file may hold; anything beyond is refused before it is unpacked."""

    max_file_bytes: int = 2 * 1024**3
    max_unpacked_bytes: int = 4 * 1024**3
    max_entries: int = 1_000
    max_manifest_bytes: int = 64 * 1024**2
    max_ratio: float = 250.0
    max_ndim: int = 4

    def __post_init__(self) -> None:
        if min(self.max_file_bytes, self.max_unpacked_bytes, self.max_entries, self.max_manifest_bytes, self.max_ndim) < 1:
            raise ValueError(f"ExchangeLimits must be positive: {self}")


@dataclass(frozen=True)
class ModelFile:
    """A model file, read and checked: what it was trained with, and its arrays.

    Attributes:
        embedder: the embedder spec the model needs; a project with another one cannot use it.
        exclusive: whether its concepts are mutually exclusive.
        concepts: the concept names it scores.
        thresholds, metrics: as training recorded them, with thresholds set by hand applied (None when absent).
        threshold_overrides: the thresholds set by hand, by concept name; an import sets them again.
        source: where it came from: ``project``, ``version``, ``created_at``, ``seconds``.
        model: the version file's own manifest (concept ids are the source project's).
        report: the version's training report.
        arrays: every array of the version file, by name.
        examples: per space, the sha256 of each labelled example kept in the model ("" when unknown).
    """

    embedder: str
    exclusive: bool
    concepts: list[str]
    thresholds: Any
    metrics: Any
    source: dict
    model: dict
    report: dict
    arrays: dict[str, np.ndarray] = field(repr=False)
    examples: dict[str, list[str]] = field(default_factory=dict, repr=False)
    threshold_overrides: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportResult:
    """What an import did: the new version number and how its concepts were matched by name."""

    version: int
    concepts: list[str]
    created: list[str]


# -- export ---------------------------------------------------------------------------------


def read_model_file(
    source: bytes | str | os.PathLike[str] | BinaryIO, limits: ExchangeLimits = ExchangeLimits(), name: str | None = None
) -> ModelFile:
    """Read a model file (bytes, a path or a binary stream) and check everything that does not depend on a project.

    ``name`` is what the person knows the file as (an upload's name); a path names itself.

    Raises:
        ModelFileError: the file is not a model file, is damaged, too large, unsafe, or from a newer conceptlab;
            the message names the file when its name is known.
    """
    with naming_errors(source, name):
        return _read_model_file(source, limits)


@contextlib.contextmanager
def naming_errors(source: object, name: str | None) -> Iterator[None]:
    """Put the file's name (``name``, else a path ``source``) in front of a ModelFileError's reason, as an InputError would."""
    if name is None and isinstance(source, str | os.PathLike):
        name = os.fspath(source)
    try:
        yield
    except ModelFileError as e:
        if name is None:
            raise
        raise ModelFileError(f"could not use {name}: {e}") from e


def _read_model_file(source: bytes | str | os.PathLike[str] | BinaryIO, limits: ExchangeLimits) -> ModelFile:
    data = _read_source(source, limits)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ModelFileError("not a conceptlab model file (not a zip archive)") from e
    with archive:
        infos = archive.infolist()
        _check_entries(infos, limits)
        manifest = _read_manifest(archive, limits)
        arrays = _read_arrays(archive, manifest["arrays"], limits)
    _check_model(manifest, arrays)
    return ModelFile(
        embedder=manifest["embedder"],
        exclusive=manifest["exclusive"],
        concepts=list(manifest["concepts"]),
        thresholds=manifest.get("thresholds"),
        metrics=manifest.get("metrics"),
        source=manifest.get("source") if isinstance(manifest.get("source"), dict) else {},
        model=manifest["model"],
        report=manifest["report"],
        arrays=arrays,
        examples=manifest["examples"],
        threshold_overrides=manifest["threshold_overrides"],
    )


def _read_source(source: bytes | str | os.PathLike[str] | BinaryIO, limits: ExchangeLimits) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif hasattr(source, "read"):  # an open file, or an upload object of the page layer
        data = source.read(limits.max_file_bytes + 1)
    else:
        try:
            size = os.path.getsize(source)
            if size > limits.max_file_bytes:
                raise ModelFileError(f"model file too large ({size:,} bytes, limit {limits.max_file_bytes:,})")
            data = Path(source).read_bytes()
        except OSError as e:
            raise ModelFileError(f"cannot read model file ({e.strerror or e})") from e  # read_model_file names the path
    if len(data) > limits.max_file_bytes:
        raise ModelFileError(f"model file too large ({len(data):,} bytes, limit {limits.max_file_bytes:,})")
    if not data:
        raise ModelFileError("the model file is empty")
    return data


def _check_entries(infos: list[zipfile.ZipInfo], limits: ExchangeLimits) -> None:
    if len(infos) > limits.max_entries:
        raise ModelFileError(f"model file has too many entries ({len(infos):,}, limit {limits.max_entries:,})")
    names = [info.filename for info in infos]
    if MANIFEST_NAME not in names:
        # Any zip but ours (a folder of photos zipped): say what it is not, not which entry surprised us.
        raise ModelFileError(f"not a conceptlab model file (a zip without {MANIFEST_NAME})")
    if len(set(names)) != len(names):
        raise ModelFileError("model file has two entries with the same name")
    for info in infos:
        if info.filename != MANIFEST_NAME and not _ARRAY_ENTRY.match(info.filename):
            raise ModelFileError(f"unexpected entry {info.filename[:100]!r} in the model file")
        if info.flag_bits & 0x1:
            raise ModelFileError("model file has an encrypted entry")
        if info.file_size >= 1024**2 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise ModelFileError(f"entry {info.filename} is compressed too much, possibly a zip bomb")
    total = sum(info.file_size for info in infos)
    if total > limits.max_unpacked_bytes:
        raise ModelFileError(f"model file too large when unpacked ({total:,} bytes, limit {limits.max_unpacked_bytes:,})")
    reason = describe_zip_bomb(infos)
    if reason is not None:
        raise ModelFileError(f"model file: {reason}")
    if MANIFEST_NAME not in names:
        raise ModelFileError(f"not a conceptlab model file (no {MANIFEST_NAME})")


def _read_entry(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError, ValueError) as e:
        raise ModelFileError(f"model file is damaged ({name}: {e})") from e


def _read_manifest(archive: zipfile.ZipFile, limits: ExchangeLimits) -> dict:
    if archive.getinfo(MANIFEST_NAME).file_size > limits.max_manifest_bytes:
        raise ModelFileError("model file manifest is too large")
    try:
        manifest = json.loads(_read_entry(archive, MANIFEST_NAME).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ModelFileError(f"model file manifest is not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FILE_FORMAT:
        raise ModelFileError("not a conceptlab model file (its manifest names another format)")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError("model file manifest has no valid format_version")
    if version > FILE_FORMAT_VERSION:
        raise ModelFileError(f"model file is format {version}, made by a newer conceptlab (this one reads up to {FILE_FORMAT_VERSION})")
    _expect(manifest, "embedder", str)
    _expect(manifest, "exclusive", bool)
    _expect(manifest, "concepts", list)
    _expect(manifest, "model", dict)
    _expect(manifest, "report", dict)
    _expect(manifest, "arrays", list)
    manifest.setdefault("examples", {})
    _expect(manifest, "examples", dict)
    manifest.setdefault("threshold_overrides", {})
    _expect(manifest, "threshold_overrides", dict)
    if not manifest["embedder"] or len(manifest["embedder"]) > 1000:
        raise ModelFileError("model file manifest names no valid embedder")
    names = []
    for name in manifest["concepts"]:
        try:
            names.append(validate_concept_name(name) if isinstance(name, str) else validate_concept_name(""))
        except ConceptError as e:
            raise ModelFileError(f"model file has a bad concept name: {e}") from e
    if len({make_name_key(n) for n in names}) != len(names):
        raise ModelFileError("model file names the same concept twice")
    manifest["concepts"] = names
    folded = {make_name_key(n) for n in names}
    for name, value in manifest["threshold_overrides"].items():
        if make_name_key(name) not in folded or not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
            raise ModelFileError(f"model file has a bad threshold for {name[:100]!r}")
    for space, hashes in manifest["examples"].items():
        if not isinstance(hashes, list) or not all(isinstance(h, str) and (h == "" or _SHA256.match(h)) for h in hashes):
            raise ModelFileError(f"model file has malformed example hashes for space {space!r}")
    return manifest


def _read_arrays(archive: zipfile.ZipFile, described: list, limits: ExchangeLimits) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    entries = {info.filename: info for info in archive.infolist() if info.filename != MANIFEST_NAME}
    if len(described) != len(entries):
        raise ModelFileError("model file manifest does not list exactly the arrays it holds")
    total = 0
    for item in described:
        if not isinstance(item, dict):
            raise ModelFileError("model file manifest has a malformed array entry")
        name, entry, dtype, shape, digest = (item.get(k) for k in ("name", "entry", "dtype", "shape", "sha256"))
        if not isinstance(name, str) or not name or len(name) > 1000 or name in arrays or name == "manifest":
            raise ModelFileError("model file manifest has a missing, duplicate or reserved array name")
        if entry not in entries:
            raise ModelFileError(f"model file manifest points array {name!r} at a missing entry")
        if dtype not in _DTYPES:
            raise ModelFileError(f"array {name!r} has type {str(dtype)[:40]!r}, not a plain little-endian number type")
        if not isinstance(shape, list) or len(shape) > limits.max_ndim or not all(isinstance(n, int) and 0 <= n < 2**40 for n in shape):
            raise ModelFileError(f"array {name!r} has a malformed shape")
        nbytes = int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
        total += nbytes
        if total > limits.max_unpacked_bytes:
            raise ModelFileError(f"model file arrays are too large (over {limits.max_unpacked_bytes:,} bytes)")
        array = _load_npy(_read_entry(archive, entry), name, np.dtype(dtype), tuple(shape), nbytes)
        if not isinstance(digest, str) or array_digest(array) != digest:
            raise ModelFileError(f"array {name!r} does not match its checksum (damaged file)")
        arrays[name] = array
    return arrays


def _load_npy(raw: bytes, name: str, dtype: np.dtype, shape: tuple[int, ...], nbytes: int) -> np.ndarray:
    """Parse one ``.npy`` entry by hand: header first, so a lying shape can never make us allocate."""
    stream = io.BytesIO(raw)
    try:
        major, _ = np.lib.format.read_magic(stream)
        reader = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}.get(major)
        if reader is None:
            raise ValueError(f"npy format {major}")
        header_shape, fortran, header_dtype = reader(stream, max_header_size=10_000)
    except (ValueError, SyntaxError, TypeError, OverflowError) as e:
        raise ModelFileError(f"array {name!r} is not a valid .npy entry ({e})") from e
    if tuple(header_shape) != shape or header_dtype != dtype or header_dtype.hasobject:
        raise ModelFileError(f"array {name!r} does not have the type and shape its manifest says")
    body = raw[stream.tell() :]
    if len(body) != nbytes:
        raise ModelFileError(f"array {name!r} holds {len(body):,} bytes, not the {nbytes:,} its shape needs")
    array = np.frombuffer(body, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ModelFileError(f"array {name!r} holds NaN or infinite numbers")
    return array.copy(order="C")


def _check_model(manifest: dict, arrays: dict[str, np.ndarray]) -> None:
    """The version manifest agrees with the arrays and the concept list; dimensions agree per space."""
    model = manifest["model"]
    fmt = model.get("format")
    if not isinstance(fmt, int) or fmt < 1:
        raise ModelFileError("model file's version manifest has no valid format")
    if fmt > MODEL_FORMAT:
        raise ModelFileError(f"model version format {fmt} is newer than this conceptlab reads ({MODEL_FORMAT})")
    if model.get("embedder") != manifest["embedder"] or bool(model.get("exclusive")) != manifest["exclusive"]:
        raise ModelFileError("model file's manifest and version manifest disagree")
    spaces, kinds, names = model.get("spaces"), model.get("kinds"), model.get("concepts")
    if not isinstance(spaces, list) or not spaces or not all(isinstance(s, str) for s in spaces):
        raise ModelFileError("model file has no embedding spaces")
    if not isinstance(kinds, dict) or not isinstance(names, dict):
        raise ModelFileError("model file's version manifest is malformed")
    if sorted(names.values(), key=make_name_key) != sorted(manifest["concepts"], key=make_name_key):
        raise ModelFileError("model file's concept list and version manifest disagree")
    _check_embedder(manifest["embedder"], spaces, arrays)
    for space in spaces:
        ids = arrays.get(f"{space}/concept_ids")
        space_kinds = kinds.get(space)
        if ids is None or ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise ModelFileError(f"model file has no concept ids for space {space!r}")
        if not isinstance(space_kinds, list) or len(space_kinds) != len(ids) or not set(space_kinds) <= set(HEAD_KINDS):
            raise ModelFileError(f"model file's heads for space {space!r} are malformed")
        if not all(str(int(i)) in names for i in ids):
            raise ModelFileError(f"model file scores a concept it does not name, in space {space!r}")
        vectors = [arrays.get(f"{space}/{n}") for n in _VECTOR_ARRAYS]
        if len({a.shape[1] for a in vectors if a is not None and a.ndim == 2 and a.size}) > 1:
            raise ModelFileError(f"model file's arrays for space {space!r} disagree on the embedding size")
        memory_ids = arrays.get(f"{space}/memory_ids")
        # Nearest-neighbour scoring finds examples by binary search over their ids.
        if memory_ids is not None and (
            memory_ids.ndim != 1 or memory_ids.dtype.kind not in "iu" or (memory_ids < 0).any() or (np.diff(memory_ids) <= 0).any()
        ):
            raise ModelFileError(f"model file's example ids for space {space!r} are not increasing non-negative numbers")
        hashes = manifest["examples"].get(space)
        if hashes is not None and (memory_ids is None or len(hashes) != len(memory_ids)):
            raise ModelFileError(f"model file's example hashes for space {space!r} do not match its examples")


def _check_embedder(spec: str, spaces: list[str], arrays: dict[str, np.ndarray]) -> None:
    """The embedder is one conceptlab knows, names no file on this machine, and fits the arrays.

    A tampered file could claim another embedder (its heads would then score nothing) or a local
    checkpoint path (a server or a new project would open that path): both are refused.
    """
    kind, _, rest = spec.partition(":")
    detector_ok = kind != "faces" or rest in ("", "cnn")
    if kind not in ("clip", "lite", "tiny", "faces") or (kind in ("lite", "tiny") and rest) or not detector_ok:
        raise ModelFileError(f"model file names an unknown embedder {spec[:100]!r}")
    weights = rest.partition(":")[2]
    if kind == "clip" and (os.path.isabs(weights) or "/" in weights or "\\" in weights):
        raise ModelFileError(
            "model file was made with a local CLIP checkpoint, which a file may not name: create a project with "
            "--embedder clip:ARCH:/path/to/your/copy of that checkpoint, and import the file into it"
        )
    allowed = set(describe_spaces(spec))
    if not set(spaces) <= allowed:
        raise ModelFileError(f"model file's spaces {sorted(spaces)} are not those of embedder {spec} ({sorted(allowed)})")
    dims = describe_dims(spec)
    for space in spaces if dims else ():
        for name in _VECTOR_ARRAYS:
            array = arrays.get(f"{space}/{name}")
            if array is not None and array.ndim == 2 and array.size and array.shape[1] != dims[space]:
                raise ModelFileError(
                    f"model file's {space} arrays are {array.shape[1]}-d, but embedder {spec}'s embedding size is {dims[space]}"
                )


def _expect(manifest: dict, key: str, kind: type) -> None:
    if not isinstance(manifest.get(key), kind):
        raise ModelFileError(f"model file manifest has no valid {key!r}")


def array_digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(array).tobytes(order="C")).hexdigest()


# -- import ---------------------------------------------------------------------------------
