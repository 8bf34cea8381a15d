"""API tokens for ``conceptlab serve``: created once, shown once, stored only as hashes in the data home.

A token is 32 random bytes (``cl_`` + URL-safe base64), so a plain SHA-256 of it is as safe to store
as a slow password hash would be and costs nothing per request. A token may be limited to one
project and to reading (predict and search); revoking one takes effect at the server's next request.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from core.disk import write_file_atomically
from core.errors import ConceptlabError
from core.paths import get_data_home

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "cl_"
_FILE_NAME = "tokens.json"


class TokenError(ConceptlabError):
    """A token name is taken or unknown, or the token file cannot be read."""


@dataclass(frozen=True)
class TokenRecord:
    """What the server knows of a token: never the token itself."""

    name: str
    sha256: str
    project: str | None  # None: every project the server serves
    read_only: bool
    created_at: float
    user: str | None = None  # the account it acts as, with that user's roles; None: this computer's own user (older tokens)

    def may_use(self, project: str) -> bool:
        return self.project is None or self.project == project


class TokenStore:
    """The token file of a data home; re-read when it changes on disk, so the CLI's edits reach a running server."""

    def __init__(self, home: Path | None = None) -> None:
        self.path = (home or get_data_home()) / _FILE_NAME
        self._lock = threading.Lock()
        self._seen: tuple[float, int] | None = None
        self._records: list[TokenRecord] = []

    def list_tokens(self) -> list[TokenRecord]:
        """Every token, oldest first."""
        with self._lock:
            return list(self._read())

    def create_token(self, name: str, project: str | None = None, read_only: bool = False, user: str | None = None) -> str:
        """Make a token, store its hash, and return the token: the only time it is ever shown.

        Raises:
            TokenError: the name is empty or taken.
        """
        name = name.strip()
        if not name:
            raise TokenError("a token needs a name")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._lock, self._file_lock():
            records = self._read()
            if any(r.name == name for r in records):
                raise TokenError(f"a token named '{name}' exists already: revoke it first, or choose another name")
            records.append(TokenRecord(name, _digest(token), project, read_only, time.time(), user))
            self._write(records)
        logger.info("token %s created (project %s, read-only %s, acting as %s)", name, project or "any", read_only, user or "this computer")
        return token

    def revoke_token(self, name: str) -> None:
        """Forget a token for good.

        Raises:
            TokenError: no token has that name.
        """
        with self._lock, self._file_lock():
            records = self._read()
            kept = [r for r in records if r.name != name]
            if len(kept) == len(records):
                raise TokenError(f"no token named '{name}'")
            self._write(kept)
        logger.info("token %s revoked", name)

    def find_token(self, token: str) -> TokenRecord | None:
        """The record of a presented token, or None; compared in constant time."""
        digest = _digest(token)
        with self._lock:
            records = self._read()
        return next((r for r in records if hmac.compare_digest(r.sha256, digest)), None)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """One writer at a time across processes (two `tokens create` at once must not lose one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._seen = None  # another process may have written since this one last read
            yield

    def _read(self) -> list[TokenRecord]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._seen, self._records = None, []
            return self._records
        seen = (stat.st_mtime, stat.st_size)
        if seen != self._seen:
            try:
                rows = json.loads(self.path.read_text(encoding="utf-8"))
                self._records = [TokenRecord(**row) for row in rows]
            except (OSError, ValueError, TypeError) as e:
                raise TokenError(f"the token file {self.path} cannot be read: {e}") from e
            self._seen = seen
        return self._records

    def _write(self, records: list[TokenRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomically(self.path, json.dumps([asdict(r) for r in records], indent=1).encode())
        self.path.chmod(0o600)
        self._seen = None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()
