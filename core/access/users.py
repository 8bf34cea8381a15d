"""Local accounts for an offline studio: user names with argon2id password hashes, and a lock-out.

Kept in ``users.db`` in the data home (SQLite). A password is never stored, only its argon2id hash
(argon2-cffi's defaults, RFC 9106's low-memory profile: 64 MiB, 3 passes). After ``MAX_TRIES``
failed sign-ins in a row an account is locked for a delay that doubles with each further failure;
while locked no password is even checked, so guessing cannot go on, and every lock is logged.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core.access.acting import Actor, require
from core.access.audit import record
from core.access.roles import Action
from core.errors import ConceptlabError
from core.names import describe_forbidden_character, make_name_key, normalize_name
from core.paths import get_data_home

log = logging.getLogger(__name__)

MAX_TRIES = 5
FIRST_LOCK_S = 30.0
LONGEST_LOCK_S = 3600.0
MIN_PASSWORD = 10
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    must_change INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 TEXT PRIMARY KEY,
    user_key TEXT NOT NULL,
    expires_at REAL NOT NULL
)
"""
SESSION_S = 7 * 24 * 3600.0


class AccountError(ConceptlabError):
    """A user name is invalid, taken or unknown, or a password is refused."""


class SignInError(ConceptlabError):
    """A sign-in failed: wrong name or password (never which), a disabled or locked account."""


@dataclass(frozen=True)
class User:
    name: str
    admin: bool
    disabled: bool
    must_change: bool
    failures: int
    locked_until: float
    created_at: float

    def actor(self) -> Actor:
        return Actor(self.name, self.admin)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")


def lock_seconds(failures: int) -> float:
    """How long an account stays locked after ``failures`` failed sign-ins in a row (0 below MAX_TRIES)."""
    if failures < MAX_TRIES:
        return 0.0
    return min(FIRST_LOCK_S * 2 ** (failures - MAX_TRIES), LONGEST_LOCK_S)


class UserStore:
    """The accounts of one data home."""

    def __init__(self, home: Path | None = None) -> None:
        from argon2 import PasswordHasher  # here: only accounts need it, not every command that opens a project

        self.path = (home or get_data_home()) / "users.db"
        self._hasher = PasswordHasher()
        self._lock = threading.Lock()
        self._dummy_hash: str | None = None

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        return db

    def _row(self, db: sqlite3.Connection, name: str) -> tuple | None:
        return db.execute(
            "SELECT name, admin, disabled, must_change, failures, locked_until, created_at, hash FROM users WHERE key = ?",
            (make_name_key(name),),
        ).fetchone()

    @staticmethod
    def _user(row: tuple) -> User:
        name, admin, disabled, must_change, failures, locked_until, created_at = row[:7]
        return User(name, bool(admin), bool(disabled), bool(must_change), failures, locked_until, created_at)

    def list_users(self) -> list[User]:
        with self._lock, self._connect() as db:
            rows = db.execute("SELECT name, admin, disabled, must_change, failures, locked_until, created_at FROM users ORDER BY key")
            return [self._user(row) for row in rows]

    def get_user(self, name: str) -> User | None:
        with self._lock, self._connect() as db:
            row = self._row(db, name)
        return self._user(row) if row else None

    def add_user(self, name: str, password: str | None = None, admin: bool = False) -> str | None:
        """Add an account; without a password, make a one-time one (returned, to show once) to change at first sign-in.

        The first account may be added by anyone who can run this (it is the set-up); later ones need an admin.

        Raises:
            AccountError: a bad or taken name, or a password too short.
        """
        if self.list_users():
            require(None, Action.MANAGE_USERS)
        name = normalize_name(name)
        if not name or len(name) > 64 or (problem := describe_forbidden_character(name)):
            raise AccountError(f"cannot use {name!r} as a user name: {problem if name else 'it is empty'}")
        one_time = None
        if password is None:
            one_time = password = secrets.token_urlsafe(12)
        check_password(password)
        digest = self._hasher.hash(password)
        with self._lock, self._connect() as db:
            if self._row(db, name):
                raise AccountError(f"a user named '{name}' already exists")
            db.execute(
                "INSERT INTO users (key, name, hash, admin, must_change, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (make_name_key(name), name, digest, int(admin), int(one_time is not None), time.time()),
            )
        log.info("user %s added%s", name, " (admin)" if admin else "")
        return one_time

    def find_or_add_provider_user(self, name: str) -> User:
        """The account of someone an OpenID provider signed in (by the e-mail or subject it vouches for),
        made at their first sign-in with no password of its own: admins then give it roles or disable it."""
        name = normalize_name(name)
        if not name or len(name) > 254 or describe_forbidden_character(name):
            raise AccountError(f"the identity provider named no usable user ({name!r})")
        with self._lock, self._connect() as db:
            if not self._row(db, name):
                unusable = self._hasher.hash(secrets.token_hex(32))  # no one knows it: a password sign-in cannot work
                row = (make_name_key(name), name, unusable, time.time())
                db.execute("INSERT INTO users (key, name, hash, created_at) VALUES (?, ?, ?, ?)", row)
                log.info("user %s added at their first sign-in through the identity provider", name)
            row = self._row(db, name)
        return self._user(row)

    def set_password(self, name: str, password: str) -> None:
        """A new password (an admin's, or the user's own); it also ends a lock-out and the one-time state."""
        self._require_self_or_admin(name)
        check_password(password)
        digest = self._hasher.hash(password)
        with self._lock, self._connect() as db:
            if not self._row(db, name):
                raise AccountError(f"there is no user named '{name}'")
            db.execute(
                "UPDATE users SET hash = ?, must_change = 0, failures = 0, locked_until = 0 WHERE key = ?", (digest, make_name_key(name))
            )
        log.info("user %s: password changed", name)

    def disable_user(self, name: str, disabled: bool = True) -> None:
        require(None, Action.MANAGE_USERS)
        with self._lock, self._connect() as db:
            if not self._row(db, name):
                raise AccountError(f"there is no user named '{name}'")
            db.execute("UPDATE users SET disabled = ? WHERE key = ?", (int(disabled), make_name_key(name)))
        log.warning("user %s %s", name, "disabled" if disabled else "enabled again")

    def sign_in(self, name: str, password: str, now: float | None = None) -> User:
        """The account, if ``password`` is its password and it may sign in now.

        Raises:
            SignInError: "wrong user name or password" for an unknown name and a wrong password alike;
                a locked account says for how long; a disabled one says so.
        """
        now = time.time() if now is None else now
        with self._lock, self._connect() as db:
            row = self._row(db, name)
        if row is None:
            self._verify(self._dummy(), password)  # as slow as a real check: the answer's time tells nothing
            record("failed sign-in", None, f"as '{name}', which is no account", user=str(name)[:64])
            raise SignInError("wrong user name or password")
        user, digest = self._user(row), row[7]
        if user.locked_until > now:
            raise SignInError(f"too many failed sign-ins for {user.name}: try again in {user.locked_until - now:.0f} s")
        if not self._verify(digest, password):
            self._record_failure(user, now)
            raise SignInError("wrong user name or password")
        if user.disabled:
            raise SignInError(f"the account {user.name} is disabled: ask an admin")
        with self._lock, self._connect() as db:
            db.execute("UPDATE users SET failures = 0, locked_until = 0 WHERE key = ?", (make_name_key(user.name),))
        return self._user((*row[:4], 0, 0.0, row[6]))

    # -- sessions: what a browser's cookie names; only the token's hash is kept, so a copy of the
    # database signs no one in, and a sign-out or a disabled account ends it at once.

    def start_session(self, user: User, lasts_s: float = SESSION_S, now: float | None = None) -> str:
        """A new session for a signed-in user: the token for the browser's cookie (random, 256 bits)."""
        now = time.time() if now is None else now
        token = secrets.token_urlsafe(32)
        with self._lock, self._connect() as db:
            db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
            db.execute("INSERT INTO sessions VALUES (?, ?, ?)", (_sha256(token), make_name_key(user.name), now + lasts_s))
        return token

    def find_session(self, token: str | None, now: float | None = None) -> User | None:
        """The user a session token belongs to, while it lasts and the account is enabled; else None."""
        if not isinstance(token, str) or not token:
            return None
        now = time.time() if now is None else now
        with self._lock, self._connect() as db:
            found = db.execute("SELECT user_key, expires_at FROM sessions WHERE token_sha256 = ?", (_sha256(token),)).fetchone()
            row = db.execute(
                "SELECT name, admin, disabled, must_change, failures, locked_until, created_at FROM users WHERE key = ?",
                (found[0] if found else "",),
            ).fetchone()
        if found is None or found[1] <= now or row is None or row[2]:
            return None
        return self._user(row)

    def end_session(self, token: str | None) -> None:
        if token:
            with self._lock, self._connect() as db:
                db.execute("DELETE FROM sessions WHERE token_sha256 = ?", (_sha256(token),))

    def _verify(self, digest: str, password: str) -> bool:
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            return self._hasher.verify(digest, password)
        except (VerificationError, InvalidHashError):
            return False

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        return self._dummy_hash

    def _record_failure(self, user: User, now: float) -> None:
        failures = user.failures + 1
        locked = lock_seconds(failures)
        with self._lock, self._connect() as db:
            db.execute(
                "UPDATE users SET failures = ?, locked_until = ? WHERE key = ?",
                (failures, now + locked if locked else 0.0, make_name_key(user.name)),
            )
        if locked:
            log.warning("user %s: %d failed sign-ins in a row, locked for %.0f s", user.name, failures, locked)
            record("lock-out", None, f"{failures} failed sign-ins in a row: locked for {locked:.0f} s", user=user.name)
        else:
            record("failed sign-in", None, f"{failures} of {MAX_TRIES} before a lock-out", user=user.name)

    def _require_self_or_admin(self, name: str) -> None:
        from core.access.acting import current_actor

        actor = current_actor()
        if actor is None or actor.admin or make_name_key(actor.name) == make_name_key(name):
            return
        require(None, Action.MANAGE_USERS)
