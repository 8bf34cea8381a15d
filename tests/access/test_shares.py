"""Demo links: made by trainers and owners, a viewer of one project only, expiring, revocable."""

from __future__ import annotations

import datetime as dt

import pytest

from core.access import AccessDenied, Actor, Role, ShareError, ShareStore, acting_as, read_log, set_member
from core.ingestion import ingest
from core.inputs import read_texts
from core.prediction import predict
from core.storage.projects import create_project, list_projects, open_project

TODAY = dt.date(2026, 12, 4)


@pytest.fixture
def project(trained_texts):
    create_project("private", "tiny")
    return trained_texts


def test_a_link_is_a_viewer_of_its_project_and_of_nothing_else(project, tmp_path):
    shares = ShareStore(tmp_path)
    share, token = shares.make_share(project, 1, TODAY + dt.timedelta(days=3), "olga", today=TODAY)
    found = shares.find_share(token, now=dt.datetime(2026, 12, 7, 23, 59).timestamp())  # through the whole last day
    assert found == share and found.version == 1
    with acting_as(found.actor()):
        assert [p.name for p in list_projects()] == ["shared"]
        assert next(predict(open_project("shared"), read_texts(["an ant on a leaf"]))).concepts
        with pytest.raises(AccessDenied, match="is not a member of 'private'"):
            open_project("private")
        with pytest.raises(AccessDenied, match="is a viewer of 'shared': to add inputs takes a labeller"):
            ingest(project, read_texts(["sneaky"]))
    assert shares.find_share(token, now=dt.datetime(2026, 12, 8, 0, 0, 1).timestamp()) is None  # expired
    assert shares.find_share("not a token") is None and shares.find_share(None) is None


def test_a_revoked_link_stops_and_both_are_recorded(project, tmp_path):
    shares = ShareStore(tmp_path)
    share, token = shares.make_share(project, 1, TODAY, "olga", today=TODAY)
    shares.revoke_share(project, share.id)
    assert shares.find_share(token, now=dt.datetime(2026, 12, 4, 12).timestamp()) is None
    assert [e.action for e in read_log(project)[:2]] == ["revoke demo link", "make demo link"]
    with pytest.raises(ShareError, match="has no demo link nope"):
        shares.revoke_share(project, "nope")


@pytest.mark.parametrize(
    "role, allowed",
    [(Role.VIEWER, False), (Role.LABELLER, False), (Role.TRAINER, True), (Role.OWNER, True)],
)
def test_trainers_and_owners_make_links(project, tmp_path, role, allowed):
    set_member(project, "dana", role)
    with acting_as(Actor("dana")):
        if allowed:
            ShareStore(tmp_path).make_share(project, 1, TODAY, "dana", today=TODAY)
        else:
            with pytest.raises(AccessDenied, match="to make or revoke demo links takes a trainer or above"):
                ShareStore(tmp_path).make_share(project, 1, TODAY, "dana", today=TODAY)


def test_a_link_cannot_expire_in_the_past(project, tmp_path):
    with pytest.raises(ShareError, match=r"cannot expire in the past \(2026-12-03\)"):
        ShareStore(tmp_path).make_share(project, 1, TODAY - dt.timedelta(days=1), "olga", today=TODAY)
