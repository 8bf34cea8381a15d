"""The audit log: each destructive or sharing action, and each failed sign-in, with who and what."""

from __future__ import annotations

import pytest

from core.access import Actor, Role, SignInError, UserStore, acting_as, read_log, set_member
from core.exchange import export_model, import_model
from core.ingestion import ingest
from core.inputs import read_texts
from core.learning import train
from core.storage.projects import create_project, delete_project, rename_project
from core.views.gallery import label_inputs


@pytest.fixture
def project():
    project = create_project("shared", "tiny")
    ingest(project, read_texts(["an ant", "another ant", "a third ant"], concept="ant"))
    ingest(project, read_texts(["a bee", "another bee"], concept="bee"))
    train(project)
    set_member(project, "olga", Role.OWNER)
    return project


@pytest.mark.parametrize(
    "do, action, what",
    [
        (lambda p: p.store.delete_concept("bee"), "delete concept", "deleted concept 'bee' and its 2 labels"),
        (lambda p: p.store.delete_inputs([1, 2]), "delete inputs", "deleted 2 inputs"),
        (lambda p: label_inputs(p, [1, 2, 3], "ant", None), "remove labels", "removed the 'ant' label from 3 inputs"),
        (lambda p: import_model(p, export_model(p)), "import model", "imported version 2 (2 concepts, from 'shared')"),
        (lambda p: set_member(p, "vic", Role.VIEWER), "change role", "vic: not a member -> viewer"),
    ],
)
def test_each_destructive_or_sharing_action_is_recorded_with_who_did_it(project, do, action, what):
    with acting_as(Actor("olga")):
        do(project)
    (entry, *_) = read_log(project)
    assert (entry.user, entry.action, entry.project, entry.what) == ("olga", action, "shared", what)


def test_what_is_not_destructive_is_not_recorded(project):
    before = len(read_log(project))
    label_inputs(project, [1], "ant", None)  # one label removed by hand: the ordinary course of labelling
    label_inputs(project, [1, 2], "bee", 1)
    train(project)
    assert len(read_log(project)) == before


def test_a_projects_log_follows_a_rename_and_its_deletion_outlives_it(project):
    set_member(project, "vic", Role.VIEWER)  # by this computer's own user
    renamed = rename_project("shared", "team")
    set_member(renamed, "vic", Role.LABELLER)
    assert [(e.project, e.what) for e in read_log(renamed)] == [
        ("team", "vic: viewer -> labeller"),
        ("shared", "vic: not a member -> viewer"),
        ("shared", "olga: not a member -> owner"),
    ]
    assert read_log(renamed)[1].user == "this computer's user"
    create_project("other", "tiny")
    delete_project("team")
    newest = read_log()[0]
    assert (newest.action, newest.project, newest.what) == ("delete project", "team", "deleted project 'team' with 5 inputs")


def test_failed_sign_ins_and_lock_outs_are_recorded(tmp_path):
    users = UserStore(tmp_path)
    users.add_user("lena", "lena's own password")
    for attempt in range(5):
        with pytest.raises(SignInError):
            users.sign_in("lena", f"guess {attempt}", now=1000.0)
    with pytest.raises(SignInError):
        users.sign_in("mallory", "anything at all")
    entries = read_log()
    assert [(e.user, e.action) for e in entries[:3]] == [("mallory", "failed sign-in"), ("lena", "lock-out"), ("lena", "failed sign-in")]
    assert entries[1].what == "5 failed sign-ins in a row: locked for 30 s" and entries[1].project is None
