"""The studio's record of destructive and sharing actions: who, when, what changed.

Kept in ``audit.db`` in the data home, outside the projects, so a deleted project's deletion stays
on record. Recorded: deleting a project, a concept or inputs; removing labels from many inputs at
once; importing a model; changing a member's role; failed sign-ins and lock-outs. Owners see their
project's entries (the Train page and ``conceptlab audit``), admins see everything.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from core.access.acting import ProjectLike, current_actor, project_key
from core.paths import get_data_home

log = logging.getLogger(__name__)
THIS_COMPUTER = "this computer's user"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    user TEXT NOT NULL,
    action TEXT NOT NULL,
    project_id TEXT,
    project TEXT,
    what TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_project ON audit (project_id, at)
"""


@dataclass(frozen=True)
class AuditEntry:
    at: float
    user: str
    action: str
    project: str | None
    what: str


def _connect(home: Path | None = None) -> sqlite3.Connection:
    path = (home or get_data_home()) / "audit.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30)
    db.executescript(_SCHEMA)
    return db


def record(action: str, project: ProjectLike | None, what: str, user: str | None = None) -> None:
    """Add an entry, by ``user`` or else the acting person.

    A log that cannot be written is logged, never fatal: the action it records has already happened.
    """
    actor = current_actor()
    who = user or (actor.name if actor is not None else THIS_COMPUTER)
    # Known by project_key, which a rename keeps: a project's log follows it under a new name.
    ids = (project_key(project), project.name) if project is not None else (None, None)
    try:
        with _connect() as db:
            row = (time.time(), who, action, *ids, what)
            db.execute("INSERT INTO audit (at, user, action, project_id, project, what) VALUES (?, ?, ?, ?, ?, ?)", row)
    except sqlite3.Error as e:
        log.error("could not record %s on %s by %s (%s): %s", action, ids[1], who, what, e)
    log.info("audit: %s %s %s: %s", who, action, ids[1] or "", what)


def read_log(project: ProjectLike | None = None, limit: int = 200) -> list[AuditEntry]:
    """The newest entries first: one project's (under whatever names it had), or the whole studio's."""
    with _connect() as db:
        if project is None:
            rows = db.execute("SELECT at, user, action, project, what FROM audit ORDER BY at DESC, id DESC LIMIT ?", (limit,))
        else:
            rows = db.execute(
                "SELECT at, user, action, project, what FROM audit WHERE project_id = ? ORDER BY at DESC, id DESC LIMIT ?",
                (project_key(project), limit),
            )
        return [AuditEntry(*row) for row in rows]
