"""Where a server listens, and whether anyone but this computer can reach it.

The studio (``conceptlab studio``, ``make run``) and the API (``conceptlab serve``) both listen on
127.0.0.1 unless told otherwise; neither serves a network unprotected without being told so loudly.
"""

from __future__ import annotations

import ipaddress
import socket

LOOPBACK = "127.0.0.1"
# The studio has no accounts yet: serving it to a network takes this flag (or the environment variable
# that ``make run OPEN_TO_ANYONE_ON_THE_NETWORK=1`` sets), named for what it does.
OPEN_TO_NETWORK_FLAG = "--open-to-anyone-on-the-network"
OPEN_TO_NETWORK_ENV = "CONCEPTLAB_OPEN_TO_ANYONE_ON_THE_NETWORK"
# Accounts on (``conceptlab studio --accounts``, ``make run ACCOUNTS=1``): people sign in, roles apply,
# and the studio may serve a network.
ACCOUNTS_ENV = "CONCEPTLAB_ACCOUNTS"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is reachable from this computer only; "" and 0.0.0.0 mean every interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        if not host:
            return False
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except OSError:
            return False


def describe_studio_reach(address: str, port: int, opened: bool, accounts: bool = False) -> str:
    """One line for the studio's sidebar: who can open it."""
    if is_loopback(address):
        return "Only this computer can open the studio."
    where = "every network interface" if address in ("", "0.0.0.0", "::") else address
    if accounts:
        return f"Served on {where}, port {port}, to people who sign in."
    if opened:
        return f"Open to anyone who can reach {where}, port {port}: they can change and delete every project."
    return f"Served on {where}, port {port}."


def refuse_network_without_accounts(address: str, opened: bool, accounts: bool = False) -> str | None:
    """Why the studio must not serve on ``address`` (a sentence with the remedy), or None when it may."""
    if is_loopback(address) or opened or accounts:
        return None
    where = "every network interface" if address in ("", "0.0.0.0", "::") else address
    return (
        f"The studio will not serve on {where} with accounts off: anyone on the network could change and delete every project. "
        f"Turn accounts on (--accounts; make run ... ACCOUNTS=1), serve it on {LOOPBACK} (make run), or pass {OPEN_TO_NETWORK_FLAG} "
        "(make run ... OPEN_TO_ANYONE_ON_THE_NETWORK=1) if everyone who can reach it may"
    )
