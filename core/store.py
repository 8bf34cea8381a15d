"""Durable storage of one project: SQLite for rows, content-addressed files for originals.

Layout of a project folder::

    project.db        inputs, embeddings, video frames, concepts, annotations, model versions
    blobs/ab/<sha256><suffix>   original bytes, written once, never modified
    versions/v<N>.npz           trained heads (numpy arrays only, loaded without pickle)
    index/                      FAISS caches, rebuilt from project.db whenever stale

Embeddings live in SQLite next to the rows they belong to, so one transaction
adds an input and its embedding together: a process killed mid-ingest leaves
every finished input complete and no half-written one.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConceptError, ProjectError, StorageError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_BUSY_TIMEOUT_MS = 60_000
# A file a killed process left behind (a blob without its row, a ``.tmp-*`` file, a version file never
# registered) is removed once it is this old; younger ones may belong to a writer that is still running.
ORPHAN_MIN_AGE_S = 15 * 60
_CLEANUP_MARKER = ".last-cleanup"
_BLOB_NAME = re.compile(r"^([0-9a-f]{64})(\.[A-Za-z0-9]{1,10})?$")
# SQLite result codes (by name) that mean the disk, not the query, is the problem.
_STORAGE_CODES = {
    "SQLITE_FULL": "the disk is full (free some space and try again)",
    "SQLITE_READONLY": "it is read-only",
    "SQLITE_CANTOPEN": "its database cannot be opened (missing or no permission)",
    "SQLITE_PERM": "there is no permission to write there",
    "SQLITE_IOERR": "the disk reported an I/O error",
    "SQLITE_BUSY": f"another process kept the project busy for over {_BUSY_TIMEOUT_MS // 1000} s (try again)",
    "SQLITE_LOCKED": f"another process kept the project busy for over {_BUSY_TIMEOUT_MS // 1000} s (try again)",
    "SQLITE_CORRUPT": "its database is damaged",
    "SQLITE_NOTADB": "its database is damaged",
}
_STORAGE_ERRNOS = {
    errno.ENOSPC: "the disk is full (free some space and try again)",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "a file grew larger than this system allows",
    errno.EROFS: "it is read-only",
    errno.EACCES: "there is no permission to write there",
    errno.EPERM: "there is no permission to write there",
    errno.EIO: "the disk reported an I/O error",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inputs (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('image', 'video', 'text')),
    name TEXT NOT NULL,
    suffix TEXT NOT NULL,
    created_at REAL NOT NULL,
    text TEXT,
    info TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS embeddings (
    input_id INTEGER PRIMARY KEY REFERENCES inputs(id) ON DELETE CASCADE,
    space TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS embeddings_space ON embeddings(space);
CREATE TABLE IF NOT EXISTS frames (
    input_id INTEGER NOT NULL REFERENCES inputs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    t REAL NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (input_id, idx)
);
CREATE TABLE IF NOT EXISTS concepts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS annotations (
    input_id INTEGER NOT NULL REFERENCES inputs(id) ON DELETE CASCADE,
    concept_id INTEGER NOT NULL REFERENCES concepts(id) ON DELETE CASCADE,
    value INTEGER NOT NULL CHECK (value IN (1, -1)),
    updated_at REAL NOT NULL,
    PRIMARY KEY (input_id, concept_id)
);
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    file TEXT NOT NULL,
    seconds REAL NOT NULL,
    report TEXT NOT NULL
);
"""

MAX_CONCEPT_NAME = 100


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


def _to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def validate_concept_name(name: str) -> str:
    """Return the stripped concept name, or raise ConceptError saying what is wrong with it."""
    cleaned = " ".join(str(name).split())
    if not cleaned:
        raise ConceptError("a concept needs a name")
    if len(cleaned) > MAX_CONCEPT_NAME:
        raise ConceptError(f"concept name is longer than {MAX_CONCEPT_NAME} characters")
    return cleaned


def as_storage_error(error: BaseException, where: str | os.PathLike[str], doing: str = "write to") -> StorageError | None:
    """The ``StorageError`` that ``error`` amounts to when it comes from the disk, else None.

    Disk full, read-only file system, no permission, I/O errors and a project kept busy past the
    busy timeout are storage errors; a constraint violation or a bad query is not.

    Args:
        error: an ``OSError`` or an ``sqlite3`` error.
        where: the folder or file being used, for the message.
        doing: what was being done there (``"write to"``, ``"read"``), for the message.
    """
    if isinstance(error, StorageError):
        return error
    reason = None
    if isinstance(error, sqlite3.Error) and not isinstance(error, sqlite3.IntegrityError | sqlite3.ProgrammingError):
        # Extended codes (SQLITE_IOERR_WRITE, SQLITE_READONLY_DBMOVED...) share their base code's meaning.
        base = "_".join((getattr(error, "sqlite_errorname", "") or "").split("_")[:2])
        reason = _STORAGE_CODES.get(base)
        if reason is None:  # older SQLite bindings give only the message
            text = str(error).lower()
            if "disk is full" in text:
                reason = _STORAGE_CODES["SQLITE_FULL"]
            elif "readonly" in text or "read-only" in text:
                reason = _STORAGE_CODES["SQLITE_READONLY"]
            elif "disk i/o error" in text:
                reason = _STORAGE_CODES["SQLITE_IOERR"]
            elif "database is locked" in text:
                reason = _STORAGE_CODES["SQLITE_BUSY"]
            elif "unable to open database" in text:
                reason = _STORAGE_CODES["SQLITE_CANTOPEN"]
    elif isinstance(error, OSError):
        reason = _STORAGE_ERRNOS.get(error.errno or -1)
    if reason is None:
        return None
    return StorageError(f"cannot {doing} {os.fspath(where)}: {reason}")


@contextmanager
def _storage_errors(where: str | os.PathLike[str], doing: str = "write to") -> Iterator[None]:
    """Turn disk-level failures inside the block into ``StorageError``; everything else passes through."""
    try:
        yield
    except (OSError, sqlite3.Error) as e:
        translated = as_storage_error(e, where, doing)
        if translated is None:
            raise
        raise translated from e


def write_file_atomically(path: Path, data: bytes) -> None:
    """Write bytes to ``path`` so that a reader sees either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
        raise


class Store:
    """SQLite-backed storage of one project folder; safe to share between threads and processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.db_path = self.root / "project.db"
        if not self.db_path.exists():
            raise ProjectError(f"no project database at {self.db_path}")
        self._local = threading.local()

    # -- connections -------------------------------------------------------------------

    @classmethod
    def initialize(cls, root: Path, meta: dict[str, str]) -> Store:
        """Create the schema in a new folder and record the project's fixed settings.

        Raises:
            StorageError: the folder cannot be written (disk full, read-only, no permission).
        """
        with _storage_errors(root):
            root.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(root / "project.db")
            try:
                conn.executescript(_SCHEMA)
                conn.execute("PRAGMA journal_mode=WAL")
                rows = {**meta, "schema_version": str(SCHEMA_VERSION), "generation": "0"}
                conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", rows.items())
                conn.commit()
            finally:
                conn.close()
        return cls(root)

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread: sqlite3 connections must not be shared across threads.
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with _storage_errors(self.root, "open"):
                try:
                    conn = self._open(str(self.db_path), uri=False)
                except sqlite3.OperationalError:
                    if os.access(self.root, os.W_OK):
                        raise
                    # A read-only folder: SQLite cannot create the WAL index it wants next to the database.
                    # Without a WAL file everything is in the database file itself, which then cannot
                    # change, so "immutable" is exact; with one, read through it.
                    wal = Path(f"{self.db_path}-wal").exists()
                    log.info("%s is read-only: opening its database for reading only", self.root)
                    conn = self._open(f"{self.db_path.resolve().as_uri()}?{'mode=ro' if wal else 'immutable=1'}", uri=True)
            self._local.conn = conn
        return conn

    @staticmethod
    def _open(target: str, uri: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(target, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, uri=uri)
        try:
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("SELECT COUNT(*) FROM meta").fetchone()  # fails here, not later, if it cannot be read
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: everything inside commits together or not at all.

        Raises:
            StorageError: the disk is full or read-only, or another process held the project past the
                busy timeout; the transaction is rolled back, so nothing of it is stored.
        """
        conn = self._connection()
        with _storage_errors(self.root):
            conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            with _storage_errors(self.root):
                conn.execute("COMMIT")
        except BaseException as e:
            # A failed COMMIT (disk full) leaves the transaction open unless rolled back here; SQLite
            # may already have rolled it back itself, and then ROLLBACK has nothing to do.
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            translated = as_storage_error(e, self.root) if isinstance(e, sqlite3.OperationalError) else None
            if translated is not None:
                raise translated from e
            raise

    def query(self, sql: str, params: Iterable = ()) -> list[tuple]:
        """Run a read-only query and return all rows.

        Raises:
            StorageError: the database cannot be read (I/O error, damaged, no permission).
        """
        with _storage_errors(self.root, "read"):
            return self._connection().execute(sql, tuple(params)).fetchall()

    def query_in(self, sql: str, values: Iterable, params: Iterable = ()) -> list[tuple]:
        """Run ``sql`` whose ``{marks}`` is an IN list over ``values``, in chunks SQLite accepts."""
        values, params = list(values), list(params)
        rows: list[tuple] = []
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            rows += self.query(sql.format(marks=",".join("?" * len(chunk))), [*params, *chunk])
        return rows

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- meta --------------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def generation(self) -> int:
        """A counter bumped by every change to embeddings: index caches compare against it."""
        return int(self.get_meta("generation", "0"))

    @staticmethod
    def _bump_generation(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    # -- inputs ------------------------------------------------------------------------

    def blob_path(self, sha256: str, suffix: str) -> Path:
        return self.root / "blobs" / sha256[:2] / f"{sha256}{suffix}"

    def find_input_ids(self, sha256s: Iterable[str]) -> dict[str, int]:
        """Map the given content hashes to the ids of inputs already stored."""
        return dict(self.query_in("SELECT sha256, id FROM inputs WHERE sha256 IN ({marks})", sha256s))

    def add_inputs(self, items: list[NewInput], labels: dict[str, list[tuple[int, int]]] | None = None) -> dict[str, int]:
        """Store inputs with their embeddings (and optional labels) in one transaction.

        Originals are written to content-addressed files first; a crash after that but
        before the commit only leaves an unreferenced file, never a row without data.

        Args:
            items: inputs to add; hashes already stored are skipped.
            labels: sha256 -> [(concept_id, +1 or -1)] to record for these inputs or for inputs
                already stored (a hash no input has is skipped).

        Returns:
            sha256 -> input id for every item (new or already there).

        Raises:
            StorageError: the disk is full or read-only; nothing of this batch is stored.
        """
        self._write_blobs(items)
        now = time.time()
        ids: dict[str, int] = {}
        inserted = False
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
                inserted = True
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
        self._write_blobs([item for item in items if not self.blob_path(item.sha256, item.suffix).exists()])
        return ids

    def _write_blobs(self, items: list[NewInput]) -> None:
        for item in items:
            path = self.blob_path(item.sha256, item.suffix)
            with _storage_errors(path.parent):
                try:
                    # Touched, so an orphan sweep sees a file someone is about to reference as fresh.
                    os.utime(path)
                except FileNotFoundError:
                    write_file_atomically(path, item.data)

    def get_input(self, input_id: int) -> InputRecord | None:
        rows = self.query("SELECT id, sha256, kind, name, suffix, created_at, text, info FROM inputs WHERE id = ?", (input_id,))
        return _to_record(rows[0]) if rows else None

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
        ids = list(input_ids)
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        doomed = self.query(f"SELECT sha256, suffix FROM inputs WHERE id IN ({marks})", ids)
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
            known = {sha for (sha,) in self.query("SELECT sha256 FROM inputs")}
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
        return self.blob_path(record.sha256, record.suffix).read_bytes()

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

    def list_concepts(self) -> list[tuple[int, str]]:
        return [(int(i), n) for i, n in self.query("SELECT id, name FROM concepts ORDER BY name COLLATE NOCASE")]

    def concept_id(self, name: str) -> int | None:
        rows = self.query("SELECT id FROM concepts WHERE name = ?", (validate_concept_name(name),))
        return int(rows[0][0]) if rows else None

    def ensure_concepts(self, names: Iterable[str]) -> dict[str, int]:
        """Return name -> id for each name, creating the concepts that do not exist yet."""
        cleaned = {validate_concept_name(n) for n in names}
        with self.transaction() as conn:
            for name in cleaned:
                conn.execute("INSERT OR IGNORE INTO concepts (name, created_at) VALUES (?, ?)", (name, time.time()))
            marks = ",".join("?" * len(cleaned))
            rows = conn.execute(f"SELECT name, id FROM concepts WHERE name IN ({marks})", list(cleaned)).fetchall() if cleaned else []
        by_lower = {n.lower(): i for n, i in rows}
        return {n: int(by_lower[n.lower()]) for n in cleaned}

    def create_concept(self, name: str) -> int:
        cleaned = validate_concept_name(name)
        try:
            with self.transaction() as conn:
                cur = conn.execute("INSERT INTO concepts (name, created_at) VALUES (?, ?)", (cleaned, time.time()))
        except sqlite3.IntegrityError as e:
            raise ConceptError(f"concept '{cleaned}' already exists") from e
        return int(cur.lastrowid)

    def rename_concept(self, old: str, new: str) -> None:
        cid = self._require_concept(old)
        cleaned = validate_concept_name(new)
        try:
            with self.transaction() as conn:
                conn.execute("UPDATE concepts SET name = ? WHERE id = ?", (cleaned, cid))
        except sqlite3.IntegrityError as e:
            raise ConceptError(f"concept '{cleaned}' already exists") from e

    def delete_concept(self, name: str) -> None:
        cid = self._require_concept(name)
        with self.transaction() as conn:
            conn.execute("DELETE FROM concepts WHERE id = ?", (cid,))

    def _require_concept(self, name: str) -> int:
        cid = self.concept_id(name)
        if cid is None:
            raise ConceptError(f"no concept named '{validate_concept_name(name)}'")
        return cid

    def set_labels(self, input_ids: Iterable[int], concept_id: int, value: int | None) -> None:
        """Label inputs +1 (positive) or -1 (negative) for a concept; None removes the label."""
        ids = list(input_ids)
        with self.transaction() as conn:
            if value is None:
                conn.executemany("DELETE FROM annotations WHERE input_id = ? AND concept_id = ?", [(i, concept_id) for i in ids])
            else:
                for i in ids:
                    self._annotate(conn, i, [(concept_id, value)], time.time())

    @staticmethod
    def _annotate(conn: sqlite3.Connection, input_id: int, pairs: list[tuple[int, int]], now: float) -> None:
        conn.executemany(
            "INSERT INTO annotations (input_id, concept_id, value, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (input_id, concept_id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            [(input_id, cid, int(v), now) for cid, v in pairs],
        )

    def load_annotations(self) -> list[tuple[int, int, int]]:
        """All labels as (input_id, concept_id, value)."""
        return [tuple(map(int, r)) for r in self.query("SELECT input_id, concept_id, value FROM annotations")]

    def labels_of(self, input_id: int) -> dict[str, int]:
        rows = self.query(
            "SELECT c.name, a.value FROM annotations a JOIN concepts c ON c.id = a.concept_id WHERE a.input_id = ?", (input_id,)
        )
        return {name: int(v) for name, v in rows}

    # -- model versions ----------------------------------------------------------------

    def add_version(self, file: str, seconds: float, report: dict, check: Callable[[int], None] | None = None) -> int:
        """Register a version file (already in ``versions/``) as the newest model version and make it active.

        Args:
            file: the file's name inside ``versions/``.
            seconds: how long training took.
            report: what training did, as JSON-able data.
            check: called with the new version number before it is committed, on this thread's
                connection (so the version is visible to it); if it raises, nothing is registered.

        Returns:
            The new version number.
        """
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO versions (created_at, file, seconds, report) VALUES (?, ?, ?, ?)",
                (time.time(), file, seconds, json.dumps(report)),
            )
            version = int(cur.lastrowid)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('active_version', ?)", (str(version),))
            if check is not None:
                check(version)
        return version

    def list_versions(self, report_keys: tuple[str, ...] | None = None) -> list[tuple[int, float, str, float, dict]]:
        """Every version, oldest first: (number, created_at, file, seconds, report).

        ``report_keys`` keeps only those top-level keys of each report, picked out by SQLite:
        a report can hold thousands of cross-validated scores, and a page listing ten versions
        should not parse them all on every rerun.
        """
        if report_keys is None:
            return [_to_version(row) for row in self.query(f"SELECT {_VERSION_COLUMNS}, report FROM versions ORDER BY id")]
        picks = ", ".join(["?, json_extract(report, ?)"] * len(report_keys))
        report = f"json_object({picks})" if picks else "'{}'"
        params = tuple(x for key in report_keys for x in (key, f'$."{key}"'))
        rows = self.query(f"SELECT {_VERSION_COLUMNS}, {report} FROM versions ORDER BY id", params)
        # json_object keeps absent keys as nulls: leave them out, as a full report would.
        return [(*version[:4], {k: v for k, v in version[4].items() if v is not None}) for version in map(_to_version, rows)]

    def get_version(self, number: int) -> tuple[int, float, str, float, dict] | None:
        """One version with its whole report, or None."""
        rows = self.query(f"SELECT {_VERSION_COLUMNS}, report FROM versions WHERE id = ?", (int(number),))
        return _to_version(rows[0]) if rows else None


_VERSION_COLUMNS = "id, created_at, file, seconds"


def _to_version(row: tuple) -> tuple[int, float, str, float, dict]:
    number, created_at, file, seconds, report = row
    return int(number), created_at, file, seconds, json.loads(report)


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
