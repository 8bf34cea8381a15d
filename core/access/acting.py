"""Who is acting, and the one check every engine call that reads or changes a project makes.

The pages, the HTTP API and the command line share this rule. A front end says who acts with
``acting_as(user)`` around its work (a request), or registers where the acting person is found
(``find_actor_with``: the studio reads its browser session, so its widget callbacks, which run
before any page code, are checked too); with no one named, the caller is this computer's own user
(the command line, a script, a studio in single-user mode), who may do everything: whoever can
read the data folder already has the data. ``NOBODY`` is someone not signed in: a member of nothing.

A project's members and their roles live in the project itself (``meta`` key ``members``), so they
move with a rename and go with a delete.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from core.access.roles import NEEDS, Action, Role, may
from core.errors import ConceptlabError

log = logging.getLogger(__name__)
MEMBERS_KEY = "members"


class AccessDenied(ConceptlabError):
    """The acting person's role does not allow what was asked."""


@dataclass(frozen=True)
class Actor:
    """A signed-in person as the engine sees them: a name, and whether they administer the studio."""

    name: str
    admin: bool = False
    # A demo link's visitor: a viewer of the one project made at this time (its created_at), of nothing else.
    viewer_of: str | None = None


class _Meta(Protocol):
    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


class ProjectLike(Protocol):
    """What the checks need of a project: its name and its store's meta (core.access sits below core.storage)."""

    name: str
    store: _Meta


NOBODY = Actor("someone not signed in")
_UNSET = Actor("")
_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("conceptlab_actor", default=_UNSET)
_find_actor: Callable[[], Actor | None] | None = None


def find_actor_with(source: Callable[[], Actor | None] | None) -> None:
    """Where to find the acting person when no ``acting_as`` block names one (None: nowhere, this computer's user)."""
    global _find_actor
    _find_actor = source


@contextlib.contextmanager
def acting_as(actor: Actor | None) -> Iterator[None]:
    """Run the block as ``actor`` (None: this computer's own user, who may do everything)."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def act_as(actor: Actor | None) -> None:
    """Name the acting person for the rest of the current context: an HTTP request's own task (asyncio gives
    each its own context, and the threads it hands work to get a copy), never a thread's whole life."""
    _actor.set(actor)


def current_actor() -> Actor | None:
    """The acting person: ``acting_as``'s, else the registered source's, else None (this computer's own user)."""
    actor = _actor.get()
    if actor is not _UNSET:
        return actor
    return _find_actor() if _find_actor is not None else None


def read_members(project: ProjectLike) -> dict[str, Role]:
    """The project's members by user name, with their roles (an unreadable entry counts as no member)."""
    try:
        raw = json.loads(project.store.get_meta(MEMBERS_KEY) or "{}")
    except json.JSONDecodeError:
        log.warning("project %s: its members list is not JSON; no one but admins may use it", project.name)
        return {}
    members = {}
    for name, word in raw.items() if isinstance(raw, dict) else ():
        try:
            members[str(name)] = Role.parse(word)
        except ValueError:
            log.warning("project %s: member %s has an unknown role %r", project.name, name, word)
    return members


def project_key(project: ProjectLike) -> str:
    """What a project is known by across renames: when it was made (its name for a project that lacks the date)."""
    return project.store.get_meta("created_at") or project.name


def _role(project: ProjectLike, actor: Actor) -> Role | None:
    if actor.viewer_of is not None:
        return Role.VIEWER if project_key(project) == actor.viewer_of else None
    return read_members(project).get(actor.name)


def role_in(project: ProjectLike, actor: Actor | None = None) -> Role | None:
    """The acting person's role in ``project`` (this computer's user and admins: owner)."""
    actor = actor if actor is not None else current_actor()
    if actor is None or actor.admin:
        return Role.OWNER
    return _role(project, actor)


def require(project: ProjectLike | None, action: Action) -> None:
    """Refuse ``action`` on ``project`` (None for the studio-wide actions) unless the acting person may.

    Raises:
        AccessDenied: one sentence naming who, their role and the role the action needs.
    """
    actor = current_actor()
    if actor is None or actor.admin:
        return
    role = None if project is None else _role(project, actor)
    if may(role, action):
        return
    if project is None or action not in NEEDS:
        raise AccessDenied(f"{actor.name} may not {action.value}: only an admin may")
    where = f"'{project.name}'"
    has = f"is {role.with_article} of {where}" if role else f"is not a member of {where}"
    raise AccessDenied(f"{actor.name} {has}: to {action.value} takes {NEEDS[action].with_article} or above")


@dataclass
class _StoreProject:
    name: str
    store: _Meta


def project_of_store(store: _Meta) -> ProjectLike:
    """A project's store seen as the project, for code that holds the store only."""
    return _StoreProject(store.get_meta("name") or "this project", store)


def require_of_store(store: _Meta, action: Action) -> None:
    """``require`` for code that holds a project's store only (the store's own concept and input edits)."""
    actor = current_actor()
    if actor is None or actor.admin:
        return
    require(project_of_store(store), action)


def set_member(project: ProjectLike, user: str, role: Role | None) -> None:
    """Give ``user`` a role in ``project``, or take it away (None); the acting person must be able to manage members."""
    require(project, Action.MANAGE_MEMBERS)
    members = {name: r.word for name, r in read_members(project).items()}
    before = members.get(user)
    if role is None:
        members.pop(user, None)
    else:
        members[user] = role.word
    project.store.set_meta(MEMBERS_KEY, json.dumps(members, sort_keys=True))
    from core.access.audit import record  # here: audit imports this module

    record("change role", project, f"{user}: {before or 'not a member'} -> {role.word if role else 'not a member'}")
