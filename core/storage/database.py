"""The project database: its schema, one SQLite connection per thread, transactions and the
project's fixed settings (``meta``). ``Store`` adds the tables' rows on top of this.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from core.disk import BUSY_TIMEOUT_MS, as_storage_error, storage_errors
from core.errors import ProjectError

log = logging.getLogger(__name__)


SCHEMA_VERSION = 1

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
-- Faces (embedder faces) are found again by the file they came from, and keep their photo's file.
CREATE INDEX IF NOT EXISTS inputs_source ON inputs(json_extract(info, '$.source_sha256'));
CREATE INDEX IF NOT EXISTS inputs_blob ON inputs(json_extract(info, '$.blob_sha256'));
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


class Database:
    """One project folder's SQLite database; safe to share between threads and processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.db_path = self.root / "project.db"
        if not self.db_path.exists():
            raise ProjectError(f"no project database at {self.db_path}")
        self._local = threading.local()

    # -- connections -------------------------------------------------------------------

    @classmethod
    def initialize(cls, root: Path, meta: dict[str, str]) -> Database:
        """Create the schema in a new folder and record the project's fixed settings.

        Raises:
            StorageError: the folder cannot be written (disk full, read-only, no permission).
        """
        with storage_errors(root):
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
            with storage_errors(self.root, "open"):
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
        conn = sqlite3.connect(target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, uri=uri)
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
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
        with storage_errors(self.root):
            conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            with storage_errors(self.root):
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
        with storage_errors(self.root, "read"):
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
