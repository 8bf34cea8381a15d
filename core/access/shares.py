"""Demo links: a read-only link to one model version's Try page, for browser demos.

Whoever opens the link sees only the Try page of that version (upload, camera, typed text): no
inputs, no labels, no other projects; they act as a viewer of that one project and of nothing else.
A link expires on the date chosen when it is made, can be revoked, and is rate-limited on its own.
Kept in ``users.db`` beside the accounts; only the link's token hash is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from core.access.acting import Actor, ProjectLike, project_key, require
from core.access.audit import record
from core.access.roles import Action
from core.errors import ConceptlabError
from core.paths import get_data_home

_COLUMNS = "id, project_id, project, version, expires_at, made_by, made_at, revoked"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    project TEXT NOT NULL,
    version INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    made_by TEXT NOT NULL,
    made_at REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
)
"""


class ShareError(ConceptlabError):
    """A demo link cannot be made (a date in the past) or is unknown."""


@dataclass(frozen=True)
class Share:
    id: str
    project_id: str
    project: str
    version: int
    expires_at: float
    made_by: str
    made_at: float
    revoked: bool

    def actor(self) -> Actor:
        return Actor(f"demo link {self.id}", viewer_of=self.project_id)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ShareStore:
    def __init__(self, home: Path | None = None) -> None:
        self.path = (home or get_data_home()) / "users.db"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        db.execute(_SCHEMA)
        return db

    def make_share(
        self, project: ProjectLike, version: int, expires_on: dt.date, made_by: str, today: dt.date | None = None
    ) -> tuple[Share, str]:
        """A new link to ``version`` of ``project`` that works until the end of ``expires_on``: (the link, its token).

        Raises:
            AccessDenied: the acting person is not a trainer or owner of the project.
            ShareError: ``expires_on`` is in the past.
        """
        require(project, Action.SHARE)
        if expires_on < (today or dt.date.today()):
            raise ShareError(f"a demo link cannot expire in the past ({expires_on.isoformat()})")
        token = secrets.token_urlsafe(24)
        until = dt.datetime.combine(expires_on + dt.timedelta(days=1), dt.time()).timestamp()  # through that whole day
        share = Share(
            secrets.token_hex(4),
            project_key(project),
            project.name,
            version,
            until,
            made_by,
            time.time(),
            False,
        )
        with self._connect() as db:
            db.execute(
                "INSERT INTO shares (id, token_sha256, project_id, project, version, expires_at, made_by, made_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (share.id, _sha256(token), share.project_id, share.project, version, until, made_by, share.made_at),
            )
        record("make demo link", project, f"link {share.id} to version {version}, until {expires_on.isoformat()}")
        return share, token

    def find_share(self, token: str | None, now: float | None = None) -> Share | None:
        """The link a token opens, while it lasts and is not revoked; else None."""
        if not isinstance(token, str) or not token:
            return None
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM shares WHERE token_sha256 = ?",
                (_sha256(token),),
            ).fetchone()
        if row is None:
            return None
        share = Share(*row[:7], bool(row[7]))
        return None if share.revoked or share.expires_at <= (time.time() if now is None else now) else share

    def list_shares(self, project: ProjectLike) -> list[Share]:
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM shares WHERE project_id = ? ORDER BY made_at DESC",
                (project_key(project),),
            ).fetchall()
        return [Share(*row[:7], bool(row[7])) for row in rows]

    def revoke_share(self, project: ProjectLike, share_id: str) -> None:
        require(project, Action.SHARE)
        with self._connect() as db:
            done = db.execute(
                "UPDATE shares SET revoked = 1 WHERE id = ? AND project_id = ?",
                (share_id, project_key(project)),
            ).rowcount
        if not done:
            raise ShareError(f"'{project.name}' has no demo link {share_id}")
        record("revoke demo link", project, f"link {share_id}")
