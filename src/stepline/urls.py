"""URLs and hosts: shown without a password, and told apart as this machine's or another's.

    redacted("postgresql://ana:secret@db/runs")   # "postgresql://ana:***@db/runs"
    is_loopback("127.0.0.1")                      # True
"""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redacted(url: str) -> str:
    """``url`` with any password in it replaced by ``***``."""
    scheme, _, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not at or "/" in userinfo or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
