"""Validation of names that come from users: folder and file names, and labels that never become paths.

A name (a project, a run id, a file inside a run) is one path component: no separators, no ``.``/``..``,
no control characters, at most :data:`MAX_NAME_BYTES` bytes in UTF-8. File names inside a run may have
``/`` between valid components. A label (a run's display name) is any printable text: the run's folder is
its id, so the name never becomes a path.

    check_name("my-project", "project")   # returns "my-project"
    check_name("../x", "project")         # raises InvalidNameError
    check_label("bert/lr=1e-3", "run name")   # returns it: a label
"""

from __future__ import annotations

import re

from stepline.errors import InvalidNameError

MAX_NAME_BYTES = 200  # one path component is 255 on every common file system; room for a temporary name's suffix
MAX_LABEL_LENGTH = 256
# Characters that are separators or special on some file system we may be copied to (Windows included).
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_FORBIDDEN_SHOWN = '/ \\ : * ? " < > |'
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # control characters and lone surrogates


def check_name(name: object, field: str) -> str:
    """Return ``name`` when it is safe as a single path component, else raise :class:`InvalidNameError`."""
    if not isinstance(name, str):
        raise InvalidNameError(f"{field} must be a string, got {type(name).__name__}: {name!r}")
    if not name or not name.strip():
        raise InvalidNameError(f"{field} must not be empty")
    bad = _FORBIDDEN.search(name) or _CONTROL.search(name)
    if bad:
        raise InvalidNameError(
            f"{field} {_shown(name)} contains {bad.group()!r}; a {field} is a folder or file name: any text "
            f"but {_FORBIDDEN_SHOWN} and control characters"
        )
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise InvalidNameError(f"{field} is {size} bytes long in UTF-8; the limit is {MAX_NAME_BYTES}: shorten it")
    if name in (".", "..") or name != name.strip():
        raise InvalidNameError(f"{field} {_shown(name)} is not allowed: no '.', '..' or surrounding spaces")
    return name


def check_project(name: object, field: str = "project") -> str:
    """Return ``name`` when it is a valid project name: a :func:`check_name` that does not start with ``.``
    (the logbook keeps its own files in such folders, and every listing skips them)."""
    checked = check_name(name, field)
    if checked.startswith("."):
        raise InvalidNameError(f"{field} {_shown(checked)} starts with '.': such folders are hidden from every "
                               "listing; drop the leading dot")
    return checked


def check_label(label: object, field: str) -> str:
    """Return ``label`` when it is printable text of at most :data:`MAX_LABEL_LENGTH` characters."""
    if not isinstance(label, str):
        raise InvalidNameError(f"{field} must be a string, got {type(label).__name__}: {label!r}")
    if not label.strip():
        raise InvalidNameError(f"{field} must not be empty")
    bad = _CONTROL.search(label)
    if bad:
        raise InvalidNameError(f"{field} {_shown(label)} contains the control character {bad.group()!r}: "
                               "a name is printable text")
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidNameError(f"{field} is {len(label)} characters long; the limit is {MAX_LABEL_LENGTH}: "
                               "shorten it")
    return label


def safe_name(name: str) -> str:
    """``name`` made a valid :func:`check_name` name: forbidden characters become ``-``; for a name an
    integration was handed that stepline must not refuse in the middle of training."""
    cleaned = _CONTROL.sub("-", _FORBIDDEN.sub("-", name)).strip()
    while len(cleaned.encode("utf-8")) > MAX_NAME_BYTES:
        cleaned = cleaned[:-1]
    return cleaned if cleaned not in ("", ".", "..") else "unnamed"


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
