"""URLs as stepline shows them: in messages, logs and the CLI's output, never with a password in them.

    redacted("postgresql://ana:secret@db/runs")   # "postgresql://ana:***@db/runs"
"""

from __future__ import annotations


def redacted(url: str) -> str:
    """``url`` with any password in it replaced by ``***``."""
    scheme, _, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not at or "/" in userinfo or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
