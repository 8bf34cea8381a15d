"""Inputs and their embeddings: rows, content-addressed blobs of the originals, video frames,
and the clean-up of files a killed process left behind.

A face (embedder ``faces``) is an input of its own whose original is the photo it was found in (or,
for a video, the sampled frame as a JPEG): its ``sha256`` is a key made from the photo's hash and the
face's box, and ``info["blob_sha256"]`` names the one blob file all faces of that photo share;
``info["source_sha256"]`` is the hash of the file ingested, so ingesting it again finds its faces.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.access import Action, project_of_store, require_of_store
from core.access.audit import record
from core.disk import as_storage_error, storage_errors, write_file_atomically
from core.errors import StorageError

log = logging.getLogger(__name__)


# A file a killed process left behind (a blob without its row, a ``.tmp-*`` file, a version file never
# registered) is removed once it is this old; younger ones may belong to a writer that is still running.
ORPHAN_MIN_AGE_S = 15 * 60
_CLEANUP_MARKER = ".last-cleanup"
_BLOB_NAME = re.compile(r"^([0-9a-f]{64})(\.[A-Za-z0-9]{1,10})?$")


@dataclass(frozen=True)
class InputRecord:
    """One stored input, as the pages and the command line see it."""

    id: int
    sha256: str
    kind: str
    name: str
    suffix: str
    created_at: float
    text: str | None = None
    info: dict = field(default_factory=dict)

    @property
    def blob_sha256(self) -> str:
        """The hash naming this input's original file: its own, or for a face the photo (or frame) it is in."""
        return self.info.get("blob_sha256") or self.sha256

    @property
    def is_its_own_text(self) -> bool:
        """True for a text kept in the database alone (no file in ``blobs/``): its UTF-8 text is its original."""
        return self.kind == "text" and self.text is not None and hashlib.sha256(self.text.encode("utf-8")).hexdigest() == self.sha256


@dataclass(frozen=True)
class NewInput:
    """An input ready to be stored: its bytes, embedding and optional video frames."""

    sha256: str
    kind: str
    name: str
    suffix: str
    data: bytes
    space: str
    vector: np.ndarray
    text: str | None = None
    info: dict = field(default_factory=dict)
    frame_times: list[float] = field(default_factory=list)
    frame_vectors: np.ndarray | None = None

    @property
    def blob_sha256(self) -> str:
        """The hash naming the file ``data`` is kept in: ``sha256``, or for a face its photo's (shared by its faces)."""
        return self.info.get("blob_sha256") or self.sha256


def _is_its_own_text(item: NewInput) -> bool:
    """True for a text whose original bytes are its stored text in UTF-8: no file needed to keep them."""
    return item.kind == "text" and item.text is not None and item.data == item.text.encode("utf-8")


def _to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


@dataclass(frozen=True)
class AddedInputs:
    """What ``add_inputs`` stored: an id for every item, and which of them this call inserted.

    An item missing from ``inserted`` was stored first by another writer (a parallel ingest of the
    same bytes) or earlier: it is already stored, not added, whatever the caller believed.
    """

    ids: dict[str, int]
    inserted: frozenset[str]


class InputRows:
    """The inputs, embeddings and frames of a ``Store`` (mixed into it; uses its connection)."""

    def blob_path(self, sha256: str, suffix: str) -> Path:
        return self.root / "blobs" / sha256[:2] / f"{sha256}{suffix}"

    def find_input_ids(self, sha256s: Iterable[str]) -> dict[str, int]:
        """Map the given content hashes to the ids of inputs already stored."""
        return dict(self.query_in("SELECT sha256, id FROM inputs WHERE sha256 IN ({marks})", sha256s))

    def find_faces_of(self, source_sha256s: Iterable[str]) -> dict[str, list[tuple[str, int]]]:
        """The faces stored from the given files (by the files' hashes): hash -> [(face key, input id)], by id."""
        sql = f"SELECT {_SOURCE}, sha256, id FROM inputs WHERE {_SOURCE} IN ({{marks}}) ORDER BY id"
        found: dict[str, list[tuple[str, int]]] = {}
        for source, key, input_id in self.query_in(sql, source_sha256s):
            found.setdefault(source, []).append((key, int(input_id)))
        return found

    def add_inputs(self, items: list[NewInput], labels: dict[str, list[tuple[int, int]]] | None = None) -> AddedInputs:
        """Store inputs with their embeddings (and optional labels) in one transaction.

        Originals are written to content-addressed files first; a crash after that but
        before the commit only leaves an unreferenced file, never a row without data. A text
        whose stored text is its original (a table row, a typed text) gets no file: the
        database row holds it.

        Args:
            items: inputs to add; hashes already stored are skipped.
            labels: sha256 -> [(concept_id, +1 or -1)] to record for these inputs or for inputs
                already stored (a hash no input has is skipped).

        Returns:
            sha256 -> input id for every item (new or already there), and the hashes inserted now.

        Raises:
            StorageError: the disk is full or read-only; nothing of this batch is stored.
        """
        self._write_blobs(items)
        now = time.time()
        ids: dict[str, int] = {}
        inserted: set[str] = set()
        with self.transaction() as conn:
            for item in items:
                row = conn.execute("SELECT id FROM inputs WHERE sha256 = ?", (item.sha256,)).fetchone()
                if row is not None:
                    ids[item.sha256] = row[0]
                    continue
                cur = conn.execute(
                    "INSERT INTO inputs (sha256, kind, name, suffix, created_at, text, info) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (item.sha256, item.kind, item.name, item.suffix, now, item.text, json.dumps(item.info)),
                )
                input_id = int(cur.lastrowid)
                ids[item.sha256] = input_id
                inserted.add(item.sha256)
                conn.execute(
                    "INSERT INTO embeddings (input_id, space, vector) VALUES (?, ?, ?)",
                    (input_id, item.space, _to_blob(item.vector)),
                )
                if item.frame_vectors is not None:
                    conn.executemany(
                        "INSERT INTO frames (input_id, idx, t, vector) VALUES (?, ?, ?, ?)",
                        [(input_id, i, t, _to_blob(v)) for i, (t, v) in enumerate(zip(item.frame_times, item.frame_vectors))],
                    )
            if inserted:
                self._bump_generation(conn)
            for sha, pairs in (labels or {}).items():
                # Inputs stored earlier (by this process or another) are labelled too, not only new ones.
                row = (ids[sha],) if sha in ids else conn.execute("SELECT id FROM inputs WHERE sha256 = ?", (sha,)).fetchone()
                if row is not None:
                    self._annotate(conn, row[0], pairs, now)
        # An orphan sweep (another process) may have removed a reused blob between its check and our
        # commit; now that the rows are committed no sweep will touch these files, so restore any gap.
        self._write_blobs([item for item in items if not self.blob_path(item.blob_sha256, item.suffix).exists()])
        return AddedInputs(ids, frozenset(inserted))

    def _write_blobs(self, items: list[NewInput]) -> None:
        for item in items:
            if _is_its_own_text(item):
                continue
            path = self.blob_path(item.blob_sha256, item.suffix)
            with storage_errors(path.parent):
                try:
                    # Touched, so an orphan sweep sees a file someone is about to reference as fresh.
                    os.utime(path)
                except FileNotFoundError:
                    write_file_atomically(path, item.data)

    def get_input(self, input_id: int) -> InputRecord | None:
        rows = self.query("SELECT id, sha256, kind, name, suffix, created_at, text, info FROM inputs WHERE id = ?", (input_id,))
        return _to_record(rows[0]) if rows else None

    def get_inputs(self, input_ids: Iterable[int]) -> dict[int, InputRecord]:
        """``get_input`` for many ids in one query: id -> record, for those that exist."""
        sql = "SELECT id, sha256, kind, name, suffix, created_at, text, info FROM inputs WHERE id IN ({marks})"
        return {record.id: record for record in map(_to_record, self.query_in(sql, [int(i) for i in input_ids]))}

    def resolve_input_id(self, ref: str | int) -> int | None:
        """Accept an input id or a unique prefix (6+ characters) of its sha256."""
        text = str(ref).strip()
        if text.isdigit():
            rows = self.query("SELECT id FROM inputs WHERE id = ?", (int(text),))
        elif len(text) >= 6:
            rows = self.query("SELECT id FROM inputs WHERE sha256 LIKE ? LIMIT 2", (text.lower() + "%",))
        else:
            rows = []
        return rows[0][0] if len(rows) == 1 else None

    def list_inputs(self, kind: str | None = None, limit: int = -1, offset: int = 0) -> list[InputRecord]:
        sql = "SELECT id, sha256, kind, name, suffix, created_at, text, info FROM inputs"
        params: list = []
        if kind:
            sql += " WHERE kind = ?"
            params.append(kind)
        sql += " ORDER BY id LIMIT ? OFFSET ?"
        return [_to_record(r) for r in self.query(sql, [*params, limit, offset])]

    def count_inputs(self) -> dict[str, int]:
        return dict(self.query("SELECT kind, COUNT(*) FROM inputs GROUP BY kind"))

    def delete_inputs(self, input_ids: Iterable[int]) -> int:
        """Delete inputs, their embeddings, frames and labels; the original files are removed after commit."""
        require_of_store(self, Action.DELETE_INPUTS)
        ids = list(input_ids)
        if ids:
            record("delete inputs", project_of_store(self), f"deleted {len(ids)} inputs")
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        doomed = self.query(f"SELECT coalesce({_BLOB}, sha256), suffix FROM inputs WHERE id IN ({marks})", ids)
        with self.transaction() as conn:
            conn.execute(f"DELETE FROM inputs WHERE id IN ({marks})", ids)
            self._bump_generation(conn)
        self._remove_unreferenced_blobs([self.blob_path(sha, suffix) for sha, suffix in doomed])
        return len(doomed)

    def _remove_unreferenced_blobs(self, paths: list[Path], min_age_s: float = 0.0) -> int:
        """Delete those blob files no input refers to (and older than ``min_age_s``); return how many.

        Runs under the write lock: an ``add_inputs`` that reuses one of these files either committed
        before (its row keeps the file) or commits after and restores the file itself.
        """
        if not paths:
            return 0
        removed = 0
        now = time.time()
        with self.transaction() as conn:
            referenced = set()
            names = [p.name for p in paths]
            for start in range(0, len(names), 500):
                chunk = [_BLOB_NAME.match(n).group(1) for n in names[start : start + 500] if _BLOB_NAME.match(n)]
                marks = ",".join("?" * len(chunk))
                referenced.update(r[0] for r in conn.execute(f"SELECT sha256 FROM inputs WHERE sha256 IN ({marks})", chunk))
                # A photo's file stays while any of its faces refers to it.
                referenced.update(r[0] for r in conn.execute(f"SELECT {_BLOB} FROM inputs WHERE {_BLOB} IN ({marks})", chunk))
            for path in paths:
                match = _BLOB_NAME.match(path.name)
                if match is None or match.group(1) in referenced:
                    continue
                try:
                    if min_age_s and now - path.stat().st_mtime < min_age_s:
                        continue
                    path.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
                except OSError as e:
                    log.warning("could not remove unused file %s: %s", path, e)
        return removed

    def remove_orphans(self, min_age_s: float = ORPHAN_MIN_AGE_S) -> list[Path]:
        """Delete what a killed process may have left behind, if older than ``min_age_s``.

        That is: original files no input refers to, ``.tmp-*`` files in ``blobs/``, ``versions/`` and
        ``index/``, and version files no model version refers to. Younger files are kept: they may
        belong to a writer still at work in another thread or process.

        Returns:
            The paths removed.

        Raises:
            StorageError: the project cannot be written (nothing is removed then).
        """
        now = time.time()

        def old(path: Path) -> bool:
            try:
                return now - path.stat().st_mtime >= min_age_s
            except OSError:
                return False

        removed: list[Path] = []
        candidates: list[Path] = []
        for folder in (self.root / "versions", self.root / "index"):
            candidates += [p for p in _list_files(folder) if p.name.startswith(".tmp-")]
        blob_files = [p for sub in _list_folders(self.root / "blobs") for p in _list_files(sub)]
        candidates += [p for p in blob_files if p.name.startswith(".tmp-")]
        registered = {row[0] for row in self.query("SELECT file FROM versions")}
        candidates += [p for p in _list_files(self.root / "versions") if p.suffix == ".npz" and p.name not in registered]
        for path in candidates:
            if old(path):
                try:
                    path.unlink()
                    removed.append(path)
                except FileNotFoundError:
                    pass
                except OSError as e:
                    translated = as_storage_error(e, path.parent)
                    if translated is not None:
                        raise translated from e
                    log.warning("could not remove %s: %s", path, e)
        stray = [p for p in blob_files if _BLOB_NAME.match(p.name) and old(p)]
        if stray:
            known = {sha for (sha,) in self.query(f"SELECT coalesce({_BLOB}, sha256) FROM inputs")}
            unreferenced = [p for p in stray if _BLOB_NAME.match(p.name).group(1) not in known]
            before = {p for p in unreferenced if p.exists()}
            self._remove_unreferenced_blobs(unreferenced, min_age_s)
            removed += [p for p in before if not p.exists()]
        if removed:
            log.info("removed %d files left behind by an interrupted write in %s", len(removed), self.root)
        return removed

    def remove_orphans_if_due(self, min_age_s: float = ORPHAN_MIN_AGE_S) -> list[Path]:
        """``remove_orphans``, at most once per ``min_age_s / 2`` for a project, and never failing.

        Called whenever a project is opened; a project that cannot be written (read-only data home)
        stays readable, so its failure to clean up is only logged.
        """
        marker = self.root / _CLEANUP_MARKER
        try:
            if time.time() - marker.stat().st_mtime < min_age_s / 2:
                return []
        except OSError:
            pass
        try:
            removed = self.remove_orphans(min_age_s)
            marker.touch()
        except (StorageError, OSError) as e:
            log.info("skipped cleaning up %s: %s", self.root, e)
            return []
        return removed

    def read_blob(self, record: InputRecord) -> bytes:
        """The original bytes of an input (for a text stored without a file, its text's UTF-8 bytes)."""
        if record.is_its_own_text:
            return record.text.encode("utf-8")
        return self.blob_path(record.blob_sha256, record.suffix).read_bytes()

    # -- embeddings --------------------------------------------------------------------

    def spaces(self) -> list[str]:
        return [r[0] for r in self.query("SELECT DISTINCT space FROM embeddings ORDER BY space")]

    def load_embeddings(
        self, space: str, input_ids: Iterable[int] | None = None, after_id: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids int64 (n,), vectors float32 (n, d)) of one space, ordered by id.

        ``input_ids`` keeps only those inputs; ``after_id`` only inputs with a larger id.
        """
        if after_id is not None:
            sql = "SELECT input_id, vector FROM embeddings WHERE space = ? AND input_id > ? ORDER BY input_id"
            rows = self.query(sql, (space, after_id))
        elif input_ids is None:
            rows = self.query("SELECT input_id, vector FROM embeddings WHERE space = ? ORDER BY input_id", (space,))
        else:
            wanted = sorted(set(int(i) for i in input_ids))
            sql = "SELECT input_id, vector FROM embeddings WHERE space = ? AND input_id IN ({marks}) ORDER BY input_id"
            rows = self.query_in(sql, wanted, [space])
        return _unpack(rows)

    def embedding_spaces(self, input_ids: Iterable[int]) -> dict[int, str]:
        return dict(self.query_in("SELECT input_id, space FROM embeddings WHERE input_id IN ({marks})", input_ids))

    def load_frames(self, input_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (times float64 (n,), vectors float32 (n, d)) of a stored video's sampled frames."""
        rows = self.query("SELECT t, vector FROM frames WHERE input_id = ? ORDER BY idx", (input_id,))
        times, vectors = _unpack(rows)
        return times.astype(np.float64), vectors

    # -- concepts and labels -----------------------------------------------------------


# The links of a face to what it was found in (see the module's docstring), read in SQL.
_BLOB = "json_extract(info, '$.blob_sha256')"
_SOURCE = "json_extract(info, '$.source_sha256')"


def _list_files(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return [Path(e.path) for e in entries if e.is_file(follow_symlinks=False)]
    except OSError:
        return []


def _list_folders(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _to_record(row: tuple) -> InputRecord:
    i, sha, kind, name, suffix, created, text, info = row
    return InputRecord(int(i), sha, kind, name, suffix, created, text, json.loads(info or "{}"))


def _unpack(rows: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    keys = np.array([r[0] for r in rows])
    flat = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4")
    return keys.astype(np.int64) if keys.dtype.kind in "iu" else keys, flat.reshape(len(rows), -1).astype(np.float32)
