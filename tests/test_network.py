"""Tests for core.network: which addresses count as this computer only, and what the studio says of each."""

from __future__ import annotations

import pytest

from core.network import describe_studio_reach, is_loopback, refuse_network_without_accounts


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.1.2.3", True),
        ("0.0.0.0", False),
        ("", False),  # Streamlit's "every interface"
        ("192.168.1.5", False),
        ("::", False),
        ("no-such-host.invalid", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    "address, opened, refused, reach",
    [
        ("127.0.0.1", False, None, "Only this computer can open the studio."),
        ("localhost", True, None, "Only this computer can open the studio."),
        ("0.0.0.0", False, "will not serve on every network interface", "Served on every network interface, port 8501."),
        ("", False, "will not serve on every network interface", "Served on every network interface, port 8501."),
        ("192.168.1.5", False, "will not serve on 192.168.1.5", "Served on 192.168.1.5, port 8501."),
        ("0.0.0.0", True, None, "Open to anyone who can reach every network interface, port 8501: they can change and delete every"),
    ],
)
def test_the_studio_refuses_a_network_unless_opened_and_says_who_can_reach_it(address, opened, refused, reach):
    reason = refuse_network_without_accounts(address, opened)
    if refused is None:
        assert reason is None
    else:
        assert refused in reason and "serve it on 127.0.0.1 (make run), or pass --open-to-anyone-on-the-network" in reason
    assert describe_studio_reach(address, 8501, opened).startswith(reach)
