"""Who may do what: the roles of a project and the one table that says which role each action needs.

| role | may |
|---|---|
| viewer | browse inputs, see reports, try the model, search |
| labeller | + upload, label, create concepts |
| trainer | + train, set thresholds, choose the active version, export, make demo links |
| owner | + rename, delete, import models, manage members |
| admin (global) | + create projects, manage users |

Each role may do everything the roles below it may. An admin may do everything, in every project.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Role(IntEnum):
    """A person's role in one project, ordered: a higher role may do all a lower one may."""

    VIEWER = 1
    LABELLER = 2
    TRAINER = 3
    OWNER = 4

    @property
    def word(self) -> str:
        return self.name.lower()

    @property
    def with_article(self) -> str:
        return f"an {self.word}" if self is Role.OWNER else f"a {self.word}"

    @classmethod
    def parse(cls, word: str) -> Role:
        """``"labeller"`` -> Role.LABELLER; ValueError naming the roles otherwise."""
        try:
            return cls[str(word).strip().upper()]
        except KeyError:
            raise ValueError(f"no role {word!r}: choose viewer, labeller, trainer or owner") from None


class Action(StrEnum):
    """What a person can ask of a project (or, for the last two, of the whole studio)."""

    VIEW = "view the project"
    UPLOAD = "add inputs"
    LABEL = "label inputs"
    CREATE_CONCEPT = "create concepts"
    EDIT_CONCEPT = "rename or delete concepts"
    TRAIN = "train"
    SET_THRESHOLD = "set thresholds"
    ACTIVATE_VERSION = "choose the version in use"
    EXPORT = "export models"
    SHARE = "make or revoke demo links"
    RENAME_PROJECT = "rename the project"
    DELETE_PROJECT = "delete the project"
    DELETE_INPUTS = "delete inputs"
    IMPORT_MODEL = "import models"
    MANAGE_MEMBERS = "manage members"
    CREATE_PROJECT = "create projects"
    MANAGE_USERS = "manage users"


# The lowest role each project action needs. Deleting (concepts, inputs, the project) and importing
# are the owner's: they change or remove what others made.
NEEDS: dict[Action, Role] = {
    Action.VIEW: Role.VIEWER,
    Action.UPLOAD: Role.LABELLER,
    Action.LABEL: Role.LABELLER,
    Action.CREATE_CONCEPT: Role.LABELLER,
    Action.EDIT_CONCEPT: Role.OWNER,
    Action.TRAIN: Role.TRAINER,
    Action.SET_THRESHOLD: Role.TRAINER,
    Action.ACTIVATE_VERSION: Role.TRAINER,
    Action.EXPORT: Role.TRAINER,
    Action.SHARE: Role.TRAINER,
    Action.RENAME_PROJECT: Role.OWNER,
    Action.DELETE_PROJECT: Role.OWNER,
    Action.DELETE_INPUTS: Role.OWNER,
    Action.IMPORT_MODEL: Role.OWNER,
    Action.MANAGE_MEMBERS: Role.OWNER,
}
ADMIN_ONLY = frozenset({Action.CREATE_PROJECT, Action.MANAGE_USERS})


def may(role: Role | None, action: Action, admin: bool = False) -> bool:
    """Whether a person with ``role`` in a project (None: not a member) may do ``action`` there."""
    if admin:
        return True
    if action in ADMIN_ONLY:
        return False
    return role is not None and role >= NEEDS[action]
