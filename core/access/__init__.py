"""Accounts and roles: who may do what in which project, checked in one place (``require``)."""

from core.access.acting import (
    NOBODY,
    AccessDenied,
    Actor,
    act_as,
    acting_as,
    current_actor,
    find_actor_with,
    project_of_store,
    read_members,
    require,
    require_of_store,
    role_in,
    set_member,
)
from core.access.audit import AuditEntry, read_log, record
from core.access.roles import ADMIN_ONLY, NEEDS, Action, Role, may
from core.access.shares import Share, ShareError, ShareStore
from core.access.users import AccountError, SignInError, User, UserStore, lock_seconds

__all__ = [
    "ADMIN_ONLY",
    "NOBODY",
    "NEEDS",
    "AccessDenied",
    "AuditEntry",
    "AccountError",
    "Action",
    "Actor",
    "Role",
    "Share",
    "ShareError",
    "ShareStore",
    "SignInError",
    "User",
    "UserStore",
    "act_as",
    "acting_as",
    "current_actor",
    "find_actor_with",
    "project_of_store",
    "lock_seconds",
    "may",
    "read_log",
    "read_members",
    "record",
    "require",
    "require_of_store",
    "role_in",
    "set_member",
]
