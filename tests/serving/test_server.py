"""Tests for core.serving.server: which addresses count as this computer only."""

from __future__ import annotations

import pytest

from core.serving.server import is_loopback


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.1.2.3", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("::", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback
