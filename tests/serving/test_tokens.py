"""Tests for core.serving.tokens: stored as hashes, found in constant time, revoked for good."""

from __future__ import annotations

import pytest

from core.serving.tokens import TokenError, TokenStore


def test_tokens_are_stored_hashed_and_found_again(tmp_path):
    store = TokenStore(tmp_path)
    token = store.create_token("ci", project="pets", read_only=True)
    assert token.startswith("cl_") and len(token) > 40
    assert token not in (tmp_path / "tokens.json").read_text()
    assert oct((tmp_path / "tokens.json").stat().st_mode & 0o777) == "0o600"
    found = TokenStore(tmp_path).find_token(token)  # another process's store sees it
    assert found is not None and found.read_only and found.may_use("pets") and not found.may_use("other")
    assert store.find_token(token + "x") is None and store.find_token("") is None
    with pytest.raises(TokenError, match="exists already"):
        store.create_token("ci")
    store.revoke_token("ci")
    assert store.find_token(token) is None
    with pytest.raises(TokenError, match="no token named"):
        store.revoke_token("ci")
