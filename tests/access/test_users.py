"""Local accounts: argon2id hashes, sign-in, the lock-out, and who may manage accounts."""

from __future__ import annotations

import sqlite3

import pytest

from core.access import AccessDenied, AccountError, Actor, SignInError, UserStore, acting_as, lock_seconds
from core.access.users import MAX_TRIES

PASSWORD = "correct horse battery"


@pytest.fixture
def users(tmp_path):
    store = UserStore(tmp_path)
    store.add_user("alice", PASSWORD, admin=True)
    return store


def test_a_password_is_stored_only_as_an_argon2id_hash(users, tmp_path):
    (digest,) = sqlite3.connect(tmp_path / "users.db").execute("SELECT hash FROM users").fetchone()
    assert digest.startswith("$argon2id$") and PASSWORD not in digest
    user = users.sign_in("Alice", PASSWORD)  # the same name whatever its case
    assert user.name == "alice" and user.admin and user.actor() == Actor("alice", True)


@pytest.mark.parametrize("name, password", [("alice", "wrong password!"), ("nobody", PASSWORD), ("alice", "")])
def test_a_wrong_name_and_a_wrong_password_get_the_same_answer(users, name, password):
    with pytest.raises(SignInError, match="^wrong user name or password$"):
        users.sign_in(name, password)


def test_the_lock_out_grows_and_stops_even_the_right_password(users):
    now = 1_000_000.0
    for _ in range(MAX_TRIES - 1):
        with pytest.raises(SignInError, match="wrong user name or password"):
            users.sign_in("alice", "guess guess guess", now=now)
    assert users.sign_in("alice", PASSWORD, now=now).failures == 0  # a success before the limit forgives
    for _ in range(MAX_TRIES):
        with pytest.raises(SignInError):
            users.sign_in("alice", "guess guess guess", now=now)
    with pytest.raises(SignInError, match=r"too many failed sign-ins for alice: try again in 30 s"):
        users.sign_in("alice", PASSWORD, now=now + 1 - 1)
    with pytest.raises(SignInError, match="wrong user name or password"):
        users.sign_in("alice", "guess guess guess", now=now + 31)  # the 6th failure: locked twice as long
    with pytest.raises(SignInError, match=r"try again in 60 s"):
        users.sign_in("alice", PASSWORD, now=now + 31)
    assert users.sign_in("alice", PASSWORD, now=now + 92).name == "alice"


@pytest.mark.parametrize("failures, seconds", [(0, 0), (4, 0), (5, 30), (6, 60), (7, 120), (20, 3600)])
def test_lock_seconds(failures, seconds):
    assert lock_seconds(failures) == seconds


def test_a_new_password_ends_a_lock_out_and_a_disabled_account_cannot_sign_in(users):
    for _ in range(MAX_TRIES):
        with pytest.raises(SignInError):
            users.sign_in("alice", "guess guess guess")
    users.set_password("alice", "a brand new password")
    assert users.sign_in("alice", "a brand new password").name == "alice"
    users.disable_user("alice")
    with pytest.raises(SignInError, match="the account alice is disabled"):
        users.sign_in("alice", "a brand new password")


def test_a_one_time_password_is_made_when_none_is_given(users):
    one_time = users.add_user("bob")
    assert len(one_time) >= 16 and users.get_user("bob").must_change
    assert users.sign_in("bob", one_time).must_change
    users.set_password("bob", "bob's own password")
    assert not users.get_user("bob").must_change


@pytest.mark.parametrize(
    "name, password, reason",
    [
        ("alice", PASSWORD, "a user named 'alice' already exists"),
        ("ALICE", PASSWORD, "a user named 'ALICE' already exists"),
        ("", PASSWORD, "it is empty"),
        ("eve\u202e", PASSWORD, "RIGHT-TO-LEFT OVERRIDE"),
        ("carol", "short", "at least 10 characters"),
    ],
)
def test_bad_accounts_are_refused(users, name, password, reason):
    with pytest.raises(AccountError, match=reason):
        users.add_user(name, password)


def test_only_an_admin_manages_accounts_and_a_user_changes_only_their_own_password(users):
    users.add_user("bob", "bob's own password")
    with acting_as(Actor("bob")):
        with pytest.raises(AccessDenied, match="bob may not manage users: only an admin may"):
            users.add_user("mallory", "mallory's password")
        with pytest.raises(AccessDenied):
            users.set_password("alice", "taken over at last")
        with pytest.raises(AccessDenied):
            users.disable_user("alice")
        users.set_password("bob", "bob's newer password")
    with acting_as(Actor("alice", admin=True)):
        users.add_user("carol", "carol's own password")
    assert [u.name for u in users.list_users()] == ["alice", "bob", "carol"]
