"""Files on disk: writing one atomically, and telling a disk failure from a bug.

A full disk, a read-only file system, a missing permission or a busy database is the disk's
fault and gets a one-line ``StorageError`` naming the place; anything else is a bug and passes
through unchanged. Every package that writes files uses this, so it sits below all of them.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from core.errors import StorageError

# How long a writer waits for another process's transaction before giving up (SQLite busy timeout).
BUSY_TIMEOUT_MS = 60_000

# SQLite result codes (by name) that mean the disk, not the query, is the problem.
_STORAGE_CODES = {
    "SQLITE_FULL": "the disk is full (free some space and try again)",
    "SQLITE_READONLY": "it is read-only",
    "SQLITE_CANTOPEN": "its database cannot be opened (missing or no permission)",
    "SQLITE_PERM": "there is no permission to write there",
    "SQLITE_IOERR": "the disk reported an I/O error",
    "SQLITE_BUSY": f"another process kept the project busy for over {BUSY_TIMEOUT_MS // 1000} s (try again)",
    "SQLITE_LOCKED": f"another process kept the project busy for over {BUSY_TIMEOUT_MS // 1000} s (try again)",
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
def storage_errors(where: str | os.PathLike[str], doing: str = "write to") -> Iterator[None]:
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
