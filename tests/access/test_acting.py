"""The permission table enforced in the engine: each action, done by each role through the real engine call."""

from __future__ import annotations

import pytest

from core.access import AccessDenied, Action, Actor, Role, acting_as, read_members, set_member
from core.exchange import export_model, import_model
from core.ingestion import ingest
from core.inputs import read_texts
from core.learning import set_threshold, train
from core.learning.models import reset_threshold, set_active_version
from core.storage.projects import create_project, delete_project, list_projects, open_project, rename_project
from core.views.gallery import label_inputs

from .test_roles import TABLE


@pytest.fixture
def project(trained_texts):
    return trained_texts


def _model_file(project):
    return export_model(project)


# Each action as a front end would do it: (action, what to call with the project).
ACTIONS = [
    (Action.VIEW, lambda p: open_project(p.name)),
    (Action.UPLOAD, lambda p: ingest(p, read_texts(["a wasp"]))),
    (Action.LABEL, lambda p: label_inputs(p, [1], "ant", -1)),
    (Action.CREATE_CONCEPT, lambda p: p.store.create_concept("wasp")),
    (Action.EDIT_CONCEPT, lambda p: p.store.rename_concept("bee", "honey bee")),
    (Action.EDIT_CONCEPT, lambda p: p.store.delete_concept("bee")),
    (Action.TRAIN, lambda p: train(p)),
    (Action.SET_THRESHOLD, lambda p: set_threshold(p, 1, "ant", 0.5)),
    (Action.SET_THRESHOLD, lambda p: reset_threshold(p, 1, "ant")),
    (Action.ACTIVATE_VERSION, lambda p: set_active_version(p, 1)),
    (Action.EXPORT, lambda p: export_model(p)),
    (Action.RENAME_PROJECT, lambda p: rename_project(p.name, "renamed")),
    (Action.DELETE_PROJECT, lambda p: delete_project(p.name)),
    (Action.DELETE_INPUTS, lambda p: p.store.delete_inputs([1])),
    (Action.MANAGE_MEMBERS, lambda p: set_member(p, "carol", Role.VIEWER)),
    (Action.CREATE_PROJECT, lambda p: create_project("another", "tiny")),
]
# The lowest role each action needs, from the table test_roles.py writes out (None: admins only).
NEEDED = {action: min(roles) if roles else None for action, roles in TABLE.items()}


@pytest.mark.parametrize("action, do", ACTIONS, ids=[f"{a.name.lower()}-{i}" for i, (a, _) in enumerate(ACTIONS)])
@pytest.mark.parametrize("role", [None, Role.VIEWER, Role.LABELLER, Role.TRAINER, Role.OWNER], ids=lambda r: r.word if r else "none")
def test_each_action_by_each_role_is_done_or_refused_in_one_sentence(project, action, do, role):
    if role is not None:
        set_member(project, "dana", role)  # this computer's own user (no one acting) may manage members
    allowed = NEEDED[action] is not None and role is not None and role >= NEEDED[action]
    with acting_as(Actor("dana")):
        if allowed:
            do(project)
        else:
            with pytest.raises(AccessDenied) as refused:
                do(project)
            message = str(refused.value)
            assert message.startswith("dana ") and "\n" not in message
            if NEEDED[action] is None:
                assert message == f"dana may not {action.value}: only an admin may"
            elif role is None and action in (Action.RENAME_PROJECT, Action.DELETE_PROJECT):
                # These open the project by name first: a non-member is refused even the sight of it.
                assert message == "dana is not a member of 'shared': to view the project takes a viewer or above"
            else:
                has = f"is {role.with_article} of 'shared'" if role else "is not a member of 'shared'"
                assert message == f"dana {has}: to {action.value} takes {NEEDED[action].with_article} or above"


def test_an_import_is_the_owners(project):
    data = _model_file(project)
    set_member(project, "tess", Role.TRAINER)
    set_member(project, "olga", Role.OWNER)
    with acting_as(Actor("tess")), pytest.raises(AccessDenied, match="to import models takes an owner or above"):
        import_model(project, data)
    with acting_as(Actor("olga")):
        assert import_model(project, data).version == 2


def test_refused_actions_change_nothing(project):
    set_member(project, "vic", Role.VIEWER)
    before = (project.store.count_inputs(), project.store.list_concepts(), project.store.labels_of(1))
    with acting_as(Actor("vic")):
        for _, do in ACTIONS[1:]:
            with pytest.raises(AccessDenied):
                do(project)
    assert (project.store.count_inputs(), project.store.list_concepts(), project.store.labels_of(1)) == before
    assert [v[0] for v in project.store.list_versions()] == [1] and open_project("shared").name == "shared"


def test_a_person_sees_only_their_projects_and_an_admin_sees_all(project):
    create_project("private", "tiny")
    set_member(project, "vic", Role.VIEWER)
    with acting_as(Actor("vic")):
        assert [p.name for p in list_projects()] == ["shared"]
        with pytest.raises(AccessDenied, match="vic is not a member of 'private'"):
            open_project("private")
    with acting_as(Actor("root", admin=True)):
        assert [p.name for p in list_projects()] == ["private", "shared"]
    assert [p.name for p in list_projects()] == ["private", "shared"]  # this computer's own user


def test_members_move_with_a_rename_and_a_bad_list_means_no_members(project):
    set_member(project, "olga", Role.OWNER)
    with acting_as(Actor("olga")):
        renamed = rename_project("shared", "team")
    assert read_members(renamed) == {"olga": Role.OWNER}
    renamed.store.set_meta("members", '{"olga": "emperor", "vic": "viewer"}')
    assert read_members(renamed) == {"vic": Role.VIEWER}  # an unknown role counts as no role
    renamed.store.set_meta("members", "not json")
    assert read_members(renamed) == {}
