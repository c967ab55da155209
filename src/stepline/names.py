"""Validation of names that come from users and may become folder or file names.

A name is one path component: no separators, no ``.``/``..``, no control characters, at most
:data:`MAX_NAME_LENGTH` characters. File names inside a run may have ``/`` between valid components.

    check_name("my-project", "project")   # returns "my-project"
    check_name("../x", "project")         # raises InvalidNameError
"""

from __future__ import annotations

import re

from stepline.errors import InvalidNameError

MAX_NAME_LENGTH = 128
# Characters that are separators or special on some file system we may be copied to (Windows included).
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')


def check_name(name: object, field: str) -> str:
    """Return ``name`` when it is safe as a single path component, else raise :class:`InvalidNameError`."""
    if not isinstance(name, str):
        raise InvalidNameError(f"{field} must be a string, got {type(name).__name__}: {name!r}")
    if not name or not name.strip():
        raise InvalidNameError(f"{field} must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"{field} is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}: shorten it"
        )
    bad = _FORBIDDEN.search(name)
    if bad:
        raise InvalidNameError(
            f"{field} {_shown(name)} contains {bad.group()!r}; use letters, digits, '-', '_', '.', spaces"
        )
    if name in (".", "..") or name != name.strip():
        raise InvalidNameError(f"{field} {_shown(name)} is not allowed: no '.', '..' or surrounding spaces")
    return name


def check_relative_path(path: object, field: str) -> str:
    """Return ``path`` when it is a relative path of valid components joined by ``/``."""
    if not isinstance(path, str):
        raise InvalidNameError(f"{field} must be a string, got {type(path).__name__}: {path!r}")
    parts = path.split("/")
    for part in parts:
        check_name(part, field)
    return "/".join(parts)


def _shown(name: str) -> str:
    return repr(name if len(name) <= 60 else name[:57] + "...")
