"""The permission table: every action against every role."""

from __future__ import annotations

import pytest

from core.access import ADMIN_ONLY, NEEDS, Action, Role, may

V, L, T, OWN = Role.VIEWER, Role.LABELLER, Role.TRAINER, Role.OWNER
# The table, written out: which roles may do each action.
TABLE = {
    Action.VIEW: {V, L, T, OWN},
    Action.UPLOAD: {L, T, OWN},
    Action.LABEL: {L, T, OWN},
    Action.CREATE_CONCEPT: {L, T, OWN},
    Action.EDIT_CONCEPT: {OWN},
    Action.TRAIN: {T, OWN},
    Action.SET_THRESHOLD: {T, OWN},
    Action.ACTIVATE_VERSION: {T, OWN},
    Action.EXPORT: {T, OWN},
    Action.SHARE: {T, OWN},
    Action.RENAME_PROJECT: {OWN},
    Action.DELETE_PROJECT: {OWN},
    Action.DELETE_INPUTS: {OWN},
    Action.IMPORT_MODEL: {OWN},
    Action.MANAGE_MEMBERS: {OWN},
    Action.CREATE_PROJECT: set(),
    Action.MANAGE_USERS: set(),
}


def test_every_action_is_in_the_table_once():
    assert set(TABLE) == set(Action) == set(NEEDS) | ADMIN_ONLY and not set(NEEDS) & ADMIN_ONLY


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("role", [None, V, L, T, OWN])
def test_may(action, role):
    assert may(role, action) is (role in TABLE[action])
    assert may(role, action, admin=True)  # an admin may do everything, member or not


@pytest.mark.parametrize(
    "word, role",
    [("viewer", V), ("Labeller", L), (" trainer ", T), ("OWNER", OWN), ("admin", None), ("", None), ("labeler", None)],
)
def test_parse(word, role):
    if role is None:
        with pytest.raises(ValueError, match="choose viewer, labeller, trainer or owner"):
            Role.parse(word)
    else:
        assert Role.parse(word) is role
